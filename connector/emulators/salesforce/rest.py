"""The ``/services/data/vXX.X/…`` resources: single-record, query, search, describe and limits resources.

Paths and answers are those simple-salesforce 1.12 builds and expects (read from its api.py): ``SFType`` uses
``…/sobjects/{Name}/`` (create POSTs there with the trailing slash; ``get``/``update``/``delete`` append the id;
``describe`` appends ``describe``); ``query`` GETs ``query/?q=`` and ``query_more`` rebuilds
``https://{instance}{nextRecordsUrl}``, so ``nextRecordsUrl`` is a path; ``search`` GETs ``search/?q=``;
``limits`` GETs ``limits/``; ``restful(path)`` appends any path. Status codes per the REST guide
[docs: api_rest "sObject Rows", "Query", "Search"]: create 201 ``{"id","success","errors"}``, update and
delete 204, get 200 with ``attributes`` (``?fields=`` returns those fields plus ``Id``), queries page at 2,000
rows (or ``Sforce-Query-Options: batchSize=N``, 200–2,000).
"""

from __future__ import annotations

import re
from typing import Any

from connector.emulators.salesforce.errors import SalesforceApiError, method_not_allowed, not_found
from connector.emulators.salesforce.org import Call, Org, Result
from connector.emulators.salesforce.schema import ObjectDef
from connector.emulators.salesforce.soql import parse_soql

SUPPORTED_VERSIONS = tuple(f"{v}.0" for v in range(31, 65))
_BATCH = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)


def release_label(version: str) -> str:
    """'62.0' → "Winter '25": three releases a year, v60.0 was Spring '24."""
    step = int(float(version)) - 60
    cycle, season = divmod(step, 3)
    year = 24 + cycle + (1 if season == 2 else 0)
    return f"{('Spring', 'Summer', 'Winter')[season]} '{year:02d}"


def versions() -> list[dict[str, str]]:
    """``GET /services/data/`` (no session needed, not counted against limits)."""
    return [{"label": release_label(v), "url": f"/services/data/v{v}", "version": v} for v in SUPPORTED_VERSIONS]


def allow(call: Call, *methods: str) -> None:
    if call.method not in methods and not (call.method == "HEAD" and "GET" in methods):
        raise method_not_allowed(call.method, ",".join(("HEAD",) + methods if "GET" in methods else methods))


def limits(org: Org) -> dict[str, Any]:
    """``GET limits/`` — DailyApiRequests is live; the other allocations are a Developer-Edition-like constant."""
    remaining = max(0, org.daily_limit - org.used)
    fixed = {
        "DailyAsyncApexExecutions": 250000,
        "DailyBulkApiBatches": 15000,
        "DailyBulkV2QueryJobs": 10000,
        "DailyStreamingApiEvents": 10000,
        "DataStorageMB": 5,
        "FileStorageMB": 20,
        "SingleEmail": 15,
        "HourlyTimeBasedWorkflow": 50,
        "ConcurrentAsyncGetReportInstances": 200,
    }
    return {
        "DailyApiRequests": {"Max": org.daily_limit, "Remaining": remaining},
        **{name: {"Max": value, "Remaining": value} for name, value in fixed.items()},
    }


def sobjects(org: Org, call: Call, rest: list[str]) -> Result:
    store = org.store
    if not rest:
        allow(call, "GET")
        return Result(
            200,
            {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [o.summary(call.version) for o in store.schema.values()],
            },
        )
    obj = store.object(rest[0])
    if obj is None:
        raise not_found()
    if len(rest) == 1:
        allow(call, "GET", "POST")
        if call.method == "POST":
            record = store.create(obj, call.json(), call.raw)
            return Result(201, {"id": record["Id"], "success": True, "errors": []}, _location(call, obj, record["Id"]))
        return Result(200, {"objectDescribe": obj.summary(call.version), "recentItems": []})
    if len(rest) == 2 and rest[1] == "describe":
        allow(call, "GET")
        return Result(200, obj.describe(call.version))
    if len(rest) == 2:
        allow(call, "GET", "PATCH", "DELETE")
        record_id = rest[1]
        if call.method == "PATCH":
            store.update(obj, record_id, call.json(), call.raw)
            return Result(204)
        if call.method == "DELETE":
            store.delete(obj, record_id)
            return Result(204)
        found = store.get(obj, record_id)
        if found is None:
            raise not_found()
        return Result(200, store.serialize(obj, found, call.version, selected_fields(obj, call.args.get("fields"))))
    if len(rest) == 3:
        definition = obj.field(rest[1])
        raise SalesforceApiError(
            404,
            "NOT_FOUND",
            "Provided external ID field does not exist or is not "
            f"accessible: {definition.name if definition else rest[1]}",
        )
    raise not_found()


def _location(call: Call, obj: ObjectDef, record_id: str) -> dict[str, str]:
    return {"Location": f"/services/data/v{call.version}/sobjects/{obj.name}/{record_id}"}


def selected_fields(obj: ObjectDef, fields: str | None) -> list[str] | None:
    """``?fields=A,B`` → canonical names plus Id (as Salesforce appends it); None means every field."""
    if fields is None:
        return None
    names: list[str] = []
    for name in (f.strip() for f in fields.split(",") if f.strip()):
        definition = obj.field(name)
        if definition is None:
            raise SalesforceApiError(
                400,
                "INVALID_FIELD",
                f"No such column '{name}' on entity '{obj.name}'. If you "
                "are attempting to use a custom field, be sure to append the '__c' after the "
                "custom field name. Please reference your WSDL or the describe call for the "
                "appropriate names.",
            )
        names.append(definition.name)
    return names + ([] if "Id" in names else ["Id"])


def query(org: Org, call: Call, rest: list[str], *, include_deleted: bool) -> Result:
    endpoint = "queryAll" if include_deleted else "query"
    if rest:  # a locator from nextRecordsUrl: "<cursor>-<offset>"
        cursor, _, offset = rest[0].rpartition("-")
        records = org.cursors.get(cursor)
        if records is None or not offset.isdigit():
            raise SalesforceApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return Result(200, _page(org, call, endpoint, records, int(offset), cursor))
    text = call.args.get("q")
    if text is None:
        raise SalesforceApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
    query = parse_soql(text, org.store.schema, org.now().date())
    rows = query.run(org.store.rows(query.obj, include_deleted=include_deleted))
    if query.count:
        return Result(200, {"totalSize": len(rows), "done": True, "records": []})
    records = [org.store.serialize(query.obj, r, call.version, query.fields) for r in rows]
    return Result(200, _page(org, call, endpoint, records, 0, None))


def _page(
    org: Org, call: Call, endpoint: str, records: list[dict[str, Any]], offset: int, cursor: str | None
) -> dict[str, Any]:
    options = next((v for k, v in call.headers.items() if k.lower() == "sforce-query-options"), "")
    match = _BATCH.search(options)
    batch = min(2000, max(200, int(match[1]))) if match else 2000
    chunk = records[offset : offset + batch]
    body: dict[str, Any] = {"totalSize": len(records), "done": offset + batch >= len(records)}
    if not body["done"]:
        cursor = cursor or org.new_cursor(records)
        body["nextRecordsUrl"] = f"/services/data/v{call.version}/{endpoint}/{cursor}-{offset + batch}"
    body["records"] = chunk
    return body
