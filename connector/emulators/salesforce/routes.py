"""Routing of ``/services/data/vXX.X/…`` to its resources (rest.py: records, query, search, limits; composite.py;
tooling.py), kept apart from them so a resource that dispatches again (composite) need not import the router."""

from __future__ import annotations

from connector.emulators.salesforce import rest
from connector.emulators.salesforce.composite import collections, composite
from connector.emulators.salesforce.errors import SalesforceApiError, not_found
from connector.emulators.salesforce.org import Call, Org, Result
from connector.emulators.salesforce.schema import USER_ID
from connector.emulators.salesforce.security import USERNAME
from connector.emulators.salesforce.sosl import parameterized_search, search
from connector.emulators.salesforce.tooling import tooling


def dispatch(org: Org, call: Call) -> Result:
    """Answer one call, or raise SalesforceApiError."""
    parts = [p for p in call.path.split("/") if p]
    if not parts:
        rest.allow(call, "GET")
        base = f"/services/data/v{call.version}"
        return Result(
            200,
            {
                name: f"{base}/{name}"
                for name in ("sobjects", "query", "queryAll", "search", "parameterizedSearch", "composite", "limits")
            },
        )
    head = parts[0]
    if head == "limits" and len(parts) == 1:
        rest.allow(call, "GET")
        return Result(200, rest.limits(org))
    if head == "sobjects":
        return rest.sobjects(org, call, parts[1:])
    if head in ("query", "queryAll") and len(parts) <= 2:
        rest.allow(call, "GET")
        return rest.query(org, call, parts[1:], include_deleted=head == "queryAll")
    if head == "search" and len(parts) == 1:
        rest.allow(call, "GET")
        text = call.args.get("q")
        if not text:
            raise SalesforceApiError(400, "MALFORMED_SEARCH", "A search string has to be specified")
        return Result(200, search(org.store, text, call.version, now=org.now(), lag=org.search_lag))
    if head == "parameterizedSearch" and len(parts) == 1:
        rest.allow(call, "GET")
        return Result(200, parameterized_search(org.store, call.args, call.version, now=org.now(), lag=org.search_lag))
    if parts == ["chatter", "users", "me"]:
        rest.allow(call, "GET")  # Connect REST API: the running user (only the fields set-up reads, UNVERIFIED rest)
        return Result(
            200,
            {
                "id": USER_ID,
                "username": USERNAME,
                "type": "User",
                "url": (f"/services/data/v{call.version}/chatter/users/{USER_ID}"),
            },
        )
    if head == "tooling":
        return tooling(org, call, parts[1:])
    if head == "composite":
        if len(parts) == 1:
            return composite(org, call, dispatch)
        if parts[1] == "sobjects":
            return collections(org, call, parts[2:])
    raise not_found()
