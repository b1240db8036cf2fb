"""Retention: empty what the store keeps about people once it is older than `store.retention_days`.

Why not delete events: the event row's primary key is what makes a late retry of the same call a duplicate (200,
nothing delivered twice) and a different body under a used id a conflict (409). So a purged event keeps its id,
its two hashes (of the raw body and of the canonical JSON), its received time and a documented end reason; its raw
body, normalized form and phone number are emptied and `purged_at` is set. Around it:

- its deliveries lose their plan (rendered transcript, phone, names), their contact key and their error texts, and
  its attempts their messages (a CRM's error can quote the value it refused), keeping statuses, codes and times;
- its journal entries lose their results (they can name refused values), keeping action, status and CRM id;
- quarantined bodies older than the cut-off are deleted (a refused body is nothing but its content);
- cached phone → contact look-ups older than the cut-off are deleted (the next call looks the number up again);
- remembered values (`field_state`: answers, statuses, dates) of calls older than the cut-off are emptied, keeping
  their rank and call time so precedence still holds, except JSON `true`: the connector's own record that a contact
  asked not to be called keeps a later callback off their calendar, and an opt-out is kept as long as the contact
  is (the store does not know which property is the opt-out, so every yes-flag stays: a flag holds no text).

Only settled events are purged: an event with a delivery still pending, leased, retrying or held keeps everything
until it settles. A dead-lettered delivery counts as settled: past retention it can no longer be replayed.
Each batch of 50 rows is one short write transaction (a few milliseconds; `python bench/retention.py` measures
it), so a webhook never waits long for the write lock.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    Engine,
    Exists,
    Select,
    case,
    delete,
    exists,
    false,
    func,
    or_,
    select,
    update,
)

from connector.ledger._among import among
from connector.ledger._clock import utcnow
from connector.ledger._errors import guard_public_methods
from connector.ledger.schema import (
    DeliveryStatus,
    action_journal,
    attempts,
    contact_cache,
    deliveries,
    events,
    field_state,
    quarantine,
)
from connector.ledger.write_queue import queue_for
from connector.payload import EndReason
from connector.phones import parse_e164

PURGED_NORMALIZED = '{"purged": true}'
"""What a purged event's `normalized` column holds: valid JSON for every reader, and no call record."""
UNSETTLED = (
    DeliveryStatus.PENDING.value,
    DeliveryStatus.LEASED.value,
    DeliveryStatus.RETRY_SCHEDULED.value,
    DeliveryStatus.HELD.value,
)
"""Deliveries that may still need the event's content."""
KEPT_ANSWER = "true"
"""The one remembered value purging keeps (JSON `true`: the do-not-call the connector wrote, and other yes-flags)."""
BATCH = 50
YIELD_S = 0.002
"""SQLite: the pause after each batch's write, so receivers queued for the write lock get it first."""
DOCUMENTED_END_REASONS = sorted(reason.value for reason in EndReason)


@dataclass
class PurgeCounts:
    """What one purge emptied or deleted (or, for a dry run, would)."""

    events: int = 0
    quarantined: int = 0
    cached_contacts: int = 0
    answers: int = 0
    unsettled_kept: int = 0
    """Events older than the cut-off kept whole because a delivery of theirs has not settled."""
    more_left: bool = False
    """Stopped at `max_batches` with settled old events still to purge."""

    def as_dict(self) -> dict[str, int | bool]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @property
    def anything(self) -> bool:
        """Whether anything was (or would be) purged."""
        return any((self.events, self.quarantined, self.cached_contacts, self.answers))


@dataclass(frozen=True)
class _Found:
    """One person's rows, as `RetentionStore.forget_contact` finds them."""

    settled: list[str]
    unsettled: int
    cached: int
    refs: list[tuple[Any, ...]]
    """(sink, contact ref) of the CRM records their calls went to, with values to empty."""
    answers: int
    quarantined: list[tuple[int]]


def cutoff(retention_days: float, now: datetime | None = None) -> datetime:
    """The instant before which `retention_days` has passed."""
    return (now or utcnow()) - timedelta(days=retention_days)


@guard_public_methods
class RetentionStore:
    """Purges personal data older than a cut-off (see the module docstring)."""

    def __init__(self, engine: Engine, writes: Engine) -> None:
        self._engine = engine
        self._writes = writes
        self._queue = queue_for(engine.url.database) if engine.dialect.name == "sqlite" else None
        """SQLite: each batch takes its turn in the receivers' queue for the write lock (connector.ledger.write_queue),
        so a webhook waits for at most one batch, and is woken as it ends instead of sleeping in SQLite's busy
        handler."""

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()

    def purge(
        self, before: datetime, *, dry_run: bool = False, batch: int = BATCH, max_batches: int | None = None
    ) -> PurgeCounts:
        """Purge everything received (or cached, or answered) before `before`, in batches; returns the counts.

        A documented end reason stays on a purged event (the dashboard counts by it); any other is the sender's free
        text, which may hold a name or a number, and is emptied too. With `max_batches`, at most that many batches of
        events (`more_left` then says whether some remain, and the rest waits for the next call): a worker purges a
        little between deliveries. What to purge is read first, outside any write transaction; each batch's write
        checks the conditions again, so a row that changed meanwhile (a delivery requeued) is left alone."""
        if dry_run:
            return self._would_purge(before)
        total = PurgeCounts()
        budget = max_batches
        while budget is None or budget > 0:
            ids = self._settled_old_events(before, batch)
            if ids:
                total.events += self._in_turn(_purge_events, ids, before)
                budget = None if budget is None else budget - 1
            if len(ids) < batch:
                break
        else:
            total.more_left = bool(self._settled_old_events(before, 1))
        tails = (
            ("quarantined", _quarantined_before(before), _delete_quarantined),
            ("cached_contacts", _cached_before(before), _delete_cached),
            ("answers", _answered_before(before), _empty_answers),
        )
        for name, query, write in tails:
            if total.more_left:
                break
            done, batches, full = self._in_batches(query, batch, write, budget, before)
            setattr(total, name, done)
            budget = None if budget is None else budget - batches
            total.more_left = full
        with self._engine.connect() as connection:
            total.unsettled_kept = _count(connection, _unpurged_old_events(before).where(_unsettled()))
        return total

    def _settled_old_events(self, before: datetime, limit: int) -> list[str]:
        """Up to `limit` events to purge, oldest first (a read, from the index of the events not purged yet)."""
        query = _unpurged_old_events(before).where(~_unsettled()).order_by(events.c.received_at).limit(limit)
        with self._engine.connect() as connection:
            return list(connection.execute(query).scalars())

    def _in_turn(self, write: Callable[..., int], *args: Any) -> int:
        """`write(connection, *args)` in one write transaction, on SQLite in its turn in the receivers' queue, then a
        pause: the kernel wakes a queued receiver when the turn ends, but does not hand the lock over, and a purge
        taking its next turn at once kept webhooks waiting for a dozen batches (p99 237 ms in bench/retention.py)."""
        if self._queue is None:
            with self._writes.begin() as connection:
                return write(connection, *args)
        with self._queue.turn(), self._writes.begin() as connection:
            done = write(connection, *args)
        time.sleep(YIELD_S)
        return done

    def _in_batches(
        self, query: Select[Any], batch: int, write: Callable[..., int], budget: int | None, before: datetime
    ) -> tuple[int, int, bool]:
        """Read the keys `query` selects (at most `budget` batches of them), then `write` them a batch at a time, each
        in its own transaction that checks the cut-off again: how many rows were written, in how many batches, and
        whether the budget ran out first."""
        if budget is not None and budget <= 0:
            return 0, 0, True
        limit = None if budget is None else budget * batch
        with self._engine.connect() as connection:
            keys = [tuple(row) for row in connection.execute(query.limit(limit))]
        done, batches = self._write_in_batches(write, keys, batch, before)
        return done, batches, limit is not None and len(keys) == limit

    def _write_in_batches(
        self, write: Callable[..., int], keys: list[Any], batch: int, before: datetime | None
    ) -> tuple[int, int]:
        """`write(connection, chunk, before)` for each `batch` of `keys`, each in its own turn: rows written, batches."""
        done = batches = 0
        for start in range(0, len(keys), batch):
            done += self._in_turn(write, keys[start : start + batch], before)
            batches += 1
        return done, batches

    def forget_contact(self, contact_key: str, *, dry_run: bool = False, batch: int = BATCH) -> PurgeCounts:
        """Erase one person on request, whatever the age of their calls: purge every settled call of `contact_key`
        (an E.164 number) as retention would, delete its cached look-ups, empty what was remembered for the CRM
        records those calls went to (yes-flags stay: an opt-out must outlive the erasure) and delete quarantined
        bodies that hold the number. Calls still being delivered are kept whole and counted in `unsettled_kept`:
        run it again once they settle."""
        found = self._find_contact(contact_key)
        if dry_run:
            return PurgeCounts(
                events=len(found.settled),
                quarantined=len(found.quarantined),
                cached_contacts=found.cached,
                answers=found.answers,
                unsettled_kept=found.unsettled,
            )
        return PurgeCounts(
            events=self._write_in_batches(_purge_events, found.settled, batch, None)[0],
            answers=self._write_in_batches(_empty_answers, found.refs, batch, None)[0],
            quarantined=self._write_in_batches(_delete_quarantined, found.quarantined, batch, None)[0],
            cached_contacts=self._in_turn(_delete_cached_number, contact_key),
            unsettled_kept=found.unsettled,
        )

    def _find_contact(self, contact_key: str) -> _Found:
        """What `forget_contact` would erase (reads only)."""
        mine = select(events.c.event_id).where(events.c.contact_key == contact_key, events.c.purged_at.is_(None))
        cached = select(contact_cache.c.object, contact_cache.c.crm_id).where(
            contact_cache.c.contact_key == contact_key
        )
        resolved = (
            select(action_journal.c.crm_id)
            .join(deliveries, deliveries.c.id == action_journal.c.delivery_id)
            .join(events, events.c.event_id == deliveries.c.event_id)
            .where(
                events.c.contact_key == contact_key,
                action_journal.c.kind == "resolve_contact",
                action_journal.c.crm_id.is_not(None),
            )
        )
        with self._engine.connect() as connection:
            settled = list(connection.execute(mine.where(~_unsettled())).scalars())
            unsettled = _count(connection, mine.where(_unsettled()))
            cache_rows = connection.execute(cached).all()
            records = {str(crm_id) for crm_id in connection.execute(resolved).scalars()}
            records |= {str(row.crm_id) for row in cache_rows}
            of_records = or_(
                false(), *(field_state.c.contact_ref.endswith(f":{crm_id}", autoescape=True) for crm_id in records)
            )
            refs = connection.execute(
                select(field_state.c.sink, field_state.c.contact_ref).where(of_records, *_old_answers(None)).distinct()
            ).all()
            answers = _count(connection, select(field_state.c.sink).where(of_records, *_old_answers(None)))
            quarantined = _quarantined_with(connection, contact_key)
        return _Found(settled, unsettled, len(cache_rows), [tuple(r) for r in refs], answers, quarantined)

    def _would_purge(self, before: datetime) -> PurgeCounts:
        """What `purge` would do now (a dry run: reads only)."""
        with self._engine.connect() as connection:
            old = _unpurged_old_events(before)
            return PurgeCounts(
                events=_count(connection, old.where(~_unsettled())),
                quarantined=_count(connection, select(quarantine.c.id).where(quarantine.c.received_at < before)),
                cached_contacts=_count(
                    connection, select(contact_cache.c.sink).where(contact_cache.c.updated_at < before)
                ),
                answers=_count(connection, select(field_state.c.sink).where(*_old_answers(before))),
                unsettled_kept=_count(connection, old.where(_unsettled())),
            )


def _purge_events(connection: Connection, ids: list[str], before: datetime | None) -> int:
    """Empty these events (those still unpurged, settled and, given `before`, older) and what hangs off them; how
    many."""
    now = utcnow()
    kept_reason = case((events.c.end_reason.in_(DOCUMENTED_END_REASONS), events.c.end_reason), else_=None)
    purged: list[str] = []
    for condition in among(connection, events.c.event_id, ids, "ids"):
        emptied = (
            update(events)
            .where(condition, *_received_before(before), events.c.purged_at.is_(None), ~_unsettled())
            .values(body=b"", normalized=PURGED_NORMALIZED, contact_key=None, end_reason=kept_reason, purged_at=now)
            .returning(events.c.event_id)
        )
        purged += connection.execute(emptied).scalars()
    delivery_ids: list[int] = []
    for condition in among(connection, deliveries.c.event_id, purged, "ids"):
        emptied = (
            update(deliveries)
            .where(condition)
            .values(plan=None, contact_key=None, last_error=None, dead_reason=None, updated_at=now)
            .returning(deliveries.c.id)
        )
        delivery_ids += connection.execute(emptied).scalars()
    for owned in among(connection, attempts.c.delivery_id, delivery_ids, "deliveries"):
        connection.execute(update(attempts).where(owned).values(message=None))
    for owned in among(connection, action_journal.c.delivery_id, delivery_ids, "deliveries"):
        connection.execute(update(action_journal).where(owned).values(result=None))
    return len(purged)


def _quarantined_before(before: datetime) -> Select[Any]:
    return select(quarantine.c.id).where(quarantine.c.received_at < before)


def _delete_quarantined(connection: Connection, keys: list[Any], before: datetime | None) -> int:
    done = 0
    old = [quarantine.c.received_at < before] if before is not None else []
    for condition in among(connection, quarantine.c.id, [key[0] for key in keys], "ids"):
        done += _rowcount(connection.execute(delete(quarantine).where(condition, *old)))
    return done


def _cached_before(before: datetime) -> Select[Any]:
    return select(contact_cache.c.sink, contact_cache.c.contact_key).where(contact_cache.c.updated_at < before)


def _delete_cached(connection: Connection, keys: list[Any], before: datetime) -> int:
    """Delete these look-ups, unless a worker found the contact again since they were read (then they are new)."""
    done = 0
    for sink, numbers in _by_sink(keys).items():
        for condition in among(connection, contact_cache.c.contact_key, numbers, "keys"):
            done += _rowcount(
                connection.execute(
                    delete(contact_cache).where(
                        contact_cache.c.sink == sink, condition, contact_cache.c.updated_at < before
                    )
                )
            )
    return done


def _delete_cached_number(connection: Connection, contact_key: str) -> int:
    return _rowcount(connection.execute(delete(contact_cache).where(contact_cache.c.contact_key == contact_key)))


def _quarantined_with(connection: Connection, contact_key: str) -> list[tuple[int]]:
    """Quarantined bodies that hold this number in any usual spelling (a refused body may not even be JSON, so its
    text is searched: the national number's digits in order, separated by nothing or by spaces, dots, dashes or
    parentheses, and no digit right before or after)."""
    number = parse_e164(contact_key)
    digits = phonenumbers.national_significant_number(number) if number is not None else contact_key.lstrip("+")
    pattern = re.compile(r"(?<!\d)" + r"[\s().\-]*".join(digits) + r"(?!\d)")
    found: list[tuple[int]] = []
    last = 0
    while True:
        page = connection.execute(
            select(quarantine.c.id, quarantine.c.body)
            .where(quarantine.c.id > last)
            .order_by(quarantine.c.id)
            .limit(200)
        ).all()
        if not page:
            return found
        found += [(row.id,) for row in page if pattern.search(bytes(row.body).decode("utf-8", "replace"))]
        last = page[-1].id


def _answered_before(before: datetime) -> Select[Any]:
    return select(field_state.c.sink, field_state.c.contact_ref).where(*_old_answers(before)).distinct()


def _empty_answers(connection: Connection, keys: list[Any], before: datetime | None) -> int:
    """Empty these contacts' old remembered values, unless a newer call wrote them since they were read."""
    done = 0
    for sink, refs in _by_sink(keys).items():
        for condition in among(connection, field_state.c.contact_ref, refs, "refs"):
            emptied = update(field_state).where(field_state.c.sink == sink, condition, *_old_answers(before))
            done += _rowcount(connection.execute(emptied.values(value=None)))
    return done


def _by_sink(keys: list[Any]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for sink, key in keys:
        grouped.setdefault(sink, []).append(key)
    return grouped


def _unpurged_old_events(before: datetime) -> Select[tuple[str]]:
    """Events received before `before` and not purged yet (from `ix_events_unpurged`)."""
    return select(events.c.event_id).where(events.c.received_at < before, events.c.purged_at.is_(None))


def _unsettled() -> Exists:
    """The event (of the enclosing query) has a delivery that may still need its content."""
    return exists().where(deliveries.c.event_id == events.c.event_id, deliveries.c.status.in_(UNSETTLED))


def _old_answers(before: datetime | None) -> tuple[ColumnElement[bool], ...]:
    """Remembered values to empty: all but yes-flags, and given `before`, only those written by older calls."""
    old = (field_state.c.call_time < before,) if before is not None else ()
    return (*old, field_state.c.value.is_not(None), field_state.c.value != KEPT_ANSWER)


def _received_before(before: datetime | None) -> tuple[ColumnElement[bool], ...]:
    return (events.c.received_at < before,) if before is not None else ()


def _count(connection: Connection, query: Select[Any]) -> int:
    return int(connection.execute(select(func.count()).select_from(query.subquery())).scalar_one())


def _rowcount(result: CursorResult[Any]) -> int:
    return int(result.rowcount or 0)
