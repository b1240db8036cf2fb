"""Do-not-call and callback Tasks on Salesforce: read a contact's DoNotCall before a callback Task is created, and
close the open callback Tasks the connector created when the contact becomes do-not-call.

Why SOQL on the record store to find open Tasks (``WhoId … AND IsClosed = false AND CallObject LIKE '2x-%:task:%'``):
no search index, so a Task written a moment ago is there. Under a backlog one SOQL and one sObject Collections
``PATCH`` serve up to 200 events. Design notes: docs/salesforce.md "Under a backlog".
"""

from __future__ import annotations

import json
from typing import Any

from simple_salesforce.format import format_soql

from connector.errors import PermanentError, SinkError, StaleContact
from connector.plan import CloseCallbacks, DoNotCallGuarded
from connector.sinks.base import ActionResult, ExecutionContext
from connector.sinks.salesforce.client import SalesforceConnection
from connector.sinks.salesforce.collaborators import Collaborators
from connector.sinks.salesforce.errors import classify, identifier, record_id
from connector.sinks.salesforce.stale import GONE

MAX_RECORDS = 200
"""sObject Collections' limit per request; also how many ids go into one ``IN (…)``."""
SUBJECT_MAX = 255
_LIKE_SPECIAL = set("%_\\'")
Item = tuple[Any, ExecutionContext]
Outcome = ActionResult | SinkError


def do_not_call_set(
    connection: SalesforceConnection, action: DoNotCallGuarded, context: ExecutionContext
) -> str | None:
    """The first of the guarded do-not-call fields (a callback task's, or its outcome's) that is true on the contact's
    record in Salesforce, else None.

    Reads the whole record (``GET sobjects/<object>/<id>``): asking for named fields with ``?fields=`` would fail
    on a field the object lacks (a do-not-call field that only Contacts have), the whole record never does.
    """
    contact = context.contact()
    if contact is None or not contact.crm_id or not contact.object:
        return None
    sobject = identifier(contact.object, "object")
    path = f"sobjects/{sobject}/{record_id(contact.crm_id)}"
    try:
        record = connection.call(lambda sf: sf.restful(path), where=f"read {sobject}") or {}
    except PermanentError as exc:
        if exc.status == 404 or exc.code in GONE:  # deleted or merged away: the engine resolves the number again
            raise StaleContact(
                f"the {sobject} {contact.crm_id} no longer exists in Salesforce ({exc.code})",
                status=exc.status,
                code=exc.code,
                crm_message=exc.crm_message,
            ) from exc
        raise
    return _true_field(record, action.unless_do_not_call)


def do_not_call_many(
    connection: SalesforceConnection, items: list[tuple[DoNotCallGuarded, ExecutionContext]]
) -> list[str | None]:
    """``do_not_call_set`` for many callback Tasks: one SOQL per contact object and 200 ids. A field the object
    lacks makes SOQL fail as a whole (INVALID_FIELD): then each item is read on its own, which never fails so."""
    answers: list[str | None] = [None] * len(items)
    groups: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for index, (action, context) in enumerate(items):
        contact = context.contact()
        if contact is not None and contact.crm_id and contact.object:
            fields = tuple(identifier(p, "field") for p in action.unless_do_not_call)
            groups.setdefault((identifier(contact.object, "object"), fields), []).append(index)
    for (sobject, fields), indexes in groups.items():
        for start in range(0, len(indexes), MAX_RECORDS):
            chunk = indexes[start : start + MAX_RECORDS]
            ids = {_id15(record_id(items[i][1].contact().crm_id or "")) for i in chunk}  # type: ignore[union-attr]
            soql = format_soql(
                "SELECT Id, {fields:literal} FROM {sobject:literal} WHERE Id IN {ids}",
                fields=", ".join(dict.fromkeys(fields)),
                sobject=sobject,
                ids=sorted(ids),
            )
            try:
                answer = connection.call(
                    lambda sf, q=soql: sf.query_all(q),  # type: ignore[misc]
                    where=f"query {sobject} do-not-call",
                )
            except PermanentError:
                for index in chunk:
                    answers[index] = do_not_call_set(connection, *items[index])
                continue
            by_id = {_id15(str(r.get("Id"))): r for r in (answer or {}).get("records") or []}
            for index in chunk:
                record = by_id.get(_id15(items[index][1].contact().crm_id or ""))  # type: ignore[union-attr]
                answers[index] = _true_field(record or {}, items[index][0].unless_do_not_call)
    return answers


def close_callbacks(parts: Collaborators, action: CloseCallbacks, context: ExecutionContext) -> ActionResult:
    """Close every open Task the connector created for the contact (see the module docstring)."""
    [outcome] = close_callbacks_many(parts, [(action, context)])
    if isinstance(outcome, SinkError):
        raise outcome
    return outcome


def close_callbacks_many(parts: Collaborators, items: list[Item]) -> list[Outcome]:
    """``close_callbacks`` for many do-not-call events at once: one SOQL and one Collections PATCH per 200
    contacts. A Task Salesforce refuses to close fails only its own event's action."""
    results: list[Outcome | None] = [None] * len(items)
    groups: dict[str, list[int]] = {}
    for index, (action, context) in enumerate(items):
        contact = context.contact()
        if contact is None or contact.skipped or not contact.crm_id:
            results[index] = ActionResult(skipped=True, detail={"reason": "no_contact"})
            continue
        shape = json.dumps(
            [
                action.object,
                action.idempotency_property,
                action.key_prefix,
                action.key_marker,
                action.set_properties,
                action.subject_property,
                action.subject_prefix,
            ],
            sort_keys=True,
        )
        groups.setdefault(shape, []).append(index)
    for indexes in groups.values():
        for start in range(0, len(indexes), MAX_RECORDS):
            _close_group(parts, items, indexes[start : start + MAX_RECORDS], results)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def _close_group(parts: Collaborators, items: list[Item], indexes: list[int], results: list[Outcome | None]) -> None:
    action: CloseCallbacks = items[indexes[0]][0]
    sobject = identifier(action.object, "object")
    field = identifier(action.idempotency_property, "field")
    subject = identifier(action.subject_property, "field") if action.subject_property else None
    if _LIKE_SPECIAL & set(action.key_prefix + action.key_marker):
        raise PermanentError("close_callbacks key prefix/marker may not contain LIKE wildcards", code="INVALID_MAPPING")
    by_who: dict[str, list[int]] = {}
    for index in indexes:
        contact = items[index][1].contact()
        assert contact is not None and contact.crm_id
        by_who.setdefault(_id15(record_id(contact.crm_id)), []).append(index)
    soql = format_soql(
        "SELECT {selected:literal} FROM {sobject:literal} WHERE WhoId IN {who} "
        "AND IsClosed = false AND {field:literal} LIKE '{prefix:like}%{marker:like}%' ORDER BY CreatedDate",
        selected=", ".join(dict.fromkeys(["Id", "WhoId", field, *([subject] if subject else [])])),
        sobject=sobject,
        who=sorted(by_who),
        field=field,
        prefix=action.key_prefix,
        marker=action.key_marker,
    )
    answer = parts.connection.call(lambda sf: sf.query_all(soql), where=f"query open {sobject}")
    records = [
        r
        for r in (answer or {}).get("records") or []
        if _ours(r.get(field), action) and _id15(str(r.get("WhoId"))) in by_who
    ]
    closed: dict[str, list[str]] = {who: [] for who in by_who}
    failed: dict[str, SinkError] = {}
    for start in range(0, len(records), MAX_RECORDS):
        chunk = records[start : start + MAX_RECORDS]
        bodies = [_body(sobject, r, action, subject) for r in chunk]
        answers = parts.collection("PATCH", bodies, [], where=f"close {sobject} (sObject Collections)")
        for record, saved in zip(chunk, answers, strict=True):
            who = _id15(str(record.get("WhoId")))
            errors = saved.get("errors") or []
            if saved.get("success"):
                closed[who].append(str(record["Id"]))
            elif not any(e.get("statusCode") == "ENTITY_IS_DELETED" for e in errors):  # deleted: not open any more
                failed.setdefault(who, classify(400, errors, where=f"close {sobject}"))
    for who, members in by_who.items():
        for index in members:
            contact = items[index][1].contact()
            assert contact is not None
            results[index] = failed.get(who) or ActionResult(
                crm_id=contact.crm_id,
                object=contact.object,  # the id is the contact's (or lead's), not a Task's: its label must say so
                detail={"reason": action.reason, "closed": sorted(closed[who])},
            )


def _body(sobject: str, record: dict[str, Any], action: CloseCallbacks, subject: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"attributes": {"type": sobject}, "id": str(record["Id"]), **action.set_properties}
    if subject and action.subject_prefix:
        current = str(record.get(subject) or "")
        if not current.startswith(action.subject_prefix):
            body[subject] = (action.subject_prefix + current)[:SUBJECT_MAX]
    return body


def _true_field(record: dict[str, Any], fields: list[str]) -> str | None:
    lowered = {str(k).lower(): v for k, v in record.items()} if isinstance(record, dict) else {}
    return next((p for p in fields if lowered.get(p.lower()) is True), None)


def _ours(key: Any, action: CloseCallbacks) -> bool:
    """A connector task key (LIKE is case-insensitive; the key's own spelling decides)."""
    return isinstance(key, str) and key.startswith(action.key_prefix) and action.key_marker in key


def _id15(value: str) -> str:
    """The case-sensitive 15-character form of a record id (SOQL answers 18; the ledger may hold either)."""
    return value[:15]
