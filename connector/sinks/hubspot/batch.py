"""Batched writes for the HubSpot sink under a backlog: up to 100 Calls, Tasks or contact updates of
different events in one request (HubSpot's batch create/update APIs), instead of one each.

Results of a batch create are matched to their actions by the idempotency key each record carries
(HubSpot does not promise input order). A batch HubSpot refuses as a whole for properties the portal lacks
(schema drift) is sent again without them where they occur (``skipped_fields``); refused for anything else (one
invalid value fails all of it, and HubSpot does not say whose), it is retried item by item, so one bad value costs
its own record's property (or its event) alone and the others go through.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from connector.errors import PermanentError, SinkError
from connector.plan import Action, CreateActivity, CreateTask, UpdateContact
from connector.sinks.base import ActionResult, ExecutionContext
from connector.sinks.drift import VALUE_CODES, protected_fields, refusals, refused_in, skipped_detail
from connector.sinks.hubspot.associations import association
from connector.sinks.hubspot.contacts import hubspot_properties
from connector.sinks.hubspot.parts import QUESTION_PREFIX, SinkParts

Outcome = ActionResult | SinkError
T = TypeVar("T")


def execute_batch(parts: SinkParts, items: list[tuple[Action, ExecutionContext]]) -> list[Outcome]:
    """One result (or per-item error) for each (action, context), in order."""
    results: list[Outcome | None] = [None] * len(items)
    creates: dict[str, list[int]] = {}
    updates: dict[str, list[int]] = {}
    for index, (action, context) in enumerate(items):
        contact = context.contact()
        batchable_create = (
            isinstance(action, (CreateActivity, CreateTask))
            and action.idempotency_property
            and action.key not in parts.uncertain
            and (not action.associate_with_contact or _usable(contact))
        )
        if batchable_create:
            creates.setdefault(action.object, []).append(index)
        elif isinstance(action, UpdateContact) and _usable(contact) and action.fields:
            updates.setdefault(action.object or contact.object or "contacts", []).append(index)
        else:
            results[index] = _single(parts, action, context)
    for object_type, indexes in creates.items():
        _create_many(parts, object_type, indexes, items, results)
    for object_type, indexes in updates.items():
        _update_many(parts, object_type, indexes, items, results)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def _usable(contact: ActionResult | None) -> bool:
    return contact is not None and not contact.skipped and bool(contact.crm_id)


def _single(parts: SinkParts, action: Action, context: ExecutionContext) -> Outcome:
    try:
        return parts.execute_one(action, context)
    except SinkError as exc:
        if not isinstance(exc, PermanentError):
            raise  # an outage or rate limit concerns the whole batch
        return exc


def _create_many(
    parts: SinkParts,
    object_type: str,
    indexes: list[int],
    items: list[tuple[Action, ExecutionContext]],
    results: list[Outcome | None],
) -> None:
    inputs, by_key, fitted = [], {}, {}
    for index in indexes:
        action, context = items[index]
        assert isinstance(action, (CreateActivity, CreateTask)) and action.idempotency_property
        properties = hubspot_properties(action.properties)
        properties.setdefault(action.idempotency_property, action.idempotency_key)
        fit = parts.schema.fit(object_type, properties, keep=[action.idempotency_property])  # fitting
        properties, fitted[index] = fit.values, fit.detail()
        contact = context.contact()
        associations = [association(action.object, contact)] if action.associate_with_contact and contact else []
        inputs.append({"properties": properties, "associations": associations})
        by_key[action.idempotency_key] = index
    try:
        records, skipped = _send_dropping(
            parts, object_type, indexes, items, inputs, lambda sent: parts.api.batch_create(object_type, sent)
        )
    except PermanentError:
        for index in indexes:  # one bad input fails the whole batch: find it by sending them one by one
            results[index] = _single(parts, *items[index])
        return
    by_property = {(items[i][0].idempotency_property, key): i for key, i in by_key.items()}  # type: ignore[union-attr]
    names = {name for name, _ in by_property}
    for record in records:  # matched by key through a dict: a scan of the batch per record is quadratic
        properties = record.properties or {}
        for name in names:
            index = by_property.get((name, properties.get(name)))
            if index is not None:
                results[index] = ActionResult(
                    crm_id=str(record.id),
                    object=object_type,
                    created=True,
                    detail=skipped_detail({"batch": len(indexes), **fitted[index]}, skipped[index]),
                )
    for index in indexes:
        if results[index] is None:  # not in the answer: write it on its own (looked up first if uncertain)
            results[index] = _single(parts, *items[index])


def _update_many(
    parts: SinkParts,
    object_type: str,
    indexes: list[int],
    items: list[tuple[Action, ExecutionContext]],
    results: list[Outcome | None],
) -> None:
    ids = Counter(items[i][1].contact().crm_id for i in indexes)  # type: ignore[union-attr]
    batched = [i for i in indexes if ids[items[i][1].contact().crm_id] == 1]  # type: ignore[union-attr]
    for index in indexes:
        if index not in batched:  # HubSpot refuses a batch naming one record twice
            results[index] = _single(parts, *items[index])
    if not batched:
        return
    inputs: list[dict[str, Any]] = []
    fitted: dict[int, dict[str, list[str]]] = {}
    for index in batched:
        action, context = items[index]
        assert isinstance(action, UpdateContact)
        fit = parts.schema.fit(object_type, hubspot_properties({f.property: f.value for f in action.fields}))
        fitted[index] = fit.detail()  # fitting: every value fits its property
        inputs.append(
            {
                "id": context.contact().crm_id,  # type: ignore[union-attr]
                "properties": fit.values,
            }
        )
    try:
        (_, errors), skipped = _send_dropping(
            parts,
            object_type,
            batched,
            items,
            inputs,
            lambda sent: parts.api.batch_update(object_type, sent),
            questions_go_single=True,
        )
    except PermanentError:
        for index in batched:  # e.g. a new question's property: the single path creates it
            results[index] = _single(parts, *items[index])
        return
    failed_ids = {str(i) for error in errors for i in (getattr(error, "context", None) or {}).get("ids", [])}
    for index, sent in zip(batched, inputs, strict=True):
        if sent["id"] in failed_ids:
            results[index] = _single(parts, *items[index])  # gone or refused: the single path says which
        else:
            results[index] = ActionResult(
                crm_id=sent["id"],
                object=object_type,
                detail=skipped_detail(
                    {"fields": sorted(sent["properties"]), "batch": len(batched), **fitted[index]}, skipped[index]
                ),
            )


def _send_dropping(
    parts: SinkParts,
    object_type: str,
    indexes: list[int],
    items: list[tuple[Action, ExecutionContext]],
    inputs: list[dict[str, Any]],
    send: Callable[[list[dict[str, Any]]], T],
    *,
    questions_go_single: bool = False,
) -> tuple[T, dict[int, dict[str, str]]]:
    """One batch request; when HubSpot refuses it for properties the portal lacks (one missing property fails the
    whole batch, listing each in ``errors[].context.propertyName``), the same batch again without them.

    Returns the answer and, per item index, the properties left out. Raises MissingFields when a left-out property
    must not be skipped, and the PermanentError for anything else — also, with ``questions_go_single``, when a
    missing property is a script question's, which the single path creates (capped per event).
    """
    skipped: dict[int, dict[str, str]] = {index: {} for index in indexes}
    while True:
        sent = [
            {**entry, "properties": {k: v for k, v in entry["properties"].items() if k not in skipped[index]}}
            for index, entry in zip(indexes, inputs, strict=True)
        ]
        try:
            return send(sent), skipped
        except PermanentError as exc:
            found = refusals(exc)
            if any(refusal.code in VALUE_CODES for refusal in found or []):
                raise  # a refused value is one record's, but HubSpot's batch error does not say whose: item by item
            hits = {
                index: refused_in(found, entry["properties"], object_type)
                for index, entry in zip(indexes, sent, strict=True)
            }
            hits = {index: refused for index, refused in hits.items() if refused}
            if not hits or (
                questions_go_single
                and parts.auto_create_questions
                and any(name.startswith(QUESTION_PREFIX) for refused in hits.values() for name in refused)
            ):
                raise
            for index, refused in hits.items():
                parts.drift.check(object_type, refused, protected_fields(items[index][0]))
            for index, refused in hits.items():
                skipped[index].update(refused)
