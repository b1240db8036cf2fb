"""One event's writes after resolve_contact (call Task, Contact/Lead update, follow-up Task) in ONE Composite
request with ``allOrNone: true``: one API call, and either everything is written or nothing is.

Two exceptions, both schema drift: when the org refuses a field it lacks or may not write (INVALID_FIELD…), the
Composite, rolled back, is sent again without that field in the same delivery and the field is reported in
``skipped_fields``; when it refuses a value as too large (STRING_TOO_LONG…) for a field the cached describe did not
know or knew with another limit (created while the sink runs), the object is described afresh and the Composite
sent again once, fitted. Design notes: docs/salesforce.md "Design".
"""

from __future__ import annotations

from functools import partial
from typing import Any

from connector.errors import PermanentError, TransientError
from connector.plan import Action, UpdateContact
from connector.sinks.base import ActionResult, ExecutionContext
from connector.sinks.drift import REFUSAL_CODES, SIZE_CODES, protected_fields, refusals, refused_in, skipped_detail
from connector.sinks.salesforce.collaborators import Collaborators
from connector.sinks.salesforce.errors import HALTED, classify, errors_of, raise_for_composite
from connector.sinks.salesforce.records import Prepared, Write, with_fit
from connector.sinks.salesforce.stale import stale_contact

MAX_SUBREQUESTS = 25
"""Composite's limit per request; plans have 1–3 actions after resolve_contact."""


def write_composite(parts: Collaborators, actions: list[Action], context: ExecutionContext) -> list[ActionResult]:
    """Up to 25 actions of one event in one allOrNone Composite; their results in order."""
    contact = context.contact()
    contact_object = contact.object if contact and contact.crm_id else None
    parts.types.ensure(
        o
        for o in (
            *(a.object for a in actions if isinstance(a, Write)),
            *(a.object or contact_object for a in actions if isinstance(a, UpdateContact)),
        )
        if o
    )
    results: list[ActionResult | None] = []
    ready: dict[str, tuple[int, Action, Prepared]] = {}
    for index, action in enumerate(actions):
        prepared = parts.prepare(action, contact)
        results.append(prepared if isinstance(prepared, ActionResult) else None)
        if not isinstance(prepared, ActionResult):
            ready[f"action{index}"] = (index, action, prepared)
    skipped: dict[str, dict[str, str]] = {reference: {} for reference in ready}
    refreshed: set[str] = set()  # objects described afresh after a value refused as too large: once each
    keys = [a.key for a in actions]
    base = parts.connection.base_path()
    while ready:
        subrequests = {
            reference: _subrequest(base, prepared, reference, skipped[reference])
            for reference, (_, _, prepared) in ready.items()
        }
        for reference in [r for r, sub in subrequests.items() if not sub["body"]]:  # every field refused
            index, action, prepared = ready.pop(reference)
            results[index] = ActionResult(
                crm_id=prepared.record_id,
                object=prepared.sobject,
                skipped=True,
                detail=skipped_detail({"reason": "no_field_left", **prepared.fitted}, skipped[reference]),
            )
            del subrequests[reference]
        if not subrequests:
            break
        payload = {"allOrNone": True, "collateSubrequests": False, "compositeRequest": list(subrequests.values())}
        answer = parts.guarded(
            keys, partial(parts.connection.call, partial(_post_composite, payload=payload), where="composite")
        )
        drift = _refused_in_composite(answer, subrequests)
        if drift is not None:  # allOrNone rolled everything back: send it again without the refused fields
            reference, refused = drift
            _, action, prepared = ready[reference]
            parts.drift.check(prepared.sobject, refused, protected_fields(action))
            skipped[reference].update(refused)
            parts.types.forget(prepared.sobject, refused)
            continue
        oversized = _refused_in_composite(answer, subrequests, SIZE_CODES)
        if oversized is not None and _refit(parts, ready, subrequests, oversized, contact, refreshed):
            continue  # rolled back too: the same writes again, fitted to the fresh describe
        try:
            responses = {r.get("referenceId"): r for r in raise_for_composite(answer, where="composite")}
        except PermanentError as exc:
            cause = _cause(answer)
            reference = str((cause or {}).get("referenceId"))
            stale = stale_contact(exc, ready[reference][2], contact) if reference in ready else None
            if stale is None or contact is None or not contact.crm_id:
                raise
            parts.contacts.forget(contact.crm_id)
            raise stale from exc
        parts.uncertain.settle(keys)
        for reference, (index, action, prepared) in ready.items():
            result = _result(
                action, contact, subrequests[reference]["body"], responses.get(reference) or {}, skipped[reference]
            )
            results[index] = with_fit(result, prepared.fitted)  # fitting: what was cut or clamped
        break
    return [r if r is not None else ActionResult(skipped=True) for r in results]


def _refit(
    parts: Collaborators,
    ready: dict[str, tuple[int, Action, Prepared]],
    subrequests: dict[str, dict[str, Any]],
    oversized: tuple[str, dict[str, str]],
    contact: ActionResult | None,
    refreshed: set[str],
) -> bool:
    """After the org refused values as too large: when the cached describe of their object cannot explain it (a
    field created or shortened since), describe the object afresh and prepare its writes in ``ready`` again (fitted
    to the new limits). True when the refused write changed, so it is worth sending again; False (Salesforce's
    error stands) when the fresh describe fits it no differently, or the object was described afresh already in
    this call (``refreshed``)."""
    reference, refused = oversized
    sobject = ready[reference][2].sobject
    sent = {name: subrequests[reference]["body"][name] for name in refused}
    if sobject.lower() in refreshed or not parts.types.outdated(sobject, sent):
        return False
    refreshed.add(sobject.lower())
    parts.types.forget(sobject)
    parts.types.ensure([sobject])
    before = ready[reference][2].body
    for key, (index, action, prepared) in list(ready.items()):
        if prepared.sobject.lower() == sobject.lower():
            again = parts.prepare(action, contact)
            assert not isinstance(again, ActionResult)  # it had fields for this object a moment ago
            ready[key] = (index, action, again)
    return ready[reference][2].body != before


def _refused_in_composite(
    answer: Any, subrequests: dict[str, dict[str, Any]], codes: frozenset[str] = REFUSAL_CODES
) -> tuple[str, dict[str, str]] | None:
    """(referenceId, {field: code}) when the subrequest that failed the Composite was refused only for fields the org
    lacks, may not write, or whose value it cannot take (with ``SIZE_CODES``: only for values too large); None for
    any other answer, which ``raise_for_composite`` judges."""
    response = _cause(answer)
    if response is None:
        return None
    status, body = int(response.get("httpStatusCode") or 0), response.get("body")
    reference = str(response.get("referenceId"))
    sub = subrequests.get(reference)
    if sub is None:
        return None
    sobject = sub["url"].split("/sobjects/", 1)[1].split("/", 1)[0]
    refused = refused_in(refusals(classify(status, body, where="composite"), codes), sub["body"], sobject)
    return (reference, refused) if refused else None


def _cause(answer: Any) -> dict[str, Any] | None:
    """The subresponse that failed a Composite (the others report PROCESSING_HALTED), or None."""
    responses = answer.get("compositeResponse") if isinstance(answer, dict) else None
    for response in responses if isinstance(responses, list) else []:
        status = int(response.get("httpStatusCode") or 0)
        if status >= 300 and any(e["errorCode"] != HALTED for e in errors_of(response.get("body"))):
            return dict(response)
    return None


def _subrequest(base: str, prepared: Prepared, reference: str, skipped: dict[str, str]) -> dict[str, Any]:
    """The Composite subrequest for one prepared write, without the fields the org refused."""
    url = f"{base}/sobjects/{prepared.sobject}"
    body = {k: v for k, v in prepared.body.items() if k not in skipped}
    if prepared.record_id is None:
        return {"method": "POST", "url": url, "referenceId": reference, "body": body}
    return {"method": "PATCH", "url": f"{url}/{prepared.record_id}", "referenceId": reference, "body": body}


def _result(
    action: Action,
    contact: ActionResult | None,
    sent: dict[str, Any],
    response: dict[str, Any],
    skipped: dict[str, str],
) -> ActionResult:
    if isinstance(action, UpdateContact):
        assert contact is not None
        return ActionResult(
            crm_id=contact.crm_id,
            object=action.object or contact.object,
            detail=skipped_detail({"fields": sorted(sent)}, skipped),
        )
    body = response.get("body") if isinstance(response.get("body"), dict) else {}
    crm_id = (body or {}).get("id")
    if not crm_id:
        raise TransientError(f"Salesforce answered the composite without the id of {action.key}")
    return ActionResult(
        crm_id=str(crm_id), object=getattr(action, "object", None), created=True, detail=skipped_detail({}, skipped)
    )


def _post_composite(sf: Any, *, payload: dict[str, Any]) -> Any:
    """One Composite request (allOrNone) on a simple-salesforce connection."""
    return sf.restful("composite", method="POST", json=payload)
