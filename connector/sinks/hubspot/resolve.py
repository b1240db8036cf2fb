"""Many events' contacts resolved together under a backlog (HubSpot), instead of one search (and one create) each.

Why: HubSpot allows 5 searches per second per account, so one number per search caps a backlog of new or uncached
numbers at a few events per second. Here up to 100 numbers go into one search (an ``IN`` filter per phone property),
and the contacts missing for new numbers into one batch create; whatever the batch path cannot decide safely goes
through the sink's single path (``SinkParts.execute_one``). Read-your-writes across workers stays the engine's
(``connector.engine.batch``). Design and HubSpot's limits: docs/hubspot.md, "Contacts".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from connector.errors import AwaitingIndex, OutcomeUnknown, PermanentError, SinkError, TransientError
from connector.phones import national_digits, numbers_held, one_per_number, same_number
from connector.plan import MatchByPhone, ResolveContact
from connector.sinks.base import ActionResult, ExecutionContext
from connector.sinks.hubspot.client import HubSpotApi
from connector.sinks.hubspot.contacts import SEARCHABLE, choose, hubspot_properties, search_properties
from connector.sinks.hubspot.errors import existing_id
from connector.sinks.hubspot.parts import SinkParts

log = logging.getLogger(__name__)
Outcome = ActionResult | SinkError
IN_VALUES_MAX = 100
"""Values per ``IN`` filter. The search guide gives no number for ``IN`` (UNVERIFIED); 100 keeps a page of results
(at most 200) enough for nearly every batch, and the emulator enforces the same 100."""
MAX_GROUPS = 5
BATCH_CREATE_MAX = 100
"""Inputs per batch create (HubSpot's batch endpoints take up to 100)."""


def resolve_many(parts: SinkParts, actions: Sequence[ResolveContact]) -> list[Outcome]:
    """One result (or this action's own error) per action, in order; an outage or rate limit raises for all."""
    results: list[Outcome | None] = [None] * len(actions)
    batched = [i for i, a in enumerate(actions) if _phone_rule(a) is not None and a.key not in parts.uncertain]
    for index in set(range(len(actions))) - set(batched):
        results[index] = _single(parts, actions[index])
    _find(parts, actions, batched, results)
    missing = [i for i in batched if results[i] is None]
    for index in missing:
        if actions[index].on_no_match == "skip":
            results[index] = ActionResult(skipped=True, detail={"reason": "no_match"})
    _create(parts, actions, [i for i in missing if results[i] is None], results)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def _phone_rule(action: ResolveContact) -> MatchByPhone | None:
    """The plan's only rule when it is a phone rule (plans with a ``meta`` id rule go the single path)."""
    rule = action.match[0] if len(action.match) == 1 else None
    return rule if isinstance(rule, MatchByPhone) else None


def _single(parts: SinkParts, action: ResolveContact) -> Outcome:
    try:
        return parts.execute_one(action, ExecutionContext())
    except (PermanentError, AwaitingIndex) as exc:  # this action's own; an outage or rate limit concerns the batch
        return exc  # (a wait for the index held up the whole batch with it)


# -- finding existing contacts ------------------------------------------------------------------------------


def _find(
    parts: SinkParts, actions: Sequence[ResolveContact], indexes: list[int], results: list[Outcome | None]
) -> None:
    """The sink's in-process cache first, then one search per 100 numbers per (object, phone fields)."""
    depth = max((len(_rule(actions[i]).objects) for i in indexes), default=0)
    for level in range(depth):  # a rule's objects in order: the first that has the number wins
        groups: dict[tuple[str, tuple[str, ...]], list[int]] = {}
        for index in indexes:
            rule = _rule(actions[index])
            if results[index] is not None or level >= len(rule.objects):
                continue
            object_type = rule.objects[level]
            cached = parts.cache.get((object_type, tuple(rule.fields), rule.e164))
            if cached is not None:
                results[index] = ActionResult(
                    crm_id=cached, object=object_type, detail={"matched_by": "phone", "cached": True}
                )
                continue
            groups.setdefault((object_type, tuple(rule.fields)), []).append(index)
        for (object_type, fields), members in groups.items():
            try:
                found = search_numbers(parts.api, object_type, list(fields), [_rule(actions[i]).e164 for i in members])
            except PermanentError as exc:  # the portal refused the batched form: one number per search, as before
                log.warning(
                    "batched contact search refused; resolving one by one",
                    extra={"sink": parts.name, "crm_code": exc.code, "status": exc.status},
                )
                for index in members:
                    results[index] = _single(parts, actions[index])
                continue
            for index in members:
                action, rule = actions[index], _rule(actions[index])
                records = found.get(rule.e164)
                if not records:
                    continue
                try:
                    chosen = choose(records, action.on_multiple)
                except PermanentError as exc:
                    results[index] = exc
                    continue
                crm_id = str(chosen.id)
                parts.cache.put((object_type, fields, rule.e164), crm_id)
                parts.cache.put((object_type, "id", crm_id), crm_id)
                results[index] = ActionResult(
                    crm_id=crm_id,
                    object=object_type,
                    detail={"matched_by": "phone", "candidates": len(records), "batch": len(members)},
                )


def _rule(action: ResolveContact) -> MatchByPhone:
    rule = _phone_rule(action)
    assert rule is not None
    return rule


def filter_groups(fields: Sequence[str], values: list[str]) -> list[list[dict[str, Any]]]:
    """Filter groups asking for any of ``values`` (national digits) in any phone field or its searchable copy,
    chunked to 5 groups per search."""
    names = list(dict.fromkeys([*fields, *(SEARCHABLE[f] for f in fields if f in SEARCHABLE)]))
    groups = [{"filters": [{"propertyName": name, "operator": "IN", "values": values}]} for name in names]
    return [groups[i : i + MAX_GROUPS] for i in range(0, len(groups), MAX_GROUPS)]


def search_numbers(api: HubSpotApi, object_type: str, fields: list[str], numbers: list[str]) -> dict[str, list[Any]]:
    """E.164 → the records whose phone fields hold that number (confirmed by the shared matcher)."""
    wanted = list(dict.fromkeys(numbers))
    by_national: dict[str, list[str]] = {}
    for e164 in wanted:
        by_national.setdefault(national_digits(e164), []).append(e164)
    found: dict[str, dict[str, Any]] = {}
    nationals = list(by_national)
    for start in range(0, len(nationals), IN_VALUES_MAX):
        chunk = nationals[start : start + IN_VALUES_MAX]
        records: dict[str, Any] = {}
        for groups in filter_groups(fields, chunk):
            for record in api.search_all(object_type, groups, search_properties(fields), sort="createdate"):
                records.setdefault(str(record.id), record)
        for record in records.values():
            for e164 in numbers_held(getattr(record, "properties", None) or {}, fields, by_national):
                found.setdefault(e164, {})[str(record.id)] = record
    return {e164: list(hits.values()) for e164, hits in found.items()}


# -- creating missing contacts --------------------------------------------------------------------------------


def _create(
    parts: SinkParts, actions: Sequence[ResolveContact], indexes: list[int], results: list[Outcome | None]
) -> None:
    """One contact per distinct (object, number), in batch creates; followers of a number share its leader's."""
    leaders, followers = one_per_number(
        indexes, lambda index: (actions[index].create_object or "contacts", _rule(actions[index]).e164)
    )
    plain: dict[str, list[tuple[int, dict[str, str], dict[str, Any]]]] = {}
    with_email: dict[str, list[tuple[int, dict[str, str], dict[str, Any]]]] = {}
    for (object_type, e164), index in leaders.items():
        fitted = parts.schema.fit(object_type, hubspot_properties(actions[index].create_properties))  # fitting
        if not any(same_number(v, e164) for v in fitted.values.values()):
            results[index] = _single(parts, actions[index])  # nothing to match a batch answer by
            continue
        target = with_email if fitted.values.get("email") else plain
        target.setdefault(object_type, []).append((index, fitted.values, fitted.detail()))
    for groups in (plain, with_email):
        for object_type, entries in groups.items():
            for start in range(0, len(entries), BATCH_CREATE_MAX):
                _create_chunk(parts, object_type, actions, entries[start : start + BATCH_CREATE_MAX], results)
    for leader, members in followers.items():
        outcome = results[leader]
        for index in members:
            results[index] = (
                outcome
                if not isinstance(outcome, ActionResult)
                else outcome.model_copy(
                    update={"created": False, "detail": {**outcome.detail, "matched_by": "created_in_batch"}}
                )
            )


def _create_chunk(
    parts: SinkParts,
    object_type: str,
    actions: Sequence[ResolveContact],
    entries: list[tuple[int, dict[str, str], dict[str, Any]]],
    results: list[Outcome | None],
) -> None:
    pending = list(entries)
    while pending:
        keys = [actions[i].key for i, _, _ in pending]
        try:
            records = parts.api.batch_create(
                object_type, [{"properties": p, "associations": []} for _, p, _ in pending]
            )
        except SinkError as exc:
            if isinstance(exc, OutcomeUnknown):
                parts.uncertain.mark(keys)  # the next attempt waits for the search index before creating again
                raise
            if not isinstance(exc, PermanentError):
                raise
            if existing_id(exc) is None or not all(p.get("email") for _, p, _ in pending):
                for index, _, _ in pending:  # refused as invalid before anything was written: one by one
                    results[index] = _single(parts, actions[index])
                return
            pending = _existing_by_email(parts, object_type, pending, results)
            continue
        _match_created(parts, object_type, actions, pending, records, results)
        return


def _existing_by_email(
    parts: SinkParts,
    object_type: str,
    pending: list[tuple[int, dict[str, str], dict[str, Any]]],
    results: list[Outcome | None],
) -> list[tuple[int, dict[str, str], dict[str, Any]]]:
    """After a 409: the inputs whose email a contact holds now resolve to it (record store, no search lag); the
    rest are left to create. Raises when no input was resolved (nothing would change on a resend)."""
    emails = [p["email"] for _, p, _ in pending]
    found = {
        str((r.properties or {}).get("email", "")).casefold(): str(r.id)
        for r in parts.api.batch_read_by(object_type, "email", emails, ["email"])
    }
    left = []
    for index, properties, fitted in pending:
        crm_id = found.get(properties["email"].casefold())
        if crm_id is None:
            left.append((index, properties, fitted))
            continue
        parts.cache.put((object_type, "id", crm_id), crm_id)
        results[index] = ActionResult(
            crm_id=crm_id, object=object_type, created=False, detail={"matched_by": "existing_email", **fitted}
        )
    if len(left) == len(pending):
        raise TransientError("HubSpot refused a batch of contacts as existing, yet none of their emails was found")
    return left


def _match_created(
    parts: SinkParts,
    object_type: str,
    actions: Sequence[ResolveContact],
    pending: list[tuple[int, dict[str, str], dict[str, Any]]],
    records: list[Any],
    results: list[Outcome | None],
) -> None:
    by_number = {_rule(actions[i]).e164: (i, fitted) for i, _, fitted in pending}
    by_national: dict[str, list[str]] = {}
    for e164 in by_number:
        by_national.setdefault(national_digits(e164), []).append(e164)
    for record in records:
        names = [n for n, v in (getattr(record, "properties", None) or {}).items() if isinstance(v, str)]
        for e164 in numbers_held(getattr(record, "properties", None) or {}, names, by_national):
            index, fitted = by_number[e164]
            if results[index] is None:
                crm_id = str(record.id)
                rule = _rule(actions[index])
                parts.cache.put((object_type, tuple(rule.fields), e164), crm_id)  # read-your-writes, this process
                parts.cache.put((object_type, "id", crm_id), crm_id)
                results[index] = ActionResult(
                    crm_id=crm_id,
                    object=object_type,
                    created=True,
                    detail={"matched_by": "created", "batch": len(pending), **fitted},
                )
                break
    unmatched = [actions[i].key for i, _, _ in pending if results[i] is None]
    if unmatched:  # created or not, HubSpot did not say: treat as unknown, the single path settles it
        parts.uncertain.mark(unmatched)
        for index, _, _ in pending:
            if results[index] is None:
                results[index] = TransientError("HubSpot's batch create answered without this contact")
