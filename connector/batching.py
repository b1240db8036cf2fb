"""Runs several claimed deliveries of one sink together when a backlog exists, sending each kind of
action for up to `max_batch` events in one CRM request (HubSpot batch APIs, Salesforce sObject
Collections). The exactly-once rules are those of connector.delivery, applied per action:

1. contacts are resolved for the whole group at once: the shared contact cache is read in one query, and a sink
   with ``resolve_many`` (HubSpot, Salesforce) finds or creates the rest many per request; a sink without it
   resolves one delivery at a time;
2. then, stage by stage in plan order (call activities, contact updates, closing callbacks, tasks), every pending
   action of that kind is journaled `in_flight`, sent in batches, and journaled `succeeded` with
   its CRM id; an action found `in_flight` after a crash is looked up first, as always;
3. a failure of one item fails only its delivery (decided by `_fail` as usual); a failure of the
   whole request (rate limit, outage, auth) fails every delivery in that batch the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from connector.delivery import DeliveryRunner, cacheable_phone
from connector.errors import MappingError, SinkError, StoreError, TransientError
from connector.faults import crash_point
from connector.ledger.deliveries import Claimed
from connector.ledger.schema import ActionStatus, DeliveryStatus
from connector.dnc_guard import prefetch
from connector.plan import Action, CreateTask, HoldForReview, Plan, ResolveContact
from connector.sinks.base import ActionResult, ExecutionContext, Sink

log = logging.getLogger(__name__)

RESOLVING_KEPT = 100_000
"""In-flight resolves remembered per process (see ``BatchingRunner._resolving``)."""
STAGES = ("create_activity", "update_contact", "close_callbacks", "create_task")
"""close_callbacks (do-not-call plans) before create_task, so a callback task in the same batch already sees a
do-not-call written by the update_contact stage; sinks run it through their single path (no batch form)."""


@dataclass
class _InProgress:
    claimed: Claimed
    attempt_id: int
    plan: Plan
    context: ExecutionContext
    journal: dict[str, Any] = field(default_factory=dict)
    failed: bool = False


class BatchingRunner(DeliveryRunner):
    """A DeliveryRunner that can also run a group of deliveries of one sink in batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resolving: set[str] = set()
        """Resolve actions this process journaled in flight and has not seen succeed: if one is still in flight at
        its next attempt, this process's sink knows what it wrote (its caches, its unconfirmed writes)."""

    def run_many(self, claimed: list[Claimed]) -> list[str]:
        """Run deliveries of ONE sink together; returns each one's outcome (same order not promised)."""
        sink = self._sinks[claimed[0].sink].sink
        if len(claimed) == 1 or sink.capabilities.max_batch <= 1 or not hasattr(sink, "execute_batch"):
            return [self.run(c) for c in claimed]
        outcomes: list[str] = []
        group = [g for g in (self._start(c, outcomes) for c in claimed) if g is not None]
        if hasattr(sink, "resolve_many"):
            self._resolve_group(group, sink, outcomes)
        else:
            for item in group:
                self._resolve(item, sink, outcomes)
        for kind in STAGES:
            self._stage(kind, [i for i in group if not i.failed], sink, outcomes)
        for item in group:
            if not item.failed:
                outcomes.append(self._finish(item.claimed, item.attempt_id, DeliveryStatus.SUCCEEDED, "succeeded",
                                             None))
        return outcomes

    def _start(self, claimed: Claimed, outcomes: list[str]) -> _InProgress | None:
        attempt_id = self._ledger.deliveries.start_attempt(claimed.id, claimed.attempts, self._worker)
        try:
            plan = self._plan(claimed, self._sinks[claimed.sink].mapping)
        except MappingError as exc:
            outcomes.append(self._finish(claimed, attempt_id, DeliveryStatus.DEAD, "dead",
                                         {"kind": "mapping_error", "message": str(exc)}))
            return None
        except SinkError as exc:
            outcomes.append(self._fail(claimed, attempt_id, exc))
            return None
        hold = next((a for a in plan.actions if isinstance(a, HoldForReview)), None)
        if hold is not None:
            outcomes.append(self._finish(claimed, attempt_id, DeliveryStatus.HELD, "held",
                                         {"kind": "hold", "message": hold.reason}))
            return None
        item = _InProgress(claimed, attempt_id, plan, ExecutionContext(contact_key=claimed.contact_key))
        item.journal = self._ledger.deliveries.journal(claimed.id)
        return item

    def _resolve(self, item: _InProgress, sink: Sink, outcomes: list[str]) -> None:
        for action in item.plan.actions:
            if not isinstance(action, ResolveContact):
                continue
            try:
                runnable = self._prepare(item.claimed, action, item.journal, item.context, sink)
                if runnable is not None:
                    self._run_one(item.claimed, action, runnable, item.context, sink)
            except SinkError as exc:
                item.failed = True
                outcomes.append(self._fail(item.claimed, item.attempt_id, exc))
            except StoreError:
                raise  # the store is down: the worker backs off; nothing here can record a retry
            except Exception as exc:  # noqa: BLE001 - like run(): unknown failures retry, bounded
                log.exception("resolving a contact failed unexpectedly", extra={"event_id": item.claimed.event_id})
                item.failed = True
                outcomes.append(self._fail(item.claimed, item.attempt_id, TransientError(repr(exc))))

    def _resolve_group(self, group: list[_InProgress], sink: Sink, outcomes: list[str]) -> None:
        """Every contact of the group at once: the shared contact cache read in one query, the rest through the
        sink's ``resolve_many`` (one search per 100 numbers, one batch create per 100 new ones), each action
        journaled in flight before and succeeded after, and the cache written in one transaction."""
        self._contacts_known = self._read_contacts(group)
        pending: list[tuple[_InProgress, ResolveContact, ResolveContact]] = []
        try:
            for item in group:
                for action in item.plan.actions:
                    if not isinstance(action, ResolveContact):
                        continue
                    try:
                        runnable = self._prepare(item.claimed, action, item.journal, item.context, sink)
                    except SinkError as exc:
                        item.failed = True
                        outcomes.append(self._fail(item.claimed, item.attempt_id, exc))
                        break
                    if runnable is not None:
                        assert isinstance(runnable, ResolveContact)
                        if action.key not in self._resolving:
                            self._recheck_if_interrupted(item, action, sink)
                        pending.append((item, action, runnable))
        finally:
            self._contacts_known = None
        if pending:
            self._resolve_pending(pending, sink, outcomes)

    @staticmethod
    def _recheck_if_interrupted(item: _InProgress, action: ResolveContact, sink: Sink) -> None:
        """A resolve another process left in flight (it died) may have created its contact, and the CRM's search may
        not show it yet: the sink treats it as an unconfirmed create (HubSpot waits for its index, Salesforce asks
        SOQL), as it does for its own lost answers, instead of creating the contact again."""
        entry = item.journal.get(action.key)
        unsettle = getattr(sink, "unsettle", None)
        if entry is not None and entry.status == ActionStatus.IN_FLIGHT.value and unsettle is not None:
            unsettle([action.key])

    def _read_contacts(self, group: list[_InProgress]) -> dict[str, tuple[str, str]]:
        if self._contact_cache_s <= 0:
            return {}
        phones = [phone for item in group for action in item.plan.actions
                  if isinstance(action, ResolveContact) and (phone := cacheable_phone(action)) is not None]
        return self._ledger.sinks.cached_contacts(group[0].claimed.sink, phones, max_age_s=self._contact_cache_s)

    def _resolve_pending(self, pending: list[tuple[_InProgress, ResolveContact, ResolveContact]], sink: Sink,
                         outcomes: list[str]) -> None:
        crash_point("before_crm_call")
        resolve_many = getattr(sink, "resolve_many")
        try:
            for item, action, _ in pending:
                self._ledger.deliveries.journal_mark(item.claimed.id, action.key, action.kind,
                                                     ActionStatus.IN_FLIGHT, owner=self._worker)
                if len(self._resolving) >= RESOLVING_KEPT:
                    self._resolving.clear()  # forgetting only costs a recheck (a wait), never a duplicate
                self._resolving.add(action.key)
            results = self._quick_retries()(resolve_many, [runnable for _, _, runnable in pending])
        except SinkError as exc:
            self._fail_all([item for item, _, _ in pending], exc, outcomes)
            return
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - like run(): unknown failures retry, bounded
            log.exception("resolving contacts failed unexpectedly")
            self._fail_all([item for item, _, _ in pending], TransientError(repr(exc)), outcomes)
            return
        crash_point("after_crm_call")
        found = {phone: (r.object, r.crm_id) for (_, action, _), r in zip(pending, results, strict=True)
                 if isinstance(r, ActionResult) and r.crm_id and r.object and not r.skipped
                 and (phone := cacheable_phone(action)) is not None}
        # Before the journal: a crash in between leaves the contact findable by the next call of its number.
        self._ledger.sinks.cache_contacts(pending[0][0].claimed.sink, found)
        for (item, action, runnable), result in zip(pending, results, strict=True):
            if item.failed:
                continue
            try:
                if isinstance(result, SinkError):
                    raise result
                self._mark(item.claimed, action, ActionStatus.SUCCEEDED, result, item.context, written=runnable)
                self._resolving.discard(action.key)
            except SinkError as exc:
                item.failed = True
                outcomes.append(self._fail(item.claimed, item.attempt_id, exc))
        crash_point("after_action")

    def _fail_all(self, items: list[_InProgress], exc: SinkError, outcomes: list[str]) -> None:
        for item in {id(i): i for i in items}.values():
            if not item.failed:
                item.failed = True
                outcomes.append(self._fail(item.claimed, item.attempt_id, exc))

    def _stage(self, kind: str, group: list[_InProgress], sink: Sink, outcomes: list[str]) -> None:
        """Every pending action of one kind, across the group, in batches of max_batch."""
        self._dnc_known = self._read_do_not_call(group, sink) if kind == "create_task" else None
        try:
            self._stage_actions(kind, group, sink, outcomes)
        finally:
            self._dnc_known = None

    def _read_do_not_call(self, group: list[_InProgress], sink: Sink) -> dict[str, str | None]:
        """Read the CRM's do-not-call of every contact about to get a callback task, in one go (see dnc_guard)."""
        done = (ActionStatus.SUCCEEDED.value, ActionStatus.SKIPPED.value)
        pairs = [(action, item.context) for item in group for action in item.plan.actions
                 if isinstance(action, CreateTask)
                 and getattr(item.journal.get(action.key), "status", None) not in done]
        return prefetch(self._ledger, group[0].claimed.sink, sink, pairs) if pairs else {}

    def _stage_actions(self, kind: str, group: list[_InProgress], sink: Sink, outcomes: list[str]) -> None:
        pending: list[tuple[_InProgress, Action, Action]] = []
        for item in group:
            for action in item.plan.actions:
                if action.kind != kind:
                    continue
                try:
                    runnable = self._prepare(item.claimed, action, item.journal, item.context, sink)
                except SinkError as exc:
                    item.failed = True
                    outcomes.append(self._fail(item.claimed, item.attempt_id, exc))
                    break
                if runnable is not None:
                    pending.append((item, action, runnable))
        size = sink.capabilities.max_batch
        for start in range(0, len(pending), size):
            self._send(pending[start:start + size], sink, outcomes)

    def _send(self, chunk: list[tuple[_InProgress, Action, Action]], sink: Sink, outcomes: list[str]) -> None:
        crash_point("before_crm_call")
        execute_batch = getattr(sink, "execute_batch")
        try:
            for item, action, _ in chunk:  # LeaseLost (a SinkError) here fails the chunk before any call
                self._ledger.deliveries.journal_mark(item.claimed.id, action.key, action.kind,
                                                     ActionStatus.IN_FLIGHT, owner=self._worker)
            results = self._quick_retries()(execute_batch, [(runnable, item.context) for item, _, runnable in chunk])
        except SinkError as exc:
            for item in {id(i): i for i, _, _ in chunk}.values():
                item.failed = True
                outcomes.append(self._fail(item.claimed, item.attempt_id, exc))
            return
        crash_point("after_crm_call")
        for (item, action, runnable), result in zip(chunk, results, strict=True):
            if item.failed:
                continue
            if isinstance(result, SinkError):
                item.failed = True
                outcomes.append(self._fail(item.claimed, item.attempt_id, result))
                continue
            self._mark(item.claimed, action, ActionStatus.SUCCEEDED, _as_result(result), item.context,
                       written=runnable)


def _as_result(result: Any) -> ActionResult:
    return result if isinstance(result, ActionResult) else ActionResult.model_validate(result)
