"""Do-not-call and callback Tasks on Salesforce: read a contact's DoNotCall before a callback Task is created,
and close the open callback Tasks the connector created when the contact becomes do-not-call.

Requests (measured in tests/test_callbacks_dnc.py):
- guard: one ``GET sobjects/<Contact|Lead>/<id>`` per callback Task (only callback outcomes pay it);
- close: one SOQL query, plus one ``PATCH composite/sobjects`` when something is open (0 otherwise).

The open Tasks are found with SOQL on the record store (no search index, so a Task written a moment ago is
there): ``WhoId = <contact> AND IsClosed = false AND CallObject LIKE '2x-%:task:%'``. ``IsClosed`` is the Task's
read-only flag derived from its Status, and ``LIKE`` with ``%`` is SOQL's wildcard comparison:
https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_comparisonoperators.htm
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_task.htm
The update goes through sObject Collections (``allOrNone: false``, one SaveResult per record):
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connector.errors import PermanentError
from connector.plan import CloseCallbacks, CreateTask
from connector.sinks._salesforce_errors import classify, identifier, record_id, soql_string
from connector.sinks.base import ActionResult, ExecutionContext

if TYPE_CHECKING:
    from connector.sinks.salesforce import SalesforceSink

MAX_RECORDS = 200
"""sObject Collections' limit per request, and the query's LIMIT (a contact has a handful of callback Tasks)."""
MAX_ROUNDS = 5
SUBJECT_MAX = 255
_LIKE_SPECIAL = set("%_\\'")


def do_not_call_set(sink: SalesforceSink, action: CreateTask, context: ExecutionContext) -> str | None:
    """The first of the task's do-not-call fields that is true on the contact's record in Salesforce, else None.

    Reads the whole record (``GET sobjects/<object>/<id>``): asking for named fields with ``?fields=`` would fail
    on a field the object lacks (a do-not-call field that only Contacts have), the whole record never does.
    """
    contact = context.contact()
    if contact is None or not contact.crm_id or not contact.object:
        return None
    sobject = identifier(contact.object, "object")
    path = f"sobjects/{sobject}/{record_id(contact.crm_id)}"
    record = sink.connection.call(lambda sf: sf.restful(path), where=f"read {sobject}") or {}
    lowered = {str(k).lower(): v for k, v in record.items()} if isinstance(record, dict) else {}
    return next((p for p in action.unless_do_not_call if lowered.get(p.lower()) is True), None)


def close_callbacks(sink: SalesforceSink, action: CloseCallbacks, context: ExecutionContext) -> ActionResult:
    """Close every open Task the connector created for the contact (see the module docstring)."""
    contact = context.contact()
    if contact is None or contact.skipped or not contact.crm_id:
        return ActionResult(skipped=True, detail={"reason": "no_contact"})
    sobject = identifier(action.object, "object")
    field = identifier(action.idempotency_property, "field")
    subject = identifier(action.subject_property, "field") if action.subject_property else None
    if _LIKE_SPECIAL & set(action.key_prefix + action.key_marker):
        raise PermanentError("close_callbacks key prefix/marker may not contain LIKE wildcards", code="INVALID_MAPPING")
    pattern = soql_string(f"{action.key_prefix}%{action.key_marker}%")
    selected = ", ".join(dict.fromkeys(["Id", field, *([subject] if subject else [])]))
    soql = (f"SELECT {selected} FROM {sobject} WHERE WhoId = {soql_string(record_id(contact.crm_id))} "
            f"AND IsClosed = false AND {field} LIKE {pattern} ORDER BY CreatedDate LIMIT {MAX_RECORDS}")
    closed: list[str] = []
    for _ in range(MAX_ROUNDS):
        answer = sink.connection.call(lambda sf: sf.query(soql), where=f"query open {sobject}")
        records = [r for r in (answer or {}).get("records") or []
                   if _ours(r.get(field), action) and str(r.get("Id")) not in closed]
        if not records:
            break
        closed += _close(sink, sobject, records, action, subject)
        if len(records) < MAX_RECORDS:
            break
    return ActionResult(crm_id=contact.crm_id, object=sobject, detail={"reason": action.reason, "closed": closed})


def _ours(key: Any, action: CloseCallbacks) -> bool:
    """A connector task key (LIKE is case-insensitive; the key's own spelling decides)."""
    return isinstance(key, str) and key.startswith(action.key_prefix) and action.key_marker in key


def _close(sink: SalesforceSink, sobject: str, records: list[dict[str, Any]], action: CloseCallbacks,
           subject: str | None) -> list[str]:
    bodies = []
    for record in records:
        body: dict[str, Any] = {"attributes": {"type": sobject}, "id": str(record["Id"]), **action.set_properties}
        if subject and action.subject_prefix:
            current = str(record.get(subject) or "")
            if not current.startswith(action.subject_prefix):
                body[subject] = (action.subject_prefix + current)[:SUBJECT_MAX]
        bodies.append(body)
    answers = sink.collection("PATCH", bodies, [], where=f"close {sobject} (sObject Collections)")
    failed = [a for a in answers if not a.get("success")]
    if failed:  # e.g. a restricted Status value the org lacks; a Task deleted meanwhile is gone, not open
        real = [a for a in failed if not any(e.get("statusCode") == "ENTITY_IS_DELETED" for e in a.get("errors") or [])]
        if real:
            raise classify(400, real[0].get("errors"), where=f"close {sobject}")
    return [str(a.get("id") or b["id"]) for a, b in zip(answers, bodies, strict=True) if a.get("success")]
