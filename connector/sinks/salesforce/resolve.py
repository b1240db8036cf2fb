"""Many events' contacts resolved together under a backlog: one SOSL for many numbers (``FIND {a OR b OR …}``,
kept under SOSL's 4,000-character and 2,000-row limits), one sObject Collections create for the new ones.

Why: one search per event would cost the daily allocation as much as the writes. A record refused as a duplicate
is the existing one; anything unusual takes the single path (``execute_one``). Design notes and the Salesforce
limits quoted: docs/salesforce.md "Under a backlog".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from connector.errors import PermanentError, SinkError, TransientError
from connector.phones import national_digits, number_forms, numbers_held, one_per_number
from connector.plan import MatchByPhone, ResolveContact
from connector.sinks.base import ActionResult, ExecutionContext
from connector.sinks.salesforce.collaborators import Collaborators
from connector.sinks.salesforce.contacts import _ORDER, choose
from connector.sinks.salesforce.errors import classify, identifier, sosl_term

log = logging.getLogger(__name__)
Outcome = ActionResult | SinkError
SEARCH_TEXT_MAX = 4_000
"""Characters of the FIND text: above this, SOSL drops the logical operators (docs/salesforce.md "Design")."""
SOSL_ROWS_MAX = 2_000
COLLECTION_MAX = 200
DUPLICATE = "DUPLICATES_DETECTED"


def resolve_many(parts: Collaborators, actions: Sequence[ResolveContact]) -> list[Outcome]:
    """One result (or this action's own error) per action, in order; an outage or rate limit raises for all."""
    results: list[Outcome | None] = [None] * len(actions)
    batched = [i for i, a in enumerate(actions) if _phone_rule(a) is not None and a.key not in parts.uncertain]
    for index in sorted(set(range(len(actions))) - set(batched)):
        results[index] = _single(parts, actions[index])
    _find(parts, actions, batched, results)
    for index in batched:
        if results[index] is None and actions[index].on_no_match == "skip":
            results[index] = ActionResult(skipped=True, detail={"reason": "no_match"})
    _create(parts, actions, [i for i in batched if results[i] is None], results)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def _phone_rule(action: ResolveContact) -> MatchByPhone | None:
    rule = action.match[0] if len(action.match) == 1 else None
    return rule if isinstance(rule, MatchByPhone) else None


def _rule(action: ResolveContact) -> MatchByPhone:
    rule = _phone_rule(action)
    assert rule is not None
    return rule


def _single(parts: Collaborators, action: ResolveContact) -> Outcome:
    try:
        return parts.execute_one(action, ExecutionContext())
    except PermanentError as exc:
        return exc


# -- finding existing records ---------------------------------------------------------------------------------


def _find(
    parts: Collaborators, actions: Sequence[ResolveContact], indexes: list[int], results: list[Outcome | None]
) -> None:
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[int]] = {}
    for index in indexes:
        action, rule = actions[index], _rule(actions[index])
        cached = parts.contacts.cached(rule.e164)
        allowed = {o.lower() for o in rule.objects} | {(action.create_object or "").lower()}
        if cached is not None and cached[0].lower() in allowed:
            results[index] = ActionResult(
                crm_id=cached[1], object=cached[0], detail={"matched_by": "phone", "resolved_by": "sink_cache"}
            )
            continue
        groups.setdefault((tuple(rule.objects), tuple(rule.fields)), []).append(index)
    for (objects, fields), members in groups.items():
        try:
            found = search_numbers(parts, list(objects), list(fields), [_rule(actions[i]).e164 for i in members])
        except PermanentError as exc:  # the org refused the batched SOSL: one search per number, as before
            log.warning(
                "batched SOSL refused; resolving one by one",
                extra={"sink": parts.name, "crm_code": exc.code, "status": exc.status},
            )
            for index in members:
                results[index] = _single(parts, actions[index])
            continue
        for index in members:
            _pick(parts, actions[index], found, len(members), results, index)


def _pick(
    parts: Collaborators,
    action: ResolveContact,
    found: dict[str, list[dict[str, Any]]],
    size: int,
    results: list[Outcome | None],
    index: int,
) -> None:
    rule = _rule(action)
    records = found.get(rule.e164, [])
    for sobject in rule.objects:
        matching = [r for r in records if _type_of(r) == sobject.lower()]
        if not matching:
            continue
        try:
            chosen = choose(matching, action.on_multiple, sobject)
        except PermanentError as exc:
            results[index] = exc
            return
        parts.contacts.remember(rule.e164, sobject, str(chosen["Id"]))
        results[index] = ActionResult(
            crm_id=str(chosen["Id"]),
            object=sobject,
            detail={"matched_by": "phone", "candidates": len(matching), "batch": size},
        )
        return


def _type_of(record: dict[str, Any]) -> str:
    return str((record.get("attributes") or {}).get("type", "")).lower()


def search_statements(objects: Sequence[str], fields: Sequence[str], numbers: Sequence[str]) -> list[str]:
    """SOSL statements asking for every form of every number, each FIND text under ``SEARCH_TEXT_MAX``."""
    columns = ", ".join(["Id", *_ORDER, *(identifier(f, "field") for f in fields)])
    returning = ", ".join(
        f"{identifier(o, 'object')}({columns}{' WHERE IsConverted = false' if o.lower() == 'lead' else ''})"
        for o in objects
    )
    statements, terms = [], []
    for e164 in dict.fromkeys(numbers):
        forms = [sosl_term(f) for f in number_forms(e164)]
        if terms and len(" OR ".join([*terms, *forms])) > SEARCH_TEXT_MAX:
            statements.append(terms)
            terms = []
        terms += forms
    if terms:
        statements.append(terms)
    return [f"FIND {{{' OR '.join(t)}}} IN PHONE FIELDS RETURNING {returning}" for t in statements]


def search_numbers(
    parts: Collaborators, objects: list[str], fields: list[str], numbers: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """E.164 → the records whose phone fields hold it (shared matcher), by as few SOSL searches as the limits let."""
    wanted = [n for n in dict.fromkeys(numbers) if number_forms(n)]
    by_national: dict[str, list[str]] = {}
    for e164 in wanted:
        by_national.setdefault(national_digits(e164), []).append(e164)
    found: dict[str, dict[str, dict[str, Any]]] = {}
    queue = [wanted] if wanted else []
    while queue:
        part = queue.pop()
        records: list[dict[str, Any]] = []
        for statement in search_statements(objects, fields, part):
            answer = parts.connection.call(
                lambda sf, q=statement: sf.search(q),  # type: ignore[misc]
                where="search (SOSL, batched)",
            )
            records += [r for r in (answer or {}).get("searchRecords", []) if isinstance(r, dict)]
        if len(records) >= SOSL_ROWS_MAX and len(part) > 1:  # maybe cut off: ask again in halves
            queue += [part[: len(part) // 2], part[len(part) // 2 :]]
            continue
        for record in records:
            for e164 in numbers_held(record, fields, by_national):
                found.setdefault(e164, {})[str(record.get("Id"))] = record
    return {e164: list(hits.values()) for e164, hits in found.items()}


# -- creating missing records -----------------------------------------------------------------------------------


def _create(
    parts: Collaborators, actions: Sequence[ResolveContact], indexes: list[int], results: list[Outcome | None]
) -> None:
    leaders, followers = one_per_number(
        indexes,
        lambda index: (identifier(actions[index].create_object or "Lead", "object"), _rule(actions[index]).e164),
    )
    by_object: dict[str, list[int]] = {}
    for (sobject, _), index in leaders.items():
        by_object.setdefault(sobject, []).append(index)
    for sobject, members in by_object.items():
        parts.types.ensure([sobject])
        for start in range(0, len(members), COLLECTION_MAX):
            _create_chunk(parts, sobject, actions, members[start : start + COLLECTION_MAX], results)
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
    parts: Collaborators,
    sobject: str,
    actions: Sequence[ResolveContact],
    members: list[int],
    results: list[Outcome | None],
) -> None:
    fitted = {i: parts.types.fit_body(sobject, dict(actions[i].create_properties)) for i in members}
    records = [{"attributes": {"type": sobject}, **fitted[i].values} for i in members]
    keys = [actions[i].key for i in members]
    answers = parts.collection("POST", records, keys, where=f"create {sobject} (batch)")
    parts.uncertain.settle(keys)
    duplicates: list[int] = []
    for index, answer in zip(members, answers, strict=True):
        rule = _rule(actions[index])
        if answer.get("success") and answer.get("id"):
            crm_id = str(answer["id"])
            parts.contacts.remember(rule.e164, sobject, crm_id)
            results[index] = ActionResult(
                crm_id=crm_id,
                object=sobject,
                created=True,
                detail={"matched_by": "created", "batch": len(members), **fitted[index].detail()},
            )
        elif answer.get("success"):
            parts.uncertain.mark([actions[index].key])
            results[index] = TransientError(f"Salesforce saved {actions[index].key} without answering its id")
        else:
            error = classify(400, answer.get("errors"), where=f"create {sobject} [{actions[index].key}]")
            if error.code == DUPLICATE:
                duplicates.append(index)
            else:
                results[index] = _single(parts, actions[index])  # it reports its own error (or drops a field)
    if duplicates:
        _resolve_duplicates(parts, sobject, actions, duplicates, results)


def _resolve_duplicates(
    parts: Collaborators,
    sobject: str,
    actions: Sequence[ResolveContact],
    indexes: list[int],
    results: list[Outcome | None],
) -> None:
    """Records a duplicate rule refused: the existing record with the number, found the single path's way for a
    lookup (SOSL, then a SOQL on the fields the create sets to the number: exact, and not subject to search lag),
    one by one (rare); else the refusal stands (the rule matched on something else than the number)."""
    for index in indexes:
        found = parts.contacts.resolve(actions[index], create=False)
        if found is not None and found.crm_id:
            results[index] = found.model_copy(
                update={"created": False, "detail": {**found.detail, "matched_by": "duplicate_rule"}}
            )
            continue
        results[index] = PermanentError(
            f"Salesforce refused the new {sobject} as a duplicate, and no record with the call's number was found",
            code=DUPLICATE,
            crm_message="a duplicate rule blocked the record the call needs; see the org's duplicate "
            "rules, then replay the event",
        )
