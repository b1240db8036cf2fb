"""Batched writes under a backlog: the Tasks, or the Contact/Lead updates, of up to 200 events in ONE sObject
Collections request (``allOrNone: false``) instead of one Composite each.

Why: one API call for many events, while a record Salesforce refuses still fails only its own event (one
SaveResult per record). A create whose earlier answer was lost is looked up first; creates committed before this
call fails are marked uncertain. Two updates of one record never share a request (precedence). Design notes:
docs/salesforce.md "Under a backlog".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

from connector.errors import PermanentError, SinkError, StaleContact, TransientError
from connector.plan import Action, UpdateContact
from connector.precedence import WrittenField, may_write
from connector.sinks.base import ActionResult, ExecutionContext
from connector.sinks.drift import SIZE_CODES, SKIPPED, protected_fields, refusals, refused_in, skipped_detail
from connector.sinks.fit import fit_values
from connector.sinks.salesforce.collaborators import Collaborators
from connector.sinks.salesforce.errors import classify
from connector.sinks.salesforce.records import Prepared, Write
from connector.sinks.salesforce.stale import stale_contact

Outcome = ActionResult | SinkError
Item = tuple[Action, ExecutionContext]
Record = tuple[str, str]
"""(lower-case sObject, 15-character id): one CRM record however its id is spelled."""
T = TypeVar("T")
MAX_RECORDS = 200
"""sObject Collections' limit per request."""
LOOKUP_KEYS = 100
"""Keys per SOQL lookup: keeps the query URL short and its LIMIT 200 above any plausible number of matches."""


def execute_batch(parts: Collaborators, items: list[Item]) -> list[Outcome]:
    """One result, or a per-item SinkError, for each (action, context), in order.

    Raises a SinkError other than PermanentError (outage, rate limit, expired credentials) for the whole batch.
    """
    results: list[Outcome | None] = [None] * len(items)
    try:
        _run(parts, items, results)
    except BaseException:
        parts.uncertain.mark(
            [
                items[i][0].key
                for i, r in enumerate(results)
                if isinstance(r, ActionResult) and isinstance(items[i][0], Write)
            ]
        )
        raise
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def _run(parts: Collaborators, items: list[Item], results: list[Outcome | None]) -> None:
    creates = [i for i, (a, _) in enumerate(items) if isinstance(a, Write)]
    updates = [i for i, (a, _) in enumerate(items) if isinstance(a, UpdateContact)]
    for index in set(range(len(items))) - set(creates) - set(updates):
        results[index] = _single(parts, *items[index])
    try:
        parts.types.ensure(o for o in (_object_of(*items[i]) for i in creates + updates) if o)
    except PermanentError:  # the mapping names an object the org lacks: the single path says which item fails
        for index in creates + updates:
            results[index] = _single(parts, *items[index])
        return
    _recheck(parts, [i for i in creates if items[i][0].key in parts.uncertain], items, results)
    _create(parts, [i for i in creates if results[i] is None], items, results)
    _update(parts, updates, items, results)


def _object_of(action: Action, context: ExecutionContext) -> str | None:
    if isinstance(action, Write):
        return action.object
    contact = context.contact()
    return getattr(action, "object", None) or (contact.object if contact else None)


def _single(parts: Collaborators, action: Action, context: ExecutionContext) -> Outcome:
    """The single, looked-up Composite path for one item; its PermanentError (or StaleContact: that event's
    contact is gone) is that item's result."""
    try:
        return parts.execute_one(action, context)
    except (PermanentError, StaleContact) as exc:
        return exc


def _judged(parts: Collaborators, error: SinkError, prepared: Prepared, context: ExecutionContext) -> SinkError:
    """A record's refusal, as StaleContact when it says the event's contact no longer exists."""
    contact = context.contact()
    stale = stale_contact(error, prepared, contact)
    if stale is None or contact is None or not contact.crm_id:
        return error
    parts.contacts.forget(contact.crm_id)
    return stale


def _fits_afresh(parts: Collaborators, error: SinkError, prepared: Prepared) -> bool:
    """Whether a record refused for a value's size may fit once prepared again: its object's cached describe is
    outdated (the field created or shortened since; forgotten here, so the single path describes it afresh), or
    was refreshed since this record was prepared (the cached limit now cuts or clamps the value)."""
    refused = refused_in(refusals(error, SIZE_CODES), prepared.body, prepared.sobject)
    if not refused:
        return False
    sent = {name: prepared.body[name] for name in refused}
    if parts.types.outdated(prepared.sobject, sent):
        parts.types.forget(prepared.sobject)
        return True
    return bool(fit_values(sent, parts.types.limits(prepared.sobject)).detail())


def _chunks(values: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# -- creates --------------------------------------------------------------------------------------------------


def _recheck(parts: Collaborators, indexes: list[int], items: list[Item], results: list[Outcome | None]) -> None:
    """Creates this process may have written without hearing back: found ones are answered, the rest are known
    to be absent and are written with the others."""
    for chunk in _chunks(indexes, LOOKUP_KEYS):
        actions = [items[i][0] for i in chunk]
        found = parts.find_written([a for a in actions if isinstance(a, Write)])
        for index, action in zip(chunk, actions, strict=True):
            if action.key in found:
                results[index] = found[action.key]
        parts.uncertain.settle([a.key for a in actions])


def _create(parts: Collaborators, indexes: list[int], items: list[Item], results: list[Outcome | None]) -> None:
    ready: list[tuple[int, Prepared]] = []
    for index in indexes:
        action, context = items[index]
        try:
            prepared = parts.prepare(action, context.contact())
        except PermanentError as exc:
            results[index] = exc
            continue
        assert not isinstance(prepared, ActionResult)  # a create always has a body
        ready.append((index, prepared))
    for chunk in _chunks(ready, MAX_RECORDS):
        ordered = sorted(chunk, key=lambda r: r[1].sobject.lower())  # one chunk per type (≤ 10 allowed)
        keys = [items[i][0].key for i, _ in ordered]
        try:
            answers, skipped = _send_collection(
                parts, "POST", [(i, items[i][0], p) for i, p in ordered], keys, where="create (sObject Collections)"
            )
        except PermanentError:  # refused as a whole: find the bad record by sending them one by one
            for index, _ in ordered:
                results[index] = _single(parts, *items[index])
            continue
        parts.uncertain.settle(keys)
        for (index, prepared), answer in zip(ordered, answers, strict=True):
            key = items[index][0].key
            if answer.get("success") and answer.get("id"):
                results[index] = ActionResult(
                    crm_id=str(answer["id"]),
                    object=prepared.sobject,
                    created=True,
                    detail=skipped_detail({"batch": len(ordered), **prepared.fitted}, skipped[index]),
                )
            elif answer.get("success"):  # saved, but we do not know its id: look it up on the retry
                parts.uncertain.mark([key])
                results[index] = TransientError(f"Salesforce saved {key} without answering its id")
            else:
                error = _judged(
                    parts,
                    classify(400, answer.get("errors"), where=f"create {prepared.sobject} [{key}]"),
                    prepared,
                    items[index][1],
                )
                # refused for a field alone (e.g. field-level security): the single path leaves that field out;
                # for a value's size under an outdated describe: the single path fits it to a fresh one
                resend = refusals(error) or _fits_afresh(parts, error, prepared)
                results[index] = _single(parts, *items[index]) if resend else error


# -- updates --------------------------------------------------------------------------------------------------


def _update(parts: Collaborators, indexes: list[int], items: list[Item], results: list[Outcome | None]) -> None:
    """Updates in rounds: round n holds the n-th update of each record, so no request names a record twice."""
    queues: dict[Record, list[int]] = {}
    for index in indexes:
        contact = items[index][1].contact()
        if contact is None or not contact.crm_id or not contact.object:
            results[index] = _single(parts, *items[index])  # NO_CONTACT, as the single path says
            continue
        queues.setdefault((contact.object.lower(), contact.crm_id[:15]), []).append(index)
    written: dict[Record, dict[str, WrittenField]] = {}
    depth = max((len(q) for q in queues.values()), default=0)
    for position in range(depth):
        ready: list[tuple[Record, int, UpdateContact, Prepared]] = []
        for record, queue in queues.items():
            if position >= len(queue):
                continue
            index = queue[position]
            action, context = items[index]
            assert isinstance(action, UpdateContact)
            allowed = _after(action, written.get(record, {}))
            if not allowed.fields:
                results[index] = ActionResult(
                    crm_id=record_crm_id(context),
                    object=_object_of(action, context),
                    skipped=True,
                    detail={"reason": "superseded_in_batch"},
                )
                continue
            try:
                prepared = parts.prepare(allowed, context.contact())
            except PermanentError as exc:
                results[index] = exc
                continue
            if isinstance(prepared, ActionResult):  # nothing for this object (Lead Status on a Contact)
                results[index] = prepared
                continue
            ready.append((record, index, allowed, prepared))
        for chunk in _chunks(ready, MAX_RECORDS):
            _send_updates(parts, chunk, items, results, written)


def record_crm_id(context: ExecutionContext) -> str | None:
    contact = context.contact()
    return contact.crm_id if contact else None


def _after(action: UpdateContact, earlier: dict[str, WrittenField]) -> UpdateContact:
    """The update with only the fields precedence lets it write over this batch's earlier update of the record."""
    if not earlier:
        return action
    fields = [f for f in action.fields if may_write(f, earlier.get(f.property))]
    return action if len(fields) == len(action.fields) else action.model_copy(update={"fields": fields})


def _send_updates(
    parts: Collaborators,
    chunk: list[tuple[Record, int, UpdateContact, Prepared]],
    items: list[Item],
    results: list[Outcome | None],
    written: dict[Record, dict[str, WrittenField]],
) -> None:
    ordered = sorted(chunk, key=lambda r: r[3].sobject.lower())
    try:
        answers, skipped = _send_collection(
            parts, "PATCH", [(i, a, p) for _, i, a, p in ordered], [], where="update (sObject Collections)"
        )
    except PermanentError:  # refused as a whole (e.g. a field the org lacks): one by one, each its own error
        for record, index, allowed, _ in ordered:
            results[index] = outcome = _single(parts, allowed, items[index][1])
            if isinstance(outcome, ActionResult):
                _remember(written, record, allowed, items[index][0].key, outcome.detail.get(SKIPPED) or {})
        return
    for (record, index, allowed, prepared), answer in zip(ordered, answers, strict=True):
        action = items[index][0]
        if not answer.get("success"):
            error = _judged(
                parts,
                classify(400, answer.get("errors"), where=f"update {prepared.sobject} [{action.key}]"),
                prepared,
                items[index][1],
            )
            resend = refusals(error) or _fits_afresh(parts, error, prepared)
            results[index] = outcome = _single(parts, allowed, items[index][1]) if resend else error
            if isinstance(outcome, ActionResult):
                _remember(written, record, allowed, action.key, outcome.detail.get(SKIPPED) or {})
            continue
        detail: dict[str, object] = {"fields": sorted(prepared.body), "batch": len(ordered), **prepared.fitted}
        assert isinstance(action, UpdateContact)
        superseded = sorted({f.property for f in action.fields} - {f.property for f in allowed.fields})
        if superseded:
            detail["superseded_in_batch"] = superseded
        results[index] = ActionResult(
            crm_id=prepared.record_id, object=prepared.sobject, detail=skipped_detail(detail, skipped[index])
        )
        _remember(written, record, allowed, action.key, skipped[index])


def _remember(
    written: dict[Record, dict[str, WrittenField]],
    record: Record,
    update: UpdateContact,
    key: str,
    skipped: dict[str, str],
) -> None:
    state = written.setdefault(record, {})
    for field in update.fields:
        if field.property not in skipped:  # refused by the org: not written, so it does not supersede anything
            state[field.property] = WrittenField(field.value, field.rank, field.call_time, key)


def _send_collection(
    parts: Collaborators, method: str, chunk: list[tuple[int, Action, Prepared]], keys: list[str], *, where: str
) -> tuple[list[dict[str, Any]], dict[int, dict[str, str]]]:
    """One sObject Collections request; when the org refuses it as a whole for fields it lacks (INVALID_FIELD
    is a deserialization error, so no record is saved), the same request again without them, in this delivery.

    Returns the answers and, per item index, the fields left out. Raises MissingFields when a left-out field
    must not be skipped, the PermanentError when the refusal is anything else.
    """
    skipped: dict[int, dict[str, str]] = {index: {} for index, _, _ in chunk}
    while True:
        records = [
            {
                "attributes": {"type": p.sobject},
                **({"id": p.record_id} if p.record_id else {}),
                **{k: v for k, v in p.body.items() if k not in skipped[i]},
            }
            for i, _, p in chunk
        ]
        try:
            return parts.collection(method, records, keys, where=where), skipped
        except PermanentError as exc:
            found = refusals(exc)
            hits = {i: refused_in(found, [k for k in p.body if k not in skipped[i]], p.sobject) for i, _, p in chunk}
            hits = {i: refused for i, refused in hits.items() if refused}
            if not hits:
                raise
            for index, action, prepared in chunk:
                if index in hits:
                    parts.drift.check(prepared.sobject, hits[index], protected_fields(action))
            for index, _, prepared in chunk:
                if index in hits:
                    skipped[index].update(hits[index])
                    parts.types.forget(prepared.sobject, hits[index])
