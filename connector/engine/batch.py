"""Runs several claimed deliveries of one sink together when a backlog exists, sending each kind of
action for up to `max_batch` events in one CRM request (HubSpot batch APIs, Salesforce sObject
Collections). The exactly-once rules are those of connector.engine.single, applied per action:

1. contacts are resolved for the whole group at once: the shared contact cache is read in one query, and a sink
   with ``resolve_many`` (HubSpot, Salesforce) finds or creates the rest many per request; a sink without it
   resolves one delivery at a time;
2. then, stage by stage in plan order (call activities, contact updates, closing callbacks, tasks), every pending
   action of that kind is journaled `in_flight`, sent in batches, and journaled `succeeded` with
   its CRM id; an action found `in_flight` after a crash is looked up first, as always;
3. a failure of one item fails only its delivery (decided by `_fail` as usual); a failure of the
   whole request (rate limit, outage, auth) fails every delivery in that batch the same way.

The store work is a constant number of transactions per batch, not per event (connector.ledger.bulk): events,
journals, the contact cache and each stage's precedence bookkeeping are read in one query each; attempts and plans
are written in one transaction; each stage's `in_flight` marks in one (with the lease check), which also carries
everything recorded since the previous one (skips, the previous stage's `succeeded` marks and written fields); the
last `succeeded` marks go with the deliveries' finish. A `succeeded` mark lost to a crash leaves `in_flight`, which
is looked up before anything is rewritten, so deferring it costs nothing but that lookup.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from connector.engine.dnc_guard import prefetch
from connector.engine.faults import crash_point
from connector.engine.single import DeliveryRunner, cacheable_phone
from connector.errors import LeaseLost, MappingError, SinkError, StoreError, TransientError
from connector.ledger.bulk import FieldWrite, Finish, Mark, Written
from connector.ledger.deliveries import Claimed, JournalEntry
from connector.ledger.schema import ActionStatus, DeliveryOutcome, DeliveryStatus
from connector.mapping.planner import delivery_plan
from connector.plan import (
    Action,
    CreateTask,
    DoNotCallGuarded,
    HoldForReview,
    MatchByPhone,
    Plan,
    ResolveContact,
    UpdateContact,
)
from connector.precedence import WrittenField, contact_ref_of
from connector.sinks.base import (
    ActionResult,
    BulkContactResolution,
    ExecutionContext,
    Sink,
    SinkAbilities,
    WriteSettling,
)

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


@dataclass
class _Pending:
    """What the batch recorded since its last transaction; written with the next one."""

    marks: list[Mark] = field(default_factory=list)
    fields: dict[tuple[str, str, str], FieldWrite] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.marks or self.fields)


class BatchingRunner(DeliveryRunner):
    """A DeliveryRunner that can also run a group of deliveries of one sink in batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resolving: set[str] = set()
        """Resolve actions this process journaled in flight and has not seen succeed: if one is still in flight at
        its next attempt, this process's sink knows what it wrote (its caches, its unconfirmed writes)."""

    _pending: _Pending | None = None
    """Open while a batch runs: journal marks and written fields wait here for the batch's next transaction."""
    _stage_written: dict[tuple[str, str], WrittenField] | None = None
    _stage_asked: set[tuple[str, str]] | None = None
    _contacts: dict[str, tuple[str, str]] | None = None
    """The contact cache of the batch's phone numbers, read at once (and kept current by its own resolutions)."""

    def batches(self, claimed: list[Claimed]) -> bool:
        """Whether these deliveries of ONE sink run together (its batch ability), not one after another."""
        runtime = self._sinks[claimed[0].sink]
        return len(claimed) > 1 and runtime.sink.capabilities.max_batch > 1 and runtime.abilities.batch is not None

    def run_many(self, claimed: list[Claimed]) -> list[str]:
        """Run deliveries of ONE sink together; returns each one's outcome (same order not promised)."""
        runtime = self._sinks[claimed[0].sink]
        if not self.batches(claimed):
            return [self.run(c) for c in claimed]
        self._pending = _Pending()
        try:
            return self._run_batch(claimed, runtime.sink)
        finally:
            self._pending = self._stage_written = self._stage_asked = self._contacts = None

    def _run_batch(self, claimed: list[Claimed], sink: Sink) -> list[str]:
        outcomes: list[str] = []
        group = self._start_all(claimed, outcomes)
        self._contacts = self._read_contact_cache(group)
        resolver = self._abilities(claimed[0]).resolve_many
        if resolver is not None:
            self._resolve_group(group, sink, resolver, outcomes)
        else:
            for item in group:
                self._resolve(item, sink, outcomes)
        for kind in STAGES:
            self._stage(kind, [i for i in group if not i.failed], sink, outcomes)
        done = [i for i in group if not i.failed]
        written = self._flush(
            finishes=[
                Finish(i.claimed.id, i.attempt_id, DeliveryStatus.SUCCEEDED, DeliveryOutcome.SUCCEEDED) for i in done
            ]
        )
        outcomes += [
            self._report(i.claimed, DeliveryOutcome.SUCCEEDED, i.claimed.id in written.finished, None) for i in done
        ]
        return outcomes

    def _start_all(self, claimed: list[Claimed], outcomes: list[str]) -> list[_InProgress]:
        """Plan every delivery (events read at once), open all attempts and save new plans in one transaction."""
        rows = self._ledger.bulk.events(c.event_id for c in claimed if not c.plan)
        plans: dict[int, Plan | MappingError | SinkError] = {}
        for c in claimed:
            try:
                plans[c.id] = self._plan_from(c, rows.get(c.event_id))
            except (MappingError, SinkError) as exc:
                plans[c.id] = exc
        new = {c.id: p.model_dump_json() for c in claimed if not c.plan and isinstance(p := plans[c.id], Plan)}
        attempt_ids = self._ledger.bulk.start(self._worker, [(c.id, c.attempts) for c in claimed], new)
        journals = self._ledger.bulk.journals(c.id for c in claimed if isinstance(plans[c.id], Plan))
        group: list[_InProgress] = []
        for c in claimed:
            item = self._started(c, attempt_ids[c.id], plans[c.id], journals.get(c.id, {}), outcomes)
            if item is not None:
                group.append(item)
        return group

    def _plan_from(self, claimed: Claimed, row: dict[str, Any] | None) -> Plan:
        mapping = self._sinks[claimed.sink].mapping
        return delivery_plan(claimed.plan, row, mapping, sink=claimed.sink, event_id=claimed.event_id)

    def _started(
        self,
        claimed: Claimed,
        attempt_id: int,
        plan: Plan | MappingError | SinkError,
        journal: dict[str, JournalEntry],
        outcomes: list[str],
    ) -> _InProgress | None:
        if isinstance(plan, MappingError):
            outcomes.append(
                self._finish(
                    claimed,
                    attempt_id,
                    DeliveryStatus.DEAD,
                    DeliveryOutcome.DEAD,
                    {"kind": "mapping_error", "message": str(plan)},
                )
            )
            return None
        if isinstance(plan, SinkError):
            outcomes.append(self._fail(claimed, attempt_id, plan))
            return None
        hold = next((a for a in plan.actions if isinstance(a, HoldForReview)), None)
        if hold is not None:
            outcomes.append(
                self._finish(
                    claimed,
                    attempt_id,
                    DeliveryStatus.HELD,
                    DeliveryOutcome.HELD,
                    {"kind": "hold", "message": hold.reason},
                )
            )
            return None
        return _InProgress(claimed, attempt_id, plan, ExecutionContext(contact_key=claimed.contact_key), journal)

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

    def _abilities(self, claimed: Claimed) -> SinkAbilities:
        return self._sinks[claimed.sink].abilities

    def _resolve_group(
        self, group: list[_InProgress], sink: Sink, resolver: BulkContactResolution, outcomes: list[str]
    ) -> None:
        """Every contact of the group at once: the shared contact cache read in one query, the rest through the
        sink's ``resolve_many`` (one search per 100 numbers, one batch create per 100 new ones), each action
        journaled in flight before and succeeded after, and the cache written in one transaction."""
        pending = self._runnable("resolve_contact", group, sink, outcomes)  # the cache was read for the batch
        settling = self._abilities(group[0].claimed).settling if group else None
        for item, action, _ in pending:
            assert isinstance(action, ResolveContact)
            if action.key not in self._resolving and settling is not None:
                self._recheck_if_interrupted(item, action, settling)
        if pending:
            self._resolve_pending(pending, resolver, outcomes)

    @staticmethod
    def _recheck_if_interrupted(item: _InProgress, action: ResolveContact, settling: WriteSettling) -> None:
        """A resolve another process left in flight (it died) may have created its contact, and the CRM's search may
        not show it yet: the sink treats it as an unconfirmed create (HubSpot waits for its index, Salesforce asks
        SOQL), as it does for its own lost answers, instead of creating the contact again."""
        entry = item.journal.get(action.key)
        if entry is not None and entry.status == ActionStatus.IN_FLIGHT.value:
            settling.unsettle([action.key])

    def _resolve_pending(
        self, pending: list[tuple[_InProgress, Action, Action]], resolver: BulkContactResolution, outcomes: list[str]
    ) -> None:
        crash_point("before_crm_call")
        pending = self._in_flight(pending, outcomes)  # one transaction; a delivery whose lease was lost drops out
        if not pending:
            return
        for _, action, _ in pending:
            if len(self._resolving) >= RESOLVING_KEPT:
                self._resolving.clear()  # forgetting only costs a recheck (a wait), never a duplicate
            self._resolving.add(action.key)
        resolve_many = resolver.resolve_many
        try:
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
        found = {
            phone: (r.object, r.crm_id)
            for (_, action, _), r in zip(pending, results, strict=True)
            if isinstance(r, ActionResult)
            and r.crm_id
            and r.object
            and not r.skipped
            and (phone := cacheable_phone(action)) is not None
        }
        # Before the journal: a crash in between leaves the contact findable by the next call of its number.
        self._ledger.sinks.cache_contacts(pending[0][0].claimed.sink, found)
        if self._contacts is not None:
            self._contacts.update(found)  # read-your-writes within the batch
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
        self._read_written(kind, group)
        try:
            if kind in ("update_contact", "create_task"):
                self._read_do_not_call(kind, group)
            self._stage_actions(kind, group, sink, outcomes)
        finally:
            self._stage_written = self._stage_asked = None

    def _read_do_not_call(self, kind: str, group: list[_InProgress]) -> None:
        """Read the CRM's do-not-call of every contact about to get a callback (its contact fields, then its task) in
        one go, into each delivery's context (see dnc_guard)."""
        done = (ActionStatus.SUCCEEDED.value, ActionStatus.SKIPPED.value)
        pairs: list[tuple[DoNotCallGuarded, ExecutionContext]] = [
            (action, item.context)
            for item in group
            for action in item.plan.actions
            if action.kind == kind
            and isinstance(action, (UpdateContact, CreateTask))  # prefetch keeps those with a guard
            and getattr(item.journal.get(action.key), "status", None) not in done
        ]
        if pairs:
            bulk = self._abilities(group[0].claimed).do_not_call_many
            prefetch(self._ledger, group[0].claimed.sink, bulk, pairs, self._written)

    def _read_written(self, kind: str, group: list[_InProgress]) -> None:
        """The precedence bookkeeping this stage consults (contact fields, do-not-call flags), in one query."""
        wanted: dict[str, set[str]] = {}
        for item in group:
            contact = item.context.contact()
            if contact is None or contact.crm_id is None or contact.skipped:
                continue
            for action in item.plan.actions:
                if action.kind != kind:
                    continue
                if isinstance(action, UpdateContact):
                    props = [f.property for f in action.fields if not f.objects or contact.object in f.objects]
                    props += action.unless_do_not_call  # set only beside callback fields (planner)
                elif isinstance(action, CreateTask):
                    props = list(action.unless_do_not_call)
                else:
                    continue
                wanted.setdefault(contact_ref_of(contact.object, contact.crm_id), set()).update(props)
        if wanted:
            self._stage_written = self._ledger.bulk.written(group[0].claimed.sink, wanted)
            self._stage_asked = {(ref, prop) for ref, props in wanted.items() for prop in props}

    def _runnable(
        self, kind: str, group: list[_InProgress], sink: Sink, outcomes: list[str]
    ) -> list[tuple[_InProgress, Action, Action]]:
        """The group's actions of one kind still to send, each with what is left of it (see ``_prepare``); a
        delivery whose preparation fails is failed here and left out."""
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
        return pending

    def _stage_actions(self, kind: str, group: list[_InProgress], sink: Sink, outcomes: list[str]) -> None:
        pending = self._runnable(kind, group, sink, outcomes)
        size = sink.capabilities.max_batch
        for start in range(0, len(pending), size):
            self._send(pending[start : start + size], sink, outcomes)

    def _send(self, chunk: list[tuple[_InProgress, Action, Action]], sink: Sink, outcomes: list[str]) -> None:
        crash_point("before_crm_call")
        chunk = self._in_flight(chunk, outcomes)
        if not chunk:
            return
        batch = self._abilities(chunk[0][0].claimed).batch
        assert batch is not None, "run_many batches only sinks with execute_batch"
        execute_batch = batch.execute_batch
        try:
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
            self._mark(item.claimed, action, ActionStatus.SUCCEEDED, _as_result(result), item.context, written=runnable)

    # -- the batch's store work (see the module docstring) -------------------------------------------

    def _in_flight(
        self, chunk: list[tuple[_InProgress, Action, Action]], outcomes: list[str]
    ) -> list[tuple[_InProgress, Action, Action]]:
        """Journal the chunk's actions in flight in one transaction (with what is pending), for the deliveries this
        worker still leases; the others fail (LeaseLost) and are left out of the CRM call that follows."""
        written = self._flush(
            in_flight=[
                Mark(item.claimed.id, action.key, action.kind, ActionStatus.IN_FLIGHT) for item, action, _ in chunk
            ]
        )
        for item in {id(i): i for i, _, _ in chunk if i.claimed.id in written.lease_lost}.values():
            item.failed = True  # released as dead meanwhile: another worker may be making this call
            outcomes.append(
                self._fail(item.claimed, item.attempt_id, LeaseLost("this worker's lease on the delivery was released"))
            )
        return [entry for entry in chunk if not entry[0].failed]

    def _flush(self, *, in_flight: list[Mark] | None = None, finishes: list[Finish] | None = None) -> Written:
        """One transaction: what is pending, plus these in-flight marks (lease-checked) and finishes."""
        pending = self._pending or _Pending()
        if not (pending or in_flight or finishes):
            return Written(frozenset(), frozenset())  # nothing to record: no empty transaction
        written = self._ledger.bulk.write(
            self._worker,
            marks=pending.marks,
            in_flight=in_flight,
            fields=list(pending.fields.values()),
            finishes=finishes,
        )
        pending.marks, pending.fields = [], {}
        return written

    def _journal(self, claimed: Claimed, action: Action, status: ActionStatus, result: ActionResult) -> None:
        if self._pending is None:
            return super()._journal(claimed, action, status, result)
        self._pending.marks.append(
            Mark(claimed.id, action.key, action.kind, status, result.crm_id, result.model_dump(mode="json"))
        )
        return None

    def _record_written(
        self, sink: str, contact_ref: str, fields: dict[str, tuple[Any, int, Any]], event_id: str
    ) -> None:
        if self._pending is None:
            return super()._record_written(sink, contact_ref, fields, event_id)
        for prop, (value, rank, call_time) in fields.items():
            self._pending.fields[(sink, contact_ref, prop)] = FieldWrite(
                sink, contact_ref, prop, value, rank, call_time, event_id
            )
        return None

    def _written(self, sink: str, contact_ref: str, properties: list[str]) -> dict[str, WrittenField]:
        """Pending writes of this batch first, then the stage's bulk read; the ledger only for what it did not ask."""
        if self._pending is None:
            return super()._written(sink, contact_ref, properties)
        asked, read = self._stage_asked or set(), self._stage_written or {}
        missing = [p for p in properties if (contact_ref, p) not in asked]
        found = super()._written(sink, contact_ref, missing) if missing else {}
        found.update({p: read[(contact_ref, p)] for p in properties if (contact_ref, p) in read})
        for prop in properties:
            pending = self._pending.fields.get((sink, contact_ref, prop))
            if pending is not None:
                found[prop] = WrittenField(pending.value, pending.rank, pending.call_time, pending.event_id)
        return found

    def _fail(self, claimed: Claimed, attempt_id: int, exc: SinkError) -> str:
        if self._pending:
            self._flush()  # recorded before the failure's consequences (e.g. a stale contact's entry forgotten)
        return super()._fail(claimed, attempt_id, exc)

    def _read_contact_cache(self, group: list[_InProgress]) -> dict[str, tuple[str, str]] | None:
        if self._contact_cache_s <= 0 or not group:
            return None
        phones = {
            m.e164
            for item in group
            for action in item.plan.actions
            if isinstance(action, ResolveContact)
            for m in action.match
            if isinstance(m, MatchByPhone)
        }
        return (
            self._ledger.sinks.cached_contacts(group[0].claimed.sink, sorted(phones), max_age_s=self._contact_cache_s)
            if phones
            else {}
        )

    def _cached_contact(self, sink: str, action: ResolveContact) -> ActionResult | None:
        """As DeliveryRunner's, answered from the batch's one read of the cache."""
        if self._contacts is None:
            return super()._cached_contact(sink, action)
        phones = [m.e164 for m in action.match if isinstance(m, MatchByPhone)]
        found = self._contacts.get(phones[0]) if phones and len(phones) == len(action.match) else None
        if found is None:
            return None
        return ActionResult(crm_id=found[1], object=found[0], detail={"resolved_by": "contact_cache"})

    def _remember_contact(self, sink: str, action: ResolveContact, result: ActionResult) -> None:
        super()._remember_contact(sink, action, result)
        phones = [m.e164 for m in action.match if isinstance(m, MatchByPhone)]
        if self._contacts is not None and phones and result.crm_id and result.object and not result.skipped:
            self._contacts[phones[0]] = (result.object, result.crm_id)  # read-your-writes within the batch


def _as_result(result: Any) -> ActionResult:
    return result if isinstance(result, ActionResult) else ActionResult.model_validate(result)
