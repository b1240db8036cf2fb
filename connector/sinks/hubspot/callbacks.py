"""Do-not-call and callback tasks on HubSpot: read the contact's do-not-call property before a callback task is
created, and close the open callback tasks the connector created when the contact becomes do-not-call.

Record-store reads on purpose (v4 associations, batch read/update of up to 100): HubSpot's search index lags writes
by seconds, so a callback task written a moment before the do-not-call could be missed by a search. Design:
docs/hubspot.md, "Callbacks and do-not-call". ``hs_task_status``: the tasks guide documents "either COMPLETED or
NOT_STARTED" (https://developers.hubspot.com/docs/api/crm/tasks); COMPLETED is the closed one. IN_PROGRESS and
DEFERRED as open values: UNVERIFIED.
"""

from __future__ import annotations

from typing import Any

from connector.errors import TransientError
from connector.plan import CloseCallbacks, DoNotCallGuarded
from connector.sinks.base import ActionResult, ExecutionContext
from connector.sinks.hubspot.client import HubSpotApi
from connector.sinks.hubspot.contacts import hubspot_properties

BATCH_MAX = 100
"""HubSpot batch update's limit per request."""
SUBJECT_MAX = 65_536


def do_not_call_set(api: HubSpotApi, action: DoNotCallGuarded, context: ExecutionContext) -> str | None:
    """The first of the task's do-not-call properties that is true on the contact in HubSpot, else None.

    HubSpot answers booleans as the strings "true"/"false" (properties are strings on the wire); an unknown
    property is simply absent from the answer, never an error.
    """
    contact = context.contact()
    if contact is None or contact.skipped or not contact.crm_id:
        return None
    record = api.get(contact.object or "contacts", contact.crm_id, list(action.unless_do_not_call))
    properties = getattr(record, "properties", None) or {}
    return next((p for p in action.unless_do_not_call if str(properties.get(p)).lower() == "true"), None)


def do_not_call_many(api: HubSpotApi, items: list[tuple[DoNotCallGuarded, ExecutionContext]]) -> list[str | None]:
    """``do_not_call_set`` for many callback tasks: one batch read per contact object and 100 ids."""
    answers: list[str | None] = [None] * len(items)
    groups: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for index, (action, context) in enumerate(items):
        contact = context.contact()
        if contact is not None and not contact.skipped and contact.crm_id:
            groups.setdefault((contact.object or "contacts", tuple(action.unless_do_not_call)), []).append(index)
    for (object_type, names), indexes in groups.items():
        ids = list(dict.fromkeys(str(items[i][1].contact().crm_id) for i in indexes))  # type: ignore[union-attr]
        found = {str(r.id): r.properties or {} for r in api.batch_read(object_type, ids, list(names))}
        for index in indexes:
            properties = found.get(str(items[index][1].contact().crm_id), {})  # type: ignore[union-attr]
            answers[index] = next((p for p in names if str(properties.get(p)).lower() == "true"), None)
    return answers


def close_callbacks(api: HubSpotApi, action: CloseCallbacks, context: ExecutionContext) -> ActionResult:
    """Close every open task the connector created on the contact (see the module docstring)."""
    contact = context.contact()
    if contact is None or contact.skipped or not contact.crm_id:
        return ActionResult(skipped=True, detail={"reason": "no_contact"})
    wanted = hubspot_properties(action.set_properties)
    subject = action.subject_property if action.subject_prefix else None
    names = list(dict.fromkeys([action.idempotency_property, *wanted, *([subject] if subject else [])]))
    linked = api.associated_ids(contact.object or "contacts", contact.crm_id, action.object)
    inputs: list[dict[str, Any]] = []
    for record in api.batch_read(action.object, linked, names):
        properties = record.properties or {}
        if not _ours(properties.get(action.idempotency_property), action):
            continue
        if all(properties.get(name) == value for name, value in wanted.items()):
            continue  # already closed
        update = dict(wanted)
        if subject and action.subject_prefix:
            current = str(properties.get(subject) or "")
            if not current.startswith(action.subject_prefix):
                update[subject] = (action.subject_prefix + current)[:SUBJECT_MAX]
        inputs.append({"id": str(record.id), "properties": update})
    closed: list[str] = []
    for start in range(0, len(inputs), BATCH_MAX):
        chunk = inputs[start : start + BATCH_MAX]
        results, errors = api.batch_update(action.object, chunk)
        closed += [str(r.id) for r in results]
        if errors:  # a task deleted meanwhile, a status the portal refuses: the retry reads afresh
            raise TransientError(f"HubSpot refused closing {len(errors)} of {len(chunk)} {action.object}")
    return ActionResult(
        crm_id=contact.crm_id, object=contact.object, detail={"reason": action.reason, "closed": sorted(closed)}
    )


def _ours(key: Any, action: CloseCallbacks) -> bool:
    return isinstance(key, str) and key.startswith(action.key_prefix) and action.key_marker in key
