"""Runs one claimed delivery: plan, then each action through the sink, journaled as it goes.

Exactly-once effects rest on three rules:
1. An action is marked `in_flight` (committed) before its CRM call and `succeeded` (committed,
   with the CRM id) after it. A retry skips what succeeded.
2. An action found `in_flight` had an unknown outcome (the process died around the CRM call): the
   sink looks it up by its idempotency key before anything is written again.
3. Contact properties pass the precedence rules against what the connector wrote before.

The delivery's fate is decided in one place (`_fail`), by the class of the error:
transient → retry on the schedule; rate limited → the whole sink waits, no attempt counted;
permanent → dead-lettered with the CRM's message; auth → the sink pauses, nothing dead-lettered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from connector.engine.dnc_guard import WITHHELD, blocked_task, withheld_fields
from connector.engine.faults import crash_point
from connector.engine.retry import RetryPolicy
from connector.errors import (
    AuthError,
    AwaitingIndex,
    MappingError,
    MissingFields,
    PermanentError,
    RateLimited,
    SinkError,
    StaleContact,
    StoreError,
    TransientError,
)
from connector.ledger import Ledger
from connector.ledger._clock import utcnow
from connector.ledger.deliveries import Claimed, JournalEntry
from connector.ledger.schema import ActionStatus, DeliveryOutcome, DeliveryStatus
from connector.mapping.loader import LoadedMapping
from connector.mapping.planner import delivery_plan
from connector.metrics import Metrics
from connector.missing_fields import MissingFieldTracker
from connector.plan import (
    Action,
    CloseCallbacks,
    CreateTask,
    HoldForReview,
    MatchByPhone,
    Plan,
    ResolveContact,
    UpdateContact,
    contact_action_key,
)
from connector.precedence import WrittenField, contact_ref_of, may_write
from connector.sinks.base import ActionResult, CombinedExecution, ExecutionContext, Sink, SinkAbilities
from connector.sinks.drift import SKIPPED

log = logging.getLogger(__name__)

NOT_WRITTEN_DETAIL = "superseded_in_batch"
"""ActionResult.detail key listing fields a sink deliberately did not send (a newer or higher-ranked
value for the same record went in the same batch); they are not recorded as written."""


@dataclass(frozen=True)
class SinkRuntime:
    """An open sink with its mapping and its optional abilities, as the runner needs them."""

    sink: Sink
    mapping: LoadedMapping
    abilities: SinkAbilities = field(default=None)  # type: ignore[assignment]
    """Checked once (``SinkAbilities.of``) when not given; the runners ask it, never the sink's attributes."""

    def __post_init__(self) -> None:
        if self.abilities is None:
            object.__setattr__(self, "abilities", SinkAbilities.of(self.sink))


class DeliveryRunner:
    """Executes claimed deliveries for one worker."""

    def __init__(
        self,
        ledger: Ledger,
        worker_id: str,
        sinks: dict[str, SinkRuntime],
        policy: RetryPolicy,
        *,
        auth_probe_s: float,
        contact_cache_s: float = 86_400,
        metrics: Metrics | None = None,
        on_finished: Callable[[int], None] | None = None,
    ) -> None:
        """`on_finished(delivery_id)`: told as each attempt's end is recorded (the worker stops renewing its lease)."""
        self._ledger = ledger
        self._worker = worker_id
        self._sinks = sinks
        self._policy = policy
        self._auth_probe_s = auth_probe_s
        self._contact_cache_s = contact_cache_s
        self._metrics = metrics
        self._on_finished = on_finished
        self._missing = MissingFieldTracker(ledger)

    def run(self, claimed: Claimed) -> str:
        """Run one delivery to its next state; returns the attempt's outcome."""
        started = time.monotonic()
        try:
            return self._run(claimed)
        finally:
            if self._metrics is not None:
                self._metrics.attempt_seconds.labels(sink=claimed.sink).observe(time.monotonic() - started)

    def _run(self, claimed: Claimed) -> str:
        attempt_id = self._ledger.deliveries.start_attempt(claimed.id, claimed.attempts, self._worker)
        runtime = self._sinks[claimed.sink]
        try:
            plan = self._plan(claimed, runtime.mapping)
            if any(isinstance(a, HoldForReview) for a in plan.actions):
                reason = next(a.reason for a in plan.actions if isinstance(a, HoldForReview))
                return self._finish(
                    claimed, attempt_id, DeliveryStatus.HELD, DeliveryOutcome.HELD, {"kind": "hold", "message": reason}
                )
            self._execute(claimed, plan, runtime.sink)
        except MappingError as exc:
            return self._finish(
                claimed,
                attempt_id,
                DeliveryStatus.DEAD,
                DeliveryOutcome.DEAD,
                {"kind": "mapping_error", "message": str(exc)},
            )
        except SinkError as exc:
            return self._fail(claimed, attempt_id, exc)
        except StoreError:
            raise  # the store is down: the worker backs off; nothing here can record a retry
        except Exception as exc:  # noqa: BLE001 - unknown failures retry, bounded by the schedule
            log.exception("delivery failed unexpectedly", extra={"event_id": claimed.event_id, "sink": claimed.sink})
            return self._fail(claimed, attempt_id, TransientError(f"unexpected {exc.__class__.__name__}: {exc}"))
        return self._finish(claimed, attempt_id, DeliveryStatus.SUCCEEDED, DeliveryOutcome.SUCCEEDED, None)

    # -- planning -------------------------------------------------------------------------------

    def _plan(self, claimed: Claimed, mapping: LoadedMapping) -> Plan:
        if claimed.plan:
            return Plan.model_validate_json(claimed.plan)
        row = self._ledger.get_event(claimed.event_id)
        plan = delivery_plan(None, row, mapping, sink=claimed.sink, event_id=claimed.event_id)
        self._ledger.deliveries.save_plan(claimed.id, plan.model_dump_json())
        return plan

    # -- executing ------------------------------------------------------------------------------

    def _execute(self, claimed: Claimed, plan: Plan, sink: Sink) -> None:
        journal = self._ledger.deliveries.journal(claimed.id)
        context = ExecutionContext(contact_key=claimed.contact_key)
        combine = self._sinks[claimed.sink].abilities.combined if sink.capabilities.combine_actions else None
        combined: list[tuple[Action, Action]] = []
        for action in plan.actions:
            runnable = self._prepare(claimed, action, journal, context, sink)
            if runnable is None:
                continue
            if combine is not None and not isinstance(action, (ResolveContact, CloseCallbacks)):
                combined.append((action, runnable))
                continue
            self._run_one(claimed, action, runnable, context, sink)
        if combine is not None and combined:
            self._execute_combined(claimed, combine, combined, context)

    def _prepare(
        self, claimed: Claimed, action: Action, journal: dict[str, JournalEntry], context: ExecutionContext, sink: Sink
    ) -> Action | None:
        """What is left to send for one action, or None when it needs no CRM call.

        None when: it already succeeded (journal), the contact was skipped, precedence leaves no
        field to write, the contact cache answers it, or an interrupted earlier attempt is found
        by lookup. The outcome is recorded in the journal and in `context` either way.
        """
        entry = journal.get(action.key)
        refill: UpdateContact | None = None
        if entry and entry.status in (ActionStatus.SUCCEEDED.value, ActionStatus.SKIPPED.value):
            previous = ActionResult.model_validate(entry.result or {})
            context.results[action.key] = previous
            refill = _refill(action, previous)
            if refill is None:
                return None
        contact = context.contact()
        if not isinstance(action, ResolveContact) and contact is not None and contact.skipped:
            if refill is None:
                self._mark(claimed, action, ActionStatus.SKIPPED, ActionResult(skipped=True), context)
            return None
        withheld = None
        if isinstance(action, UpdateContact):
            runnable = self._allowed(claimed.sink, refill or action, context)
            if runnable is not None:
                runnable, withheld = self._without_callback_fields(claimed, runnable, context)
        else:
            runnable = action
        if runnable is None:
            if refill is None:
                detail = {"reason": "do_not_call", WITHHELD: withheld} if withheld else {"reason": "precedence"}
                self._mark(claimed, action, ActionStatus.SKIPPED, ActionResult(skipped=True, detail=detail), context)
            return None
        in_flight = entry is not None and entry.status == ActionStatus.IN_FLIGHT.value
        if in_flight:
            found = sink.lookup(runnable, context)
            if found is not None:
                self._mark(claimed, action, ActionStatus.SUCCEEDED, found, context, written=runnable)
                return None
        blocked = (
            blocked_task(
                self._ledger,
                claimed.sink,
                self._sinks[claimed.sink].abilities.do_not_call,
                action,
                context,
                self._written,
            )
            if isinstance(action, CreateTask)
            else None
        )
        if blocked is not None:
            self._mark(claimed, action, ActionStatus.SKIPPED, blocked, context)
            return None
        if isinstance(action, ResolveContact) and not in_flight:
            cached = self._cached_contact(claimed.sink, action)
            if cached is not None:
                self._mark(claimed, action, ActionStatus.SUCCEEDED, cached, context)
                return None
        return runnable

    def _run_one(
        self, claimed: Claimed, action: Action, runnable: Action, context: ExecutionContext, sink: Sink
    ) -> None:
        """One action through the sink, journaled in flight before and succeeded after."""
        crash_point("before_crm_call")
        self._ledger.deliveries.journal_mark(
            claimed.id, action.key, action.kind, ActionStatus.IN_FLIGHT, owner=self._worker
        )
        result = self._call(sink, runnable, context)
        crash_point("after_crm_call")
        self._mark(claimed, action, ActionStatus.SUCCEEDED, result, context, written=runnable)
        if isinstance(action, ResolveContact):
            self._remember_contact(claimed.sink, action, result)
        crash_point("after_action")

    def _execute_combined(
        self, claimed: Claimed, sink: CombinedExecution, actions: list[tuple[Action, Action]], context: ExecutionContext
    ) -> None:
        """All remaining actions in one sink call (all or none), journaled as one step."""
        crash_point("before_crm_call")
        for action, _ in actions:
            self._ledger.deliveries.journal_mark(
                claimed.id, action.key, action.kind, ActionStatus.IN_FLIGHT, owner=self._worker
            )
        results = self._call_many(sink.execute_many, [runnable for _, runnable in actions], context)
        crash_point("after_crm_call")
        for (action, runnable), result in zip(actions, results, strict=True):
            self._mark(claimed, action, ActionStatus.SUCCEEDED, result, context, written=runnable)

    def _quick_retries(self) -> Retrying:
        """Quick in-attempt retries of transient errors (not of rate limits: those block the sink; nor of a wait
        for the search index, which says how long it needs)."""
        return Retrying(
            retry=retry_if_exception(
                lambda e: isinstance(e, TransientError) and not isinstance(e, (RateLimited, AwaitingIndex))
            ),
            stop=stop_after_attempt(self._policy.quick_retries + 1),
            wait=wait_exponential(multiplier=self._policy.quick_wait_s, max=5),
            reraise=True,
        )

    def _call(self, sink: Sink, action: Action, context: ExecutionContext) -> ActionResult:
        return self._quick_retries()(sink.execute, action, context)

    def _call_many(
        self,
        execute_many: Callable[[list[Action], ExecutionContext], Sequence[ActionResult]],
        actions: list[Action],
        context: ExecutionContext,
    ) -> list[ActionResult]:
        return list(self._quick_retries()(execute_many, actions, context))

    def _cached_contact(self, sink: str, action: ResolveContact) -> ActionResult | None:
        """A contact resolved earlier for this number, when the plan matches by phone only.

        A CRM id in `meta` always wins, so plans with an id rule go to the sink. The cache gives
        read-your-writes across workers: a contact created seconds ago is found even while the
        CRM's search index has not caught up, so a second call never creates a duplicate.
        """
        phone = cacheable_phone(action)
        if phone is None or self._contact_cache_s <= 0:
            return None
        found = self._ledger.sinks.cached_contact(sink, phone, max_age_s=self._contact_cache_s)
        if found is None:
            return None
        return ActionResult(crm_id=found[1], object=found[0], detail={"resolved_by": "contact_cache"})

    def _remember_contact(self, sink: str, action: ResolveContact, result: ActionResult) -> None:
        phones = [m.e164 for m in action.match if isinstance(m, MatchByPhone)]
        if phones and result.crm_id and result.object and not result.skipped:
            self._ledger.sinks.cache_contact(sink, phones[0], result.object, result.crm_id)

    def _allowed(self, sink: str, action: UpdateContact, context: ExecutionContext) -> UpdateContact | None:
        """The update with only the fields precedence lets through for this contact."""
        contact = context.contact()
        if contact is None or contact.crm_id is None:
            return action
        fields = [f for f in action.fields if not f.objects or contact.object in f.objects]
        written = self._written(sink, contact_ref_of(contact.object, contact.crm_id), [f.property for f in fields])
        allowed = [f for f in fields if may_write(f, written.get(f.property))]
        return action.model_copy(update={"fields": allowed}) if allowed else None

    def _without_callback_fields(
        self, claimed: Claimed, action: UpdateContact, context: ExecutionContext
    ) -> tuple[UpdateContact | None, dict[str, Any] | None]:
        """A callback outcome's update without its callback fields when the contact is do-not-call (see dnc_guard);
        what was left out is kept in ``context`` for the journal (``_mark``)."""
        guard = self._sinks[claimed.sink].abilities.do_not_call
        runnable, withheld = withheld_fields(self._ledger, claimed.sink, guard, action, context, self._written)
        if withheld:
            context.withheld[action.key] = withheld
            log.info(
                "callback fields left out: the contact is do-not-call",
                extra={"event_id": claimed.event_id, "sink": claimed.sink, "fields": ",".join(withheld["fields"])},
            )
        return runnable, withheld

    def _written(self, sink: str, contact_ref: str, properties: list[str]) -> dict[str, WrittenField]:
        """What the connector wrote to these properties of the contact (the batch runner answers from a bulk read)."""
        return self._ledger.sinks.written(sink, contact_ref, properties)

    def _mark(
        self,
        claimed: Claimed,
        action: Action,
        status: ActionStatus,
        result: ActionResult,
        context: ExecutionContext,
        written: Action | None = None,
    ) -> None:
        previous = context.results.get(action.key)
        if previous is not None and status is ActionStatus.SUCCEEDED and previous.detail.get(SKIPPED):
            result = _refilled(previous, result)
        if status is ActionStatus.SUCCEEDED and action.key in context.withheld:
            result = result.model_copy(update={"detail": {**result.detail, WITHHELD: context.withheld[action.key]}})
        context.results[action.key] = result
        self._journal(claimed, action, status, result)
        contact = context.contact()
        skipped = dict(result.detail.get(SKIPPED) or {})
        if isinstance(written, UpdateContact) and status is ActionStatus.SUCCEEDED and contact and contact.crm_id:
            # Fields the CRM refused (schema drift) were not written: recording them would let precedence keep a
            # replay after crm-setup from filling them.
            not_sent = set(result.detail.get(NOT_WRITTEN_DETAIL, [])) | set(skipped)
            self._record_written(
                claimed.sink,
                contact_ref_of(contact.object, contact.crm_id),
                {f.property: (f.value, f.rank, f.call_time) for f in written.fields if f.property not in not_sent},
                claimed.event_id,
            )
        if status is ActionStatus.SUCCEEDED and written is not None:
            self._missing.track(claimed.sink, claimed.event_id, written, result, contact, skipped)

    def _journal(self, claimed: Claimed, action: Action, status: ActionStatus, result: ActionResult) -> None:
        """Record an action's outcome (the batch runner defers it to its next transaction)."""
        self._ledger.deliveries.journal_mark(
            claimed.id, action.key, action.kind, status, crm_id=result.crm_id, result=result.model_dump(mode="json")
        )

    def _record_written(
        self, sink: str, contact_ref: str, fields: dict[str, tuple[Any, int, Any]], event_id: str
    ) -> None:
        """Precedence bookkeeping of a successful contact update (the batch runner defers it too)."""
        self._ledger.sinks.record_written(sink, contact_ref, fields, event_id)

    # -- deciding the delivery's fate -------------------------------------------------------------

    def _fail(self, claimed: Claimed, attempt_id: int, exc: SinkError) -> str:
        error = {
            "kind": type(exc).__name__,
            "status": exc.status,
            "code": exc.code,
            "message": (exc.crm_message or str(exc))[:4000],
        }
        now = utcnow()
        if isinstance(exc, MissingFields):
            self._missing.note(claimed.sink, claimed.event_id, exc.fields)
            self._ledger.sinks.pause(claimed.sink, str(exc), probe_in_s=self._auth_probe_s)
            log.error(
                "sink paused: the CRM lacks fields it must not skip",
                extra={"sink": claimed.sink, "event_id": claimed.event_id, "fields": sorted(exc.fields)},
            )
            return self._finish(
                claimed, attempt_id, DeliveryStatus.PENDING, DeliveryOutcome.PAUSED, error, due=now, count=False
            )
        if isinstance(exc, AuthError):
            self._ledger.sinks.pause(
                claimed.sink, f"credentials rejected: {error['message']}", probe_in_s=self._auth_probe_s
            )
            log.error("sink paused: credentials rejected", extra={"sink": claimed.sink, "event_id": claimed.event_id})
            return self._finish(
                claimed, attempt_id, DeliveryStatus.PENDING, DeliveryOutcome.PAUSED, error, due=now, count=False
            )
        if isinstance(exc, RateLimited):
            if self._metrics is not None:
                self._metrics.rate_limited.labels(sink=claimed.sink).inc()
            wait_s = exc.retry_after or self._sinks[claimed.sink].sink.capabilities.rate_limited_wait_s
            until = now + timedelta(seconds=wait_s)
            self._ledger.sinks.block_until(claimed.sink, until)
            return self._finish(
                claimed,
                attempt_id,
                DeliveryStatus.RETRY_SCHEDULED,
                DeliveryOutcome.RATE_LIMITED,
                error,
                due=until,
                count=False,
            )
        if isinstance(exc, PermanentError):
            return self._finish(claimed, attempt_id, DeliveryStatus.DEAD, DeliveryOutcome.DEAD, error)
        if isinstance(exc, AwaitingIndex):
            due = now + timedelta(seconds=exc.retry_after or 1.0)
            return self._finish(
                claimed, attempt_id, DeliveryStatus.RETRY_SCHEDULED, DeliveryOutcome.RETRY, error, due=due, count=False
            )
        if isinstance(exc, StaleContact):
            if claimed.contact_key:
                self._ledger.sinks.forget_contact(claimed.sink, claimed.contact_key)
            self._ledger.deliveries.journal_forget(claimed.id, contact_action_key(claimed.event_id))
        delay = self._policy.next_delay(claimed.attempts, exc.retry_after)
        if delay is None:
            error["message"] = f"gave up after {claimed.attempts} attempts: {error['message']}"
            return self._finish(claimed, attempt_id, DeliveryStatus.DEAD, DeliveryOutcome.DEAD, error)
        return self._finish(
            claimed,
            attempt_id,
            DeliveryStatus.RETRY_SCHEDULED,
            DeliveryOutcome.RETRY,
            error,
            due=now + timedelta(seconds=delay),
        )

    def _finish(
        self,
        claimed: Claimed,
        attempt_id: int,
        status: DeliveryStatus,
        outcome: DeliveryOutcome,
        error: dict[str, Any] | None,
        *,
        due: Any = None,
        count: bool = True,
    ) -> str:
        kept = self._ledger.deliveries.finish(
            claimed.id,
            attempt_id,
            self._worker,
            status=status,
            outcome=outcome,
            due_at=due,
            error=error,
            count_attempt=count,
        )
        return self._report(claimed, outcome, kept, error)

    def _report(self, claimed: Claimed, outcome: DeliveryOutcome, kept: bool, error: dict[str, Any] | None) -> str:
        """Metrics and the log line of a finished attempt; returns its outcome (lease_lost when not kept)."""
        final = outcome if kept else DeliveryOutcome.LEASE_LOST
        if self._on_finished is not None:
            self._on_finished(claimed.id)
        if self._metrics is not None:
            self._metrics.attempts.labels(sink=claimed.sink, outcome=final.value).inc()
        log.log(
            logging.WARNING if final is DeliveryOutcome.DEAD else logging.INFO,  # a dead letter needs someone
            "delivery %s",
            final.value,
            extra={
                "event_id": claimed.event_id,
                "sink": claimed.sink,
                "attempt": claimed.attempts,
                **({"error_kind": error.get("kind"), "crm_code": error.get("code")} if error else {}),
            },
        )
        return final


def cacheable_phone(action: ResolveContact) -> str | None:
    """The number the shared contact cache answers for, when the plan matches by phone only."""
    phones = [m.e164 for m in action.match if isinstance(m, MatchByPhone)]
    return phones[0] if phones and len(phones) == len(action.match) else None


def _refill(action: Action, previous: ActionResult) -> UpdateContact | None:
    """A contact update that succeeded without fields the CRM lacked then: on a later run of the delivery (a replay
    after crm-setup), those fields alone, through precedence again (they were never recorded as written, so an
    older call's value still cannot overwrite a newer one's)."""
    skipped = previous.detail.get(SKIPPED)
    if not isinstance(action, UpdateContact) or not skipped:
        return None
    fields = [f for f in action.fields if f.property in skipped]
    return action.model_copy(update={"fields": fields}) if fields else None


def _refilled(previous: ActionResult, refill: ActionResult) -> ActionResult:
    """The journal's result after a refill: everything written so far, and only what is still missing."""
    written = [f for f in refill.detail.get("fields", []) if f not in (refill.detail.get(SKIPPED) or {})]
    detail = {
        **previous.detail,
        "fields": sorted({*previous.detail.get("fields", []), *written}),
        "refilled": sorted(written),
    }
    detail.pop(SKIPPED, None)
    if refill.detail.get(SKIPPED):
        detail[SKIPPED] = refill.detail[SKIPPED]
    return previous.model_copy(update={"detail": detail, "skipped": previous.skipped and refill.skipped})
