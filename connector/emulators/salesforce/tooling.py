"""The Tooling API resources set-up uses: ``tooling/sobjects/CustomField`` and ``tooling/query``.

The custom-field metadata itself is the org's `Security` (security.py), which decides who may see which field.
"""

from __future__ import annotations

from connector.emulators.salesforce.errors import SalesforceApiError, not_found
from connector.emulators.salesforce.org import Call, Org, Result
from connector.emulators.salesforce.rest import allow
from connector.emulators.salesforce.soql import parse_soql


def tooling(org: Org, call: Call, rest: list[str]) -> Result:
    """``tooling/sobjects/CustomField`` (POST) and ``tooling/query/?q=`` (CustomField rows)."""
    if rest == ["sobjects", "CustomField"] or rest == ["sobjects", "customfield"]:
        allow(call, "POST")
        record = org.security.create_custom_field(call.json())
        return Result(201, {"id": record["Id"], "success": True, "errors": [], "warnings": [], "infos": []})
    if rest == ["query"]:
        allow(call, "GET")
        text = call.args.get("q")
        if text is None:
            raise SalesforceApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
        query = parse_soql(text, org.tooling.schema, org.now().date())
        rows = query.run(org.tooling.rows(query.obj))
        records = [org.tooling.serialize(query.obj, r, call.version, query.fields) for r in rows]
        records = [
            {
                **r,
                "attributes": {
                    **r["attributes"],
                    "url": r["attributes"]["url"].replace("/sobjects/", "/tooling/sobjects/"),
                },
            }
            for r in records
        ]
        return Result(
            200,
            {
                "size": len(records),
                "totalSize": len(records),
                "done": True,
                "queryLocator": None,
                "entityTypeName": query.obj.name,
                "records": [] if query.count else records,
            },
        )
    raise not_found()
