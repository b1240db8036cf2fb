"""The Salesforce sink: a call becomes a completed call Task on the Contact or Lead, in ONE Composite request.

Per event, after the contact is known, the call Task, the Contact/Lead update and the follow-up Task go out as one
``POST composite`` with ``allOrNone: true``: one API call against the org's daily allocation, and either everything
is written or nothing is (a rejected field never leaves a Task without its status change, or the reverse). One
exception, schema drift: when the org refuses a field because it no longer exists or may not be written
(INVALID_FIELD…), the Composite, rolled back, is sent again without that field, in the same delivery, and the field
is reported in ``skipped_fields`` (see ``_drift``); the describe cache of that object is refreshed.

API calls per event (measured against the emulator, see tests/sinks/test_salesforce_sink.py):
- known number, the engine's E.164 cache warm: 0 (resolve) + 1 (composite) = **1**;
- ``meta.salesforce_contact_id``: a GET to verify the id, then the composite = 2 — and 1 for later events of the
  same contact, whose verified id the sink keeps for an hour;
- first time a number is seen: SOSL + composite = 2; a new number: SOSL + create Lead + composite = 3;
- once per sink lifetime: one Composite with the describes of Task, Contact and Lead (for value coercion);
- under a backlog (the engine's ``execute_batch``, see ``salesforce.batch``): one sObject Collections request per
  kind of action for up to 200 events, e.g. 2 requests for 40 known contacts = **0.05** per event.
Why the id is not verified inside the composite (a GET subrequest whose ``@{ref.Id}`` the Tasks use): the engine
journals resolve_contact on its own, before the combined call, and keys precedence bookkeeping and the
Contact-or-Lead field filter on that result; a composite that failed on a wrong id could neither fall back to the
phone number nor correct the journaled contact, so every retry would fail the same way and dead-letter the call.

Idempotency: every Task carries its key in ``CallObject`` (``2x-<id>``, ``2x-<id>:task:callback``). ``lookup``
finds it by SOQL after a crash; and when a write's answer was lost (timeout, 5xx) the sink itself checks by SOQL
before writing again, because the engine's quick retry calls ``execute_many`` again without a lookup.

Rate budget: Salesforce has no per-second limit, only the rolling daily allocation (watched through
``Sforce-Limit-Info``; a warning at 90 %, and 403 REQUEST_LIMIT_EXCEEDED pauses the whole sink for 15 minutes)
and 25 concurrent *long* (≥ 20 s) requests, which these sub-second calls never approach. So
``requests_per_window`` is None: a shared bucket would only add a ledger round trip per request.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from dataclasses import field as _field
from functools import partial
from typing import Any, ClassVar

from connector.errors import PermanentError, SinkError, TransientError
from connector.plan import Action, CloseCallbacks, CreateActivity, CreateTask, ResolveContact, UpdateContact
from connector.sinks.base import ActionResult, ExecutionContext, RateGate, SinkCapabilities
from connector.sinks.drift import (
    DriftPolicy,
    probe_held,
    protected_fields,
    refusals,
    refused_in,
    skipped_detail,
)
from connector.sinks.salesforce.callbacks import (
    close_callbacks,
    close_callbacks_many,
    do_not_call_many,
    do_not_call_set,
)
from connector.sinks.salesforce.client import SalesforceConnection
from connector.sinks.salesforce.contacts import ContactResolver
from connector.sinks.salesforce.errors import (
    HALTED,
    OutcomeUnknown,
    classify,
    errors_of,
    identifier,
    might_have_written,
    raise_for_composite,
    record_id,
    soql_string,
)
from connector.sinks.salesforce.fields import FieldTypes, describe_objects
from connector.sinks.salesforce.settings import SalesforceSinkSettings

log = logging.getLogger(__name__)
MAX_SUBREQUESTS = 25
"""Composite's limit per request; plans have 1–3 actions after resolve_contact."""
UNCERTAIN_KEPT_S = 3600.0
_Write = CreateActivity | CreateTask


@dataclass(frozen=True)
class Prepared:
    """One record write, ready for a Composite subrequest or an sObject Collections record."""

    sobject: str
    record_id: str | None
    """None: a create."""
    body: dict[str, Any]
    """Field values, fitted to their fields' limits and coerced to their describe types."""
    fitted: dict[str, list[str]] = _field(default_factory=dict)
    """Names of the fields cut or clamped to fit (``_fit.Fitted.detail``), for the audit trail."""


class SalesforceSink:
    """Executes plans against a Salesforce org through simple-salesforce (see the module docstring)."""

    capabilities: ClassVar[SinkCapabilities] = SinkCapabilities(
        requests_per_window=None, combine_actions=True, max_batch=200
    )

    def __init__(self, name: str, settings: Any) -> None:
        self.name = name
        self.settings = (
            settings
            if isinstance(settings, SalesforceSinkSettings)
            else SalesforceSinkSettings.model_validate(settings.model_dump())
        )
        self.connection = SalesforceConnection(name, self.settings)
        self.types = FieldTypes(self.connection)
        self.contacts = ContactResolver(self.connection, self.types)
        self.drift = DriftPolicy(name, hold=self.settings.on_missing_field == "hold")
        self._uncertain: dict[str, float] = {}
        """Action keys whose write may have been committed although the answer was lost."""

    # -- the Sink protocol ------------------------------------------------------------------------------------

    def open(self, gate: RateGate) -> None:
        self.connection.open(gate)

    def close(self) -> None:
        self.connection.close()

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """(used, allowed) of the org's daily API allocation, from the last ``Sforce-Limit-Info`` seen."""
        return self.connection.api_usage

    def execute(self, action: Action, context: ExecutionContext) -> ActionResult:
        if isinstance(action, ResolveContact):
            resolved: ActionResult = self._guarded([action.key], lambda: self._resolve(action))
            return resolved
        if isinstance(action, (CreateActivity, CreateTask, UpdateContact)):
            return self.execute_many([action], context)[0]
        if isinstance(action, CloseCallbacks):
            return close_callbacks(self, action, context)
        raise PermanentError(f"the Salesforce sink cannot execute {action.kind!r} actions", code="UNSUPPORTED_ACTION")

    def execute_many(self, actions: list[Action], context: ExecutionContext) -> list[ActionResult]:
        """Every action after resolve_contact, in one allOrNone Composite per 25 subrequests; results in order."""
        results: list[ActionResult | None] = [None] * len(actions)
        recheck = [(i, a) for i, a in enumerate(actions) if isinstance(a, _Write) and self._is_uncertain(a.key)]
        if recheck:
            found = self._find_tasks([a for _, a in recheck])
            for index, action in recheck:
                if action.key in found:
                    results[index] = found[action.key]
                    self._uncertain.pop(action.key, None)
        pending = [(i, a) for i, a in enumerate(actions) if results[i] is None]
        for start in range(0, len(pending), MAX_SUBREQUESTS):
            chunk = pending[start : start + MAX_SUBREQUESTS]
            for index, result in zip(
                [i for i, _ in chunk], self._composite([a for _, a in chunk], context), strict=True
            ):
                results[index] = result
        return [r for r in results if r is not None]

    def execute_batch(self, items: list[tuple[Action, ExecutionContext]]) -> list[ActionResult | SinkError]:
        """Many events' Tasks or contact updates in sObject Collections requests (see salesforce.batch)."""
        from connector.sinks.salesforce.batch import execute_batch

        if items and all(isinstance(action, CloseCallbacks) for action, _ in items):
            return close_callbacks_many(self, items)
        return execute_batch(self, items)

    def resolve_many(self, actions: list[ResolveContact]) -> list[ActionResult | SinkError]:
        """Many events' contacts in one SOSL per ~100 numbers and one sObject Collections create per 200 new ones
        (backlog path, see salesforce.resolve); results in order, an action's own failure as its item."""
        from connector.sinks.salesforce.resolve import resolve_many

        return resolve_many(self, actions)

    def do_not_call_set(self, action: CreateTask, context: ExecutionContext) -> str | None:
        """Which do-not-call field is true on the contact in Salesforce now (read before a callback Task)."""
        return do_not_call_set(self, action, context)

    def do_not_call_many(self, items: list[tuple[CreateTask, ExecutionContext]]) -> list[str | None]:
        """``do_not_call_set`` for many callback Tasks in one SOQL per object (the engine's backlog path)."""
        return do_not_call_many(self, items)

    def lookup(self, action: Action, context: ExecutionContext) -> ActionResult | None:
        if isinstance(action, ResolveContact):
            return self.contacts.resolve(action, create=False)
        if isinstance(action, _Write):
            return self._find_tasks([action]).get(action.key)
        return None  # an update is idempotent: the engine simply runs it again

    def check_auth(self) -> None:
        """Log in afresh (login modes) and make the cheapest counted call; AuthError while credentials fail."""
        self.connection.relogin()
        self.connection.call(lambda sf: sf.restful("limits/"), where="limits")
        if self.drift.held:  # paused for fields the org lacked: resume once describe lists them again
            probe_held(self.drift, self._lacking)

    def _lacking(self, sobject: str, names: set[str]) -> set[str]:
        described, failures = describe_objects(self.connection, [sobject])
        if sobject in failures:
            raise failures[sobject]
        present = {str(f.get("name", "")).lower() for f in (described.get(sobject) or {}).get("fields") or []}
        self.types.forget(sobject)  # the next write describes it afresh
        return {name for name in names if name.lower() not in present}

    # -- resolving -----------------------------------------------------------------------------------------------

    def _resolve(self, action: ResolveContact) -> ActionResult:
        result = self.contacts.resolve(
            action, create=action.on_no_match == "create", recheck=self._is_uncertain(action.key)
        )
        assert result is not None
        self._uncertain.pop(action.key, None)
        return result

    # -- writing -------------------------------------------------------------------------------------------------

    def _composite(self, actions: list[Action], context: ExecutionContext) -> list[ActionResult]:
        contact = context.contact()
        contact_object = contact.object if contact and contact.crm_id else None
        self.types.ensure(
            o
            for o in (
                *(a.object for a in actions if isinstance(a, _Write)),
                *(a.object or contact_object for a in actions if isinstance(a, UpdateContact)),
            )
            if o
        )
        results: list[ActionResult | None] = []
        ready: dict[str, tuple[int, Action, Prepared]] = {}
        for index, action in enumerate(actions):
            prepared = self.prepare_write(action, contact)
            results.append(prepared if isinstance(prepared, ActionResult) else None)
            if not isinstance(prepared, ActionResult):
                ready[f"action{index}"] = (index, action, prepared)
        skipped: dict[str, dict[str, str]] = {reference: {} for reference in ready}
        keys = [a.key for a in actions]
        while ready:
            subrequests = {
                reference: self._subrequest(prepared, reference, skipped[reference])
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
            answer = self._guarded(
                keys,
                partial(self.connection.call, partial(_post_composite, payload=payload), where="composite"),
            )
            drift = self._refused_in_composite(answer, subrequests)
            if drift is not None:  # allOrNone rolled everything back: send it again without the refused fields
                reference, refused = drift
                _, action, prepared = ready[reference]
                self.drift.check(prepared.sobject, refused, protected_fields(action))
                skipped[reference].update(refused)
                self.types.forget(prepared.sobject, refused)
                continue
            responses = {r.get("referenceId"): r for r in raise_for_composite(answer, where="composite")}
            for key in keys:
                self._uncertain.pop(key, None)
            for reference, (index, action, prepared) in ready.items():
                result = self._result(
                    action, contact, subrequests[reference]["body"], responses.get(reference) or {}, skipped[reference]
                )
                results[index] = with_fit(result, prepared.fitted)  # fitting: what was cut or clamped
            break
        return [r if r is not None else ActionResult(skipped=True) for r in results]

    @staticmethod
    def _refused_in_composite(answer: Any, subrequests: dict[str, dict[str, Any]]) -> tuple[str, dict[str, str]] | None:
        """(referenceId, {field: code}) when the subrequest that failed the Composite was refused only for fields
        the org lacks (or may not write); None for any other answer, which ``raise_for_composite`` judges."""
        responses = answer.get("compositeResponse") if isinstance(answer, dict) else None
        for response in responses if isinstance(responses, list) else []:
            status = int(response.get("httpStatusCode") or 0)
            body = response.get("body")
            if status < 300 or not any(e["errorCode"] != HALTED for e in errors_of(body)):
                continue
            reference = str(response.get("referenceId"))
            sub = subrequests.get(reference)
            if sub is None:
                return None
            sobject = sub["url"].split("/sobjects/", 1)[1].split("/", 1)[0]
            refused = refused_in(refusals(classify(status, body, where="composite")), sub["body"], sobject)
            return (reference, refused) if refused else None
        return None

    def _subrequest(self, prepared: Prepared, reference: str, skipped: dict[str, str]) -> dict[str, Any]:
        """The Composite subrequest for one prepared write, without the fields the org refused."""
        url = f"{self.connection.base_path()}/sobjects/{prepared.sobject}"
        body = {k: v for k, v in prepared.body.items() if k not in skipped}
        if prepared.record_id is None:
            return {"method": "POST", "url": url, "referenceId": reference, "body": body}
        return {"method": "PATCH", "url": f"{url}/{prepared.record_id}", "referenceId": reference, "body": body}

    def prepare_write(self, action: Action, contact: ActionResult | None) -> Prepared | ActionResult:
        """The sObject, record id (updates) and coerced body one action writes; or its result when there is nothing
        to write. Shared by the Composite path and sObject Collections, so both send exactly the same values.

        Raises PermanentError when the action cannot be written at all (bad identifier, no contact to update).
        Field types must be known (``self.types.ensure``) for the values to be coerced.
        """
        if isinstance(action, _Write):
            sobject = identifier(action.object, "object")
            body = dict(action.properties)
            keep = []
            if action.idempotency_property:
                keep.append(identifier(action.idempotency_property, "field"))
                body[keep[0]] = action.idempotency_key
            if action.associate_with_contact and contact is not None and contact.crm_id:
                body.setdefault("WhoId", contact.crm_id)
            fit = self.types.fit_body(sobject, body, keep=keep)  # fitting: every value fits its field
            return Prepared(sobject, None, fit.values, fit.detail())
        if isinstance(action, UpdateContact):
            if contact is None or not contact.crm_id or not contact.object:
                raise PermanentError("update_contact has no resolved contact to update", code="NO_CONTACT")
            sobject = identifier(action.object or contact.object, "object")
            # The engine already drops fields meant for the other object (Lead Status on a Contact); so does this,
            # because sending one is INVALID_FIELD and would roll the whole composite back.
            fields = {
                identifier(f.property, "field"): f.value
                for f in action.fields
                if not f.objects or sobject.lower() in (o.lower() for o in f.objects)
            }
            if not fields:
                return ActionResult(
                    crm_id=contact.crm_id, object=sobject, skipped=True, detail={"reason": "no_fields_for_object"}
                )
            fit = self.types.fit_body(sobject, fields)  # fitting: every value fits its field
            return Prepared(sobject, record_id(contact.crm_id), fit.values, fit.detail())
        raise PermanentError(f"the Salesforce sink cannot execute {action.kind!r} actions", code="UNSUPPORTED_ACTION")

    @staticmethod
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

    def collection(
        self, method: str, records: list[dict[str, Any]], keys: list[str], *, where: str
    ) -> list[dict[str, Any]]:
        """``POST``/``PATCH composite/sobjects`` with ``allOrNone: false``: one SaveResult per record, in order.

        ``keys``: the creates among the records; they become uncertain when the answer is lost (or unreadable,
        since a 200 means the records were saved), so the next attempt looks them up before writing again.
        """
        payload = {"allOrNone": False, "records": records}

        def send() -> list[dict[str, Any]]:
            answer = self.connection.call(
                lambda sf: sf.restful("composite/sobjects", method=method, json=payload), where=where
            )
            if (
                not isinstance(answer, list)
                or len(answer) != len(records)
                or not all(isinstance(a, dict) for a in answer)
            ):
                raise OutcomeUnknown(f"Salesforce answered {where} without one result per record")
            return answer

        answers: list[dict[str, Any]] = self._guarded(keys, send)
        return answers

    def find_written(self, actions: list[_Write]) -> dict[str, ActionResult]:
        """Records already written for these creates, by idempotency key (one SOQL per object and field)."""
        return self._find_tasks(actions)

    def is_uncertain(self, key: str) -> bool:
        """Whether a write of this key may have been committed by this process without it hearing back."""
        return self._is_uncertain(key)

    def settle(self, keys: list[str]) -> None:
        """These keys' outcome is known now (written, or looked up and absent)."""
        for key in keys:
            self._uncertain.pop(key, None)

    def unsettle(self, keys: list[str]) -> None:
        """Treat these keys as possibly written: a retry of the same batch must look them up first."""
        now = time.monotonic()
        for key in keys:
            self._uncertain.setdefault(key, now)

    def _find_tasks(self, actions: list[_Write]) -> dict[str, ActionResult]:
        """Records already written for these actions, by their idempotency key (one SOQL per object and field)."""
        found: dict[str, ActionResult] = {}
        groups: dict[tuple[str, str], list[_Write]] = {}
        for action in actions:
            if action.idempotency_property:
                key = (identifier(action.object, "object"), identifier(action.idempotency_property, "field"))
                groups.setdefault(key, []).append(action)
        for (sobject, field), group in groups.items():
            keys = ", ".join(soql_string(a.idempotency_key) for a in group)
            soql = f"SELECT Id, {field} FROM {sobject} WHERE {field} IN ({keys}) ORDER BY CreatedDate LIMIT 200"
            answer = self.connection.call(lambda sf, q=soql: sf.query(q), where=f"query {sobject}")  # type: ignore[misc]
            for record in (answer or {}).get("records") or []:
                for action in group:
                    if record.get(field) == action.idempotency_key and action.key not in found:
                        found[action.key] = ActionResult(
                            crm_id=str(record["Id"]), object=sobject, detail={"found_by": field}
                        )
        return found

    # -- answers that may have been lost ---------------------------------------------------------------------

    def _guarded(self, keys: list[str], write: Any) -> Any:
        """Run a write; when its outcome is unknown, remember the keys so the next attempt checks first."""
        try:
            return write()
        except SinkError as exc:
            if might_have_written(exc):
                now = time.monotonic()
                self._uncertain = {k: t for k, t in self._uncertain.items() if now - t < UNCERTAIN_KEPT_S}
                for key in keys:
                    self._uncertain.setdefault(key, now)
            raise

    def _is_uncertain(self, key: str) -> bool:
        return key in self._uncertain


def with_fit(result: ActionResult, fitted: dict[str, list[str]] | None) -> ActionResult:
    """The result with the names of the fields that were cut or clamped to fit (audit trail)."""
    return result.model_copy(update={"detail": {**result.detail, **fitted}}) if fitted else result


def _post_composite(sf: Any, *, payload: dict[str, Any]) -> Any:
    """One Composite request (allOrNone) on a simple-salesforce connection."""
    return sf.restful("composite", method="POST", json=payload)


def factory(name: str, settings: Any) -> SalesforceSink:
    """Entry point of the `salesforce` sink type."""
    return SalesforceSink(name, settings)
