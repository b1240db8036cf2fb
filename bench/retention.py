"""Retention benchmark: what purging a store full of old calls costs, and what it does to webhooks meanwhile.

Fills a fresh store with N settled calls as the worker leaves them (the raw body with a 20-turn transcript, the
normalized call, one succeeded delivery with its saved plan, three journal entries, one attempt, two remembered
fields and a cached contact each, all distinct numbers), dates them 100 days back, then purges what is older than
90 days in the worker's steps (`PURGE_BATCHES` transactions of `BATCH` rows, back to back), timing each step and
each write transaction (its wait for SQLite's write queue included). Meanwhile a
thread commits a webhook every 5 ms through `Ledger.record_event` (the receiver's commit) and records how long each
took; the same thread runs for as long before the purge, for the baseline.

    python bench/retention.py [--events 20000] [--stores sqlite,postgresql] [--pg-admin URL]

A benchmark script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from _load import percentile  # bench/ is sys.path[0]
from _stores import DEFAULT_PG_ADMIN, Store, StoreKind, pg_reachable
from sqlalchemy import func, insert, select

from connector.config import StoreSettings
from connector.engine.worker import PURGE_BATCHES
from connector.ledger import Ledger
from connector.ledger._clock import utcnow
from connector.ledger.retention import BATCH, PurgeCounts, cutoff
from connector.ledger.schema import action_journal, attempts, contact_cache, deliveries, events, field_state
from connector.ledger.store import _new_delivery, _new_event
from connector.payload import parse_webhook
from connector.receiver.ingest import content_hash
from connector.sample import sample_payload

CHUNK = 1000
TRANSCRIPT = [
    {"role": "User" if i % 2 else "Assistant", "content": f"Turn {i}: a sentence or two of what was said on the call."}
    for i in range(20)
]


def _document(i: int) -> dict[str, Any]:
    return sample_payload(f"old-{i}", record_phone_number=f"+1202{5_000_000 + i:07d}", transcript=TRANSCRIPT)


def fill(ledger: Ledger, count: int) -> None:
    """`count` settled calls, received 100 days ago, each with what delivering it leaves in the store."""
    received = utcnow() - timedelta(days=100)
    for start in range(0, count, CHUNK):
        event_rows, delivery_rows = [], []
        for i in range(start, min(start + CHUNK, count)):
            document = _document(i)
            event = parse_webhook(document)
            body = json.dumps(document).encode()
            event_rows.append(_new_event(event, body, content_hash(document), "application/json", received))
            delivery = _new_delivery(event.id, "hubspot", 10, received, event.contact_key)
            delivery.update(status="succeeded", plan=json.dumps({"transcript": TRANSCRIPT}), finished_at=received)
            delivery_rows.append(delivery)
        with ledger.engine.begin() as connection:
            connection.execute(insert(events), event_rows)
            connection.execute(insert(deliveries), delivery_rows)
            ids = [
                r.id
                for r in connection.execute(
                    deliveries.select().where(deliveries.c.event_id.in_([e["event_id"] for e in event_rows]))
                )
            ]
            connection.execute(
                insert(action_journal),
                [
                    {
                        "delivery_id": d,
                        "action_key": f"k{d}:{role}",
                        "kind": role,
                        "status": "succeeded",
                        "crm_id": str(d),
                        "result": json.dumps({"detail": {"fields": ["a", "b"]}}),
                        "updated_at": received,
                    }
                    for d in ids
                    for role in ("contact", "activity", "contact-update")
                ],
            )
            connection.execute(
                insert(attempts),
                [{"delivery_id": d, "number": 1, "worker": "w", "started_at": received, "message": "ok"} for d in ids],
            )
            connection.execute(
                insert(field_state),
                [
                    {
                        "sink": "hubspot",
                        "contact_ref": f"contact:{d}",
                        "property": prop,
                        "value": value,
                        "rank": 1,
                        "call_time": received,
                        "event_id": "e",
                    }
                    for d in ids
                    for prop, value in (("twox_last_answer", '"8057"'), ("twox_do_not_call", "true"))
                ],
            )
            connection.execute(
                insert(contact_cache),
                [
                    {
                        "sink": "hubspot",
                        "contact_key": e["contact_key"],
                        "object": "contact",
                        "crm_id": "1",
                        "updated_at": received,
                    }
                    for e in event_rows
                ],
            )


class Webhooks(threading.Thread):
    """Commits a new webhook every 5 ms, as the receiver would, recording each commit's duration."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(daemon=True)
        self.ledger = ledger
        self.stop = threading.Event()
        self.latencies_ms: list[float] = []
        self._n = 0

    def run(self) -> None:
        while not self.stop.wait(0.005):
            self._n += 1
            document = sample_payload(
                f"new-{id(self)}-{self._n}", record_phone_number=f"+1415{5_000_000 + self._n:07d}"
            )
            event = parse_webhook(document)
            body = json.dumps(document).encode()
            started = time.perf_counter()
            self.ledger.record_event(
                event,
                body=body,
                content_type="application/json",
                content_hash=content_hash(document),
                sinks=["hubspot"],
            )
            self.latencies_ms.append((time.perf_counter() - started) * 1000)


def _percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    p50, p99 = percentile(values, 50), percentile(values, 99)
    return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(values):.1f} ms ({len(values)} commits)"


def run(kind: StoreKind, count: int, workdir: Path) -> None:
    store = Store(kind, workdir, "retention")
    if kind.is_pg:
        settings = StoreSettings(url=store.connector_url)
    else:
        settings = StoreSettings(url=f"sqlite:///{store.sqlite_path}", sqlite_synchronous="FULL")
    ledger = Ledger.open(settings)
    try:
        started = time.perf_counter()
        fill(ledger, count)
        print(f"\n{kind.label}: {count:,} settled calls stored 100 days back in {time.perf_counter() - started:.1f} s")
        baseline = Webhooks(ledger)
        baseline.start()
        time.sleep(3)
        baseline.stop.set()
        baseline.join()
        during = Webhooks(ledger)
        during.start()
        transactions: list[float] = []
        steps: list[float] = []
        retention = ledger.retention
        write_in_turn = retention._in_turn

        def timed(write: Any, *args: Any) -> int:  # each write transaction, its wait for the queue included
            started = time.perf_counter()
            try:
                return write_in_turn(write, *args)
            finally:
                transactions.append(time.perf_counter() - started)

        retention._in_turn = timed  # type: ignore[method-assign]
        total = PurgeCounts()
        before = cutoff(90)
        purge_started = time.perf_counter()
        more = True
        while more:  # the worker's steps, back to back (the worker waits PURGE_AGAIN_S between them)
            step_started = time.perf_counter()
            counts = retention.purge(before, max_batches=PURGE_BATCHES)
            steps.append(time.perf_counter() - step_started)
            for name in ("events", "quarantined", "cached_contacts", "answers"):
                setattr(total, name, getattr(total, name) + getattr(counts, name))
            more = counts.more_left
        purged = total.events
        elapsed = time.perf_counter() - purge_started
        during.stop.set()
        during.join()
        with ledger.engine.connect() as connection:
            unpurged = events.c.purged_at.is_(None)
            left = connection.execute(
                select(func.count()).where(unpurged, events.c.event_id.like("old-%"))
            ).scalar_one()
            touched = connection.execute(
                select(func.count()).where(~unpurged, events.c.event_id.like("new-%"))
            ).scalar()
        if touched:
            print(f"  ERROR: {touched} new calls were purged")
        print(
            f"  purged {purged:,} calls, {total.cached_contacts:,} cached look-ups, {total.answers:,} answers"
            f" in {elapsed:.1f} s ({purged / elapsed:,.0f} calls/s); {left} old calls left"
        )
        print(
            f"  {len(transactions):,} write transactions of up to {BATCH} rows: median"
            f" {statistics.median(transactions) * 1000:.1f} ms, max {max(transactions) * 1000:.1f} ms;"
            f" {len(steps)} worker steps (up to {PURGE_BATCHES} transactions): median"
            f" {statistics.median(steps) * 1000:.0f} ms, max {max(steps) * 1000:.0f} ms"
        )
        print(f"  webhook commits before the purge: {_percentiles(baseline.latencies_ms)}")
        print(f"  webhook commits during the purge: {_percentiles(during.latencies_ms)}")
    finally:
        ledger.dispose()
        store.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.stores.split(","):
            kind = StoreKind("full" if name == "sqlite" else name, args.pg_admin)
            problem = pg_reachable(args.pg_admin) if kind.is_pg else None
            if problem:
                print(f"PostgreSQL not reachable at {args.pg_admin} ({problem}): skipped", file=sys.stderr)
                continue
            run(kind, args.events, Path(workdir))
    print(f"\ncommand: python bench/retention.py --events {args.events} --stores {args.stores}")


if __name__ == "__main__":
    main()
