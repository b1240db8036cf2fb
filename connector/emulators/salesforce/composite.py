"""``POST composite`` and sObject Collections (``composite/sobjects``).

Composite [docs: REST API Developer Guide, "Composite" — request/response bodies, allOrNone, reference rules]:
≤ 25 subrequests (≤ 5 of them query/collection operations); ``@{ref.field}`` / ``@{ref.list[0].field}``
references resolve, case-sensitively, against earlier subrequest *responses* (``@{newTask.id}`` after a create,
``@{q.records[0].Id}`` after a query) in later URLs and bodies; referenceIds must match
``[A-Za-z0-9][A-Za-z0-9_]*`` (v52+: else the whole request is 400 JSON_PARSER_ERROR). The outer status is always
200; each entry has ``body``, ``httpHeaders`` (``Location`` for creates), ``httpStatusCode``, ``referenceId``.
A reference to a missing value or a failed subrequest fails that subrequest with PROCESSING_HALTED "Invalid
reference specified. No value for X found in Y. …" (documented). With ``allOrNone`` a failure rolls back the
whole request and every other subrequest reports 400 PROCESSING_HALTED "The transaction was rolled back since
another operation in the same transaction failed." (observed). The whole request counts as one API call.

Collections [docs: "sObject Collections"]: ≤ 200 records, results in input order with ``statusCode`` errors;
with allOrNone the successes become ALL_OR_NONE_OPERATION_ROLLED_BACK (documented text). A body the
deserializer refuses (wrong value type, unknown field) refuses the whole request (UNVERIFIED but consistent with
"If the request isn't well-formed, the API returns 400").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from werkzeug.datastructures import MultiDict

from connector.emulators.salesforce.errors import (
    MSG_COLLECTION_ROLLED_BACK,
    MSG_ROLLED_BACK,
    SalesforceApiError,
    json_parser_error,
    method_not_allowed,
    not_found,
)
from connector.emulators.salesforce.ids import key15
from connector.emulators.salesforce.org import UNSET, Call, Org, Result
from connector.emulators.salesforce.rest import SUPPORTED_VERSIONS, selected_fields
from connector.emulators.salesforce.schema import object_for_id
from connector.emulators.salesforce.validation import deserialize

Dispatch = Callable[[Org, Call], Result]
"""The router (routes.dispatch), passed in: a composite subrequest is answered like any other call."""

MAX_SUBREQUESTS = 25
MAX_QUERY_OR_COLLECTION = 5
MAX_COLLECTION = 200
_REFERENCE = re.compile(r"@\{([^}]*)\}")
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
_STEP = re.compile(r"\.([A-Za-z0-9_]+)|\[(\d+)\]")
_SUB_URL = re.compile(r"^/services/data/v(\d+\.\d)(/[^?]*)$")


class _Unresolved(Exception):
    def __init__(self, expression: str, reference: str) -> None:
        super().__init__(expression)
        self.error = SalesforceApiError(
            400,
            "PROCESSING_HALTED",
            (
                f"Invalid reference specified. No value for {expression} found in {reference}. Provided referenceId "
                f"('{expression}') must start with a letter or a number, and it can contain only letters, numbers and "
                "underscores ('_')."
            ),
        )


def _lookup(expression: str, results: dict[str, Any]) -> Any:
    match = re.match(r"^([A-Za-z0-9][A-Za-z0-9_]*)(.*)$", expression)
    reference = match[1] if match else expression
    if not match or reference not in results:
        raise _Unresolved(expression, reference)
    value, position = results[reference], 0
    for step in _STEP.finditer(match[2]):
        if step.start() != position:
            break
        position = step.end()
        key, index = step[1], step[2]
        if key is not None and isinstance(value, dict) and key in value:
            value = value[key]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            raise _Unresolved(expression, reference)
    if position != len(match[2]):
        raise _Unresolved(expression, reference)
    return value


def _resolve(value: Any, results: dict[str, Any]) -> Any:
    """Substitute references in a URL or body (a string that is exactly one reference keeps the value's type)."""
    if isinstance(value, dict):
        return {k: _resolve(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, results) for v in value]
    if not isinstance(value, str) or "@{" not in value:
        return value
    whole = _REFERENCE.fullmatch(value)
    if whole:
        return _lookup(whole[1], results)

    def text(match: re.Match[str]) -> str:
        found = _lookup(match[1], results)
        return "" if found is None else ("true" if found is True else "false" if found is False else str(found))

    return _REFERENCE.sub(text, value)


def composite(org: Org, call: Call, dispatch: Dispatch) -> Result:
    """``POST composite``."""
    if call.method == "GET":
        return Result(200, {"sobjects": f"/services/data/v{call.version}/composite/sobjects"})
    if call.method != "POST":
        raise method_not_allowed(call.method, "HEAD,GET,POST")
    body = call.json()
    subrequests = body.get("compositeRequest") if isinstance(body, dict) else None
    if not isinstance(subrequests, list) or not subrequests:
        raise json_parser_error("compositeRequest: a non-empty list of subrequests is required")  # UNVERIFIED text
    if len(subrequests) > MAX_SUBREQUESTS:  # UNVERIFIED code/text; the limit itself is documented
        raise SalesforceApiError(
            400, "LIMIT_EXCEEDED", f"Limit Exceeded: a composite request can have at most {MAX_SUBREQUESTS} subrequests"
        )
    seen: set[str] = set()
    heavy = 0
    for sub in subrequests:
        reference = sub.get("referenceId") if isinstance(sub, dict) else None
        if not isinstance(reference, str) or not _REFERENCE_ID.match(reference):
            raise json_parser_error(
                f"Provided referenceId ('{reference}') must start with a letter or a number, "
                "and it can contain only letters, numbers and underscores ('_')."
            )
        if reference in seen:  # UNVERIFIED text
            raise json_parser_error(f"Duplicate referenceId provided in the request: {reference}")
        seen.add(reference)
        if sub.get("method") not in ("GET", "POST", "PATCH", "PUT", "DELETE") or not isinstance(sub.get("url"), str):
            raise json_parser_error(
                f"Subrequest '{reference}' needs a method (GET, POST, PATCH, PUT, DELETE) and a url"
            )  # UNVERIFIED text
        heavy += bool(re.search(r"/(query|queryAll)/?(\?|$)|/composite/sobjects", sub["url"]))
    if heavy > MAX_QUERY_OR_COLLECTION:  # UNVERIFIED code/text; the limit itself is documented
        raise SalesforceApiError(
            400,
            "LIMIT_EXCEEDED",
            "Limit Exceeded: a composite request can have at most "
            f"{MAX_QUERY_OR_COLLECTION} query or sObject Collections subrequests",
        )

    all_or_none = bool(body.get("allOrNone", False))
    snapshot = org.store.snapshot() if all_or_none else None
    results: dict[str, Any] = {}
    responses: list[dict[str, Any]] = []
    failed_at: int | None = None
    for index, sub in enumerate(subrequests):
        reference = sub["referenceId"]
        if failed_at is not None:
            responses.append(_halted(reference))
            continue
        try:
            status, answer, headers = _run(
                org,
                call,
                dispatch,
                sub["method"],
                _resolve(sub["url"], results),
                _resolve(sub.get("body"), results),
                sub.get("httpHeaders") or {},
                all_or_none,
            )
        except _Unresolved as exc:
            status, answer, headers = 400, exc.error.body(), {}
        responses.append({"body": answer, "httpHeaders": headers, "httpStatusCode": status, "referenceId": reference})
        # A collection answers 200 with per-record failures; under an allOrNone composite those roll back all too
        # [docs: "allOrNone Parameters in Composite and Collections Requests"].
        partial = isinstance(answer, list) and any(isinstance(r, dict) and r.get("success") is False for r in answer)
        if status < 300 and not partial:
            results[reference] = answer
        elif all_or_none:
            failed_at = index
    if failed_at is not None and snapshot is not None:
        org.store.restore(snapshot)
        responses = [r if i == failed_at else _halted(r["referenceId"]) for i, r in enumerate(responses)]
    call.log["subrequests"] = [
        {"method": s["method"], "url": s["url"], "status": r["httpStatusCode"]}
        for s, r in zip(subrequests, responses, strict=False)
    ]
    return Result(200, {"compositeResponse": responses})


def _halted(reference: str) -> dict[str, Any]:
    return {
        "body": [{"errorCode": "PROCESSING_HALTED", "message": MSG_ROLLED_BACK}],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": reference,
    }


def _run(
    org: Org,
    parent: Call,
    dispatch: Dispatch,
    method: str,
    url: Any,
    body: Any,
    headers: dict[str, str],
    all_or_none: bool,
) -> tuple[int, Any, dict[str, str]]:
    """Execute one subrequest through the normal dispatcher (no auth, no API-call count)."""
    try:
        parts = urlsplit(str(url))
        match = _SUB_URL.match(parts.path)
        if not match or match[1] not in SUPPORTED_VERSIONS:
            raise not_found()
        rest = match[2]
        if not re.match(r"^/(sobjects|query|queryAll|composite/sobjects)(/|$)", rest):  # UNVERIFIED code/text
            raise SalesforceApiError(400, "INVALID_API_INPUT", f"Composite does not support the resource {parts.path}")
        fault = org.take_fault(str(url), subrequest=True)
        if fault is not None:
            raise fault
        sub = Call(
            method,
            match[1],
            rest,
            MultiDict(parse_qsl(parts.query, keep_blank_values=True)),
            {**parent.headers, **headers},
            body=body if body is not None else _empty(method),
            all_or_none=all_or_none,
        )
        result = dispatch(org, sub)
        return result.status, result.body, result.headers
    except SalesforceApiError as exc:
        return exc.status, exc.body(), {}


def _empty(method: str) -> Any:
    return UNSET if method in ("POST", "PATCH", "PUT") else None


def collections(org: Org, call: Call, rest: list[str]) -> Result:
    """``composite/sobjects`` (create, update, delete) and ``composite/sobjects/{T}`` (retrieve)."""
    store = org.store
    if rest:
        obj = store.object(rest[0])
        if obj is None:
            raise not_found()
        if len(rest) > 1:
            raise SalesforceApiError(
                404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {rest[1]}"
            )
        if call.method not in ("GET", "POST"):
            raise method_not_allowed(call.method, "HEAD,GET,POST")
        source = (
            call.args
            if call.method == "GET"
            else MultiDict({k: ",".join(v) if isinstance(v, list) else v for k, v in (call.json() or {}).items()})
        )
        ids = [i for i in (source.get("ids") or "").split(",") if i]
        fields = [f for f in (source.get("fields") or "").split(",") if f]
        if not ids or not fields:
            raise SalesforceApiError(400, "MISSING_ARGUMENT", "ids and fields are required")  # UNVERIFIED text
        names = [n for n in selected_fields(obj, ",".join(fields)) or [] if n != "Id" or "id" in map(str.lower, fields)]
        return Result(
            200, [store.serialize(obj, r, call.version, names) if (r := store.get(obj, i)) else None for i in ids]
        )
    if call.method == "DELETE":
        return _delete(org, call)
    if call.method not in ("POST", "PATCH"):
        raise method_not_allowed(call.method, "POST,PATCH,DELETE")
    body = call.json()
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        raise json_parser_error("records: a list of sObjects is required")  # UNVERIFIED text
    if len(records) > MAX_COLLECTION:  # observed code; UNVERIFIED exact text
        raise SalesforceApiError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {MAX_COLLECTION} records into this call",
        )
    creating = call.method == "POST"
    prepared = [_prepare(org, record, creating) for record in records]  # deserialization errors refuse it all
    all_or_none = call.all_or_none or bool(body.get("allOrNone", False))
    snapshot = store.snapshot() if all_or_none else None
    results: list[dict[str, Any]] = []
    for item in prepared:
        if isinstance(item, SalesforceApiError):
            results.append({"success": False, "errors": [item.collection_error()]})
            continue
        obj, record_id, values = item
        try:
            if creating:
                saved = store.create(obj, values)
            else:
                saved = store.update(obj, record_id or "", values)
            results.append({"id": saved["Id"], "success": True, "errors": []})
        except SalesforceApiError as exc:
            if exc.error_code == "NOT_FOUND":
                exc = SalesforceApiError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
            results.append({"success": False, "errors": [exc.collection_error()]})
    if snapshot is not None and not all(r["success"] for r in results):
        store.restore(snapshot)
        rolled = {
            "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "message": MSG_COLLECTION_ROLLED_BACK,
            "fields": [],
        }
        results = [
            r
            if not r["success"]
            else ({"id": r["id"]} if not creating else {}) | {"success": False, "errors": [rolled]}
            for r in results
        ]
    return Result(200, results)


def _prepare(org: Org, record: Any, creating: bool) -> tuple[Any, str | None, dict[str, Any]] | SalesforceApiError:
    """Type, id and field body of one collection record; per-record problems are returned, not raised."""
    if not isinstance(record, dict):
        raise json_parser_error("Cannot deserialize instance of sobject from a non-object record")
    attributes = record.get("attributes")
    type_name = attributes.get("type") if isinstance(attributes, dict) else None
    if not isinstance(type_name, str):  # UNVERIFIED text
        return SalesforceApiError(400, "INVALID_TYPE", "Must send a concrete entity type.", [])
    obj = org.store.object(type_name)
    if obj is None:
        return SalesforceApiError(400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported.", [])
    fields = {k: v for k, v in record.items() if k != "attributes"}
    id_key = next((k for k in fields if k.lower() == "id"), None)
    record_id = fields.pop(id_key) if id_key else None
    if creating and id_key:
        return SalesforceApiError(400, "INVALID_FIELD", "cannot specify Id in an insert call", [])
    if not creating:
        if not record_id:
            return SalesforceApiError(400, "MISSING_ARGUMENT", "Id not specified in an update call", [])
        target = object_for_id(org.store.schema, record_id) if key15(record_id) else None
        if target is not obj:  # documented: "Contact ID: id value of incorrect type: 001xx000003DGb2999"
            return SalesforceApiError(
                400, "MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {record_id}", ["Id"]
            )
    deserialize(obj, fields, None, record_id=None if creating else record_id)
    return obj, record_id, fields


def _delete(org: Org, call: Call) -> Result:
    """``DELETE composite/sobjects?ids=…&allOrNone=…`` → DeleteResults in id order."""
    ids = [i for i in (call.args.get("ids") or "").split(",") if i]
    if not ids or len(ids) > MAX_COLLECTION:
        raise SalesforceApiError(
            400,
            "MISSING_ARGUMENT" if not ids else "EXCEEDED_ID_LIMIT",
            "ids: between 1 and 200 record ids are required",
        )  # UNVERIFIED text
    all_or_none = call.all_or_none or (call.args.get("allOrNone") or "").lower() == "true"
    snapshot = org.store.snapshot() if all_or_none else None
    results: list[dict[str, Any]] = []
    for record_id in ids:
        obj = object_for_id(org.store.schema, record_id) if key15(record_id) else None
        try:
            if obj is None:
                raise SalesforceApiError(400, "MALFORMED_ID", f"malformed id {record_id}", [])
            if org.store.get(obj, record_id, include_deleted=True) is None:
                raise SalesforceApiError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
            org.store.delete(obj, record_id)
            results.append({"id": record_id, "success": True, "errors": []})
        except SalesforceApiError as exc:
            results.append({"success": False, "errors": [exc.collection_error()]})
    if snapshot is not None and not all(r["success"] for r in results):
        org.store.restore(snapshot)
        rolled = {
            "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "message": MSG_COLLECTION_ROLLED_BACK,
            "fields": [],
        }
        results = [{"id": r["id"], "success": False, "errors": [rolled]} if r["success"] else r for r in results]
    return Result(200, results)
