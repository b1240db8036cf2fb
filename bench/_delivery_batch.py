"""Batched delivery scenarios of bench/delivery.py, through the real HubSpot sink (hubspot-api-client) and the
HubSpot emulator (connector/emulators/hubspot/server.py, in this process on loopback, with HubSpot's 10-second burst
limit and 429 answers) — the code path a HubSpot backlog takes in production: batch create of Calls, batch update
of contacts, 100 records per request.

* backlog: a backlog of known contacts (in the emulator and in the contact cache, as after their first calls) is
  inserted into the ledger, not yet due; N `connector worker` processes start, and once all of them poll the queue
  the whole backlog becomes due at once (one UPDATE) and they drain it. Events/s is the ledger's own span (first
  attempt started → last delivery finished); store commits are counted inside each worker process (an SQLAlchemy
  `commit` listener, bench/_counting_worker.py) from its start to the end of the drain, rate gate included.
* at HubSpot's limit: the same, with the emulator enforcing 190 requests / 10 s; the drain rate is compared with
  the batched ceiling, (190 / 10 s) × 100 events ÷ 2 requests (a Calls batch and a contacts batch per 100 events).
* do-not-call behind a backlog: a DNC webhook POSTed to `connector serve` while one worker drains the backlog at
  HubSpot's limit; seconds from its 202 to its delivery's success in the ledger. Before the backlog, three lone
  calls are timed the same way (the worker polls every 0.5 s by default and never waits to fill a batch).
* recovery: `connector serve` (embedded worker) and one `connector worker` drain a backlog at HubSpot's limit;
  `kill -9` of serve's process group; seconds until the first delivery the killed worker held succeeds.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from _common import database_cpu_s, note
from _delivery_post import phone, post
from _delivery_procs import BENCH_DIR, HOST, WEBHOOK_PATH, Procs, free_port, migrate, pg_create, pg_drop, wait_http
from sqlalchemy import text

from connector.emulators.hubspot.schema import OBJECT_TYPES
from connector.emulators.hubspot.server import HubSpotEmulator
from connector.ledger import Ledger
from connector.ledger.schema import contact_cache, deliveries, events
from connector.ledger.store import DEFAULT_PRIORITY, _new_delivery, _new_event
from connector.payload import parse_webhook
from connector.receiver.ingest import content_hash
from connector.sample import sample_payload

HS_TOKEN = "bench-hubspot-" + os.urandom(8).hex()
WEBHOOK_TOKEN = "bench-webhook-" + os.urandom(8).hex()
REASONS = ["hung_up", "no_answer", "call_transferred"]
"""Outcomes that log a Call and update the contact: two batched requests per 100 events (no task, no DNC)."""
POOL = 1000
FIRST_ID = 500_000
BATCH_SIZE = 100
"""worker.batch_size: a claim fills one HubSpot batch (its max_batch)."""
UNLIMITED = 1_000_000
"""The sink's rate_limit when the run has none: the gate still takes a token per request, as in production."""
DNC_PHONE = "+12025559876"
SINK = "hs"
BACKLOG_HELD_S = 3600.0
"""The backlog is inserted this far in the future, then made due at once when every worker is up: the figures are
the drain's, not the workers' start-up (about 0.6 CPU-s each, which 3 workers starting on the backlog took from
the same two cores)."""
POLL_S = 0.25
"""How often the bench counts what is left while workers drain. The figures come from the ledger's timestamps, not
from this loop; each count is a GROUP BY over the deliveries, so polling every 50 ms cost the database about as much
CPU as 600 events (pg_stat_statements: 148 counts, 534 ms) on the same two cores as the workers."""


@dataclass
class BacklogFigures:
    name: str
    backend: str
    workers: int
    events: int
    rate: int | None
    window_s: float
    succeeded: int = 0
    drain_s: float | None = None
    events_per_s: float | None = None
    commits: int | None = None
    commits_per_event: float | None = None
    requests: int = 0
    answered_429: int = 0
    rate_limited_attempts: int = 0
    duplicates: int = 0
    lost: int = 0
    ceiling: float | None = None
    ceiling_share: float | None = None
    insert_s: float = 0.0
    worker_cpu_s: float | None = None
    """CPU seconds the workers used from the backlog's release to drain end: events per CPU-second is what the
    host's load does not change much."""
    database_cpu_s: float | None = None
    """CPU seconds PostgreSQL's backends for the run's database used over the same span (read from /proc: the
    server runs on this host in the bench); None on SQLite, or when they cannot be read."""
    emulator_cpu_s: float | None = None
    """CPU seconds of this process (the CRM emulator answering, and this loop) over the same span."""
    loadavg: tuple[float, float, float] | None = None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class HubSpotRun:
    """Emulator, store, config and seeded contacts of one scenario; `close()` stops and drops everything."""

    def __init__(
        self,
        procs: Procs,
        name: str,
        backend: str,
        run_tag: str,
        rate: int | None,
        window_s: float,
        *,
        embedded: bool = False,
    ) -> None:
        self.procs = procs
        self.db = f"bench_batch_{run_tag}_{name}" if backend == "postgresql" else None
        self.emulator = HubSpotEmulator(
            tokens=[HS_TOKEN],
            rate_limit=rate,
            rate_window_s=window_s,
            search_rate_per_s=None,
            seed_contacts=False,
            seed_custom_properties=True,
        )
        self._ledger: Ledger | None = None
        try:
            self.emulator.start()
            self.store_url = pg_create(self.db) if self.db else f"sqlite:///{procs.workdir / 'connector.db'}"
            self.port = free_port()
            self.config = procs.workdir / "connector.yaml"
            self.config.write_text(
                yaml.safe_dump(
                    {
                        "receiver": {
                            "host": HOST,
                            "port": self.port,
                            "path": WEBHOOK_PATH,
                            "auth": {"header": "Authorization", "tokens": [WEBHOOK_TOKEN]},
                        },
                        "store": {"url": self.store_url},
                        "worker": {"embedded": embedded, "batch_size": BATCH_SIZE},
                        "logging": {"level": "WARNING"},
                        "sinks": {
                            SINK: {
                                "type": "hubspot",
                                "access_token": HS_TOKEN,
                                "base_url": self.emulator.url,
                                "auto_create_question_properties": True,
                                "rate_limit": {"requests": rate or UNLIMITED, "window_s": window_s if rate else 1},
                            }
                        },
                    },
                    sort_keys=False,
                )
            )
            migrate(self.config, procs.workdir)
            from connector.config import load_settings

            self._ledger = Ledger.open(load_settings(self.config).store, migrate_schema=False)
            self._seed_contacts()
        except BaseException:
            procs.stop_all()
            self.close()
            raise

    @property
    def ledger(self) -> Ledger:
        assert self._ledger is not None
        return self._ledger

    def _seed_contacts(self) -> None:
        """POOL contacts in the portal, and in the contact cache as their first calls would have left them; the
        sample's question property exists (as after the first event that answered it)."""
        import hubspot
        from hubspot.crm.properties import PropertyCreate

        client = hubspot.Client.create(access_token=HS_TOKEN, host=self.emulator.url)
        client.crm.properties.core_api.create(
            "contacts",
            PropertyCreate(
                name="twox_q_case_number", label="2X: case number", type="string", field_type="text", group_name="twox"
            ),
        )
        store = self.emulator._store
        created = datetime(2024, 1, 1, tzinfo=UTC)
        rows = []
        with store.lock:
            for i in range(POOL):
                record = store.seed(OBJECT_TYPES["contacts"], {"phone": phone(i), "firstname": f"Lead {i}"}, created)
                rows.append(
                    {
                        "sink": SINK,
                        "contact_key": phone(i),
                        "object": "contacts",
                        "crm_id": str(record.id),
                        "updated_at": datetime.now(UTC),
                    }
                )
        with self.ledger.engine.begin() as connection:
            connection.execute(contact_cache.insert(), rows)

    def insert_backlog(self, count: int, first_id: int = FIRST_ID, *, due_in_s: float = 0.0) -> float:
        """`count` events and their deliveries, as the receiver stores them, 1,000 per transaction; returns s.
        With `due_in_s`, the deliveries only become due that much later (or at `release_backlog()`)."""
        started = time.monotonic()
        for start in range(0, count, 1000):
            event_rows, delivery_rows = [], []
            now = datetime.now(UTC)
            for i in range(start, min(count, start + 1000)):
                document = sample_payload(
                    first_id + i, end_reason=REASONS[i % len(REASONS)], record_phone_number=phone(i)
                )
                event = parse_webhook(document)
                body = json.dumps(document).encode()
                event_rows.append(_new_event(event, body, content_hash(document), "application/json", now))
                delivery = _new_delivery(event.id, SINK, DEFAULT_PRIORITY, now, event.contact_key)
                delivery["due_at"] = now + timedelta(seconds=due_in_s)
                delivery_rows.append(delivery)
            with self.ledger.engine.begin() as connection:
                connection.execute(events.insert(), event_rows)
                connection.execute(deliveries.insert(), delivery_rows)
        return time.monotonic() - started

    def release_backlog(self) -> None:
        """Make every pending delivery due now (one UPDATE): the backlog arrives at once for workers already up."""
        with self.ledger.engine.begin() as connection:
            connection.execute(
                deliveries.update().where(deliveries.c.status == "pending").values(due_at=datetime.now(UTC))
            )

    def wait_for_workers(self, workers: list[Any], timeout_s: float = 60.0) -> None:
        """Until every worker process has registered (its heartbeat row) and polled the empty queue once."""
        deadline = time.monotonic() + timeout_s
        pids = {w.proc.pid for w in workers}
        while {w["pid"] for w in self.ledger.sinks.live_workers(within_s=30)} < pids:
            if time.monotonic() > deadline or not all(w.alive() for w in workers):
                raise RuntimeError("the workers did not all start")
            time.sleep(0.1)
        time.sleep(1.0)  # one poll interval (0.5 s) and more: their first claim found nothing due

    def start_workers(self, count: int) -> list[Any]:
        return [
            self.procs.start(
                f"worker{i}",
                [
                    sys.executable,
                    str(BENCH_DIR / "_counting_worker.py"),
                    str(self.procs.workdir / f"commits{i}.txt"),
                    "worker",
                    "--config",
                    str(self.config),
                ],
            )
            for i in range(count)
        ]

    def commits(self, count: int) -> int | None:
        try:
            return sum(int((self.procs.workdir / f"commits{i}.txt").read_text()) for i in range(count))
        except (OSError, ValueError):
            return None

    def unfinished(self) -> int:
        counts = self.ledger.deliveries.counts()
        return sum(n for (_s, status), n in counts.items() if status in ("pending", "leased", "retry_scheduled"))

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.dispose()
        self.emulator.stop()
        if self.db:
            pg_drop(self.db)


def run_backlog(fig: BacklogFigures, workdir: Path, run_tag: str, timeout_s: float) -> BacklogFigures:
    """Drain fig.events of known contacts with fig.workers workers; fill in the figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    with Procs(workdir) as procs:
        run: HubSpotRun | None = None
        try:
            run = HubSpotRun(procs, fig.name, fig.backend, run_tag, fig.rate, fig.window_s)
            note(f"{fig.name}: inserting a backlog of {fig.events} events")
            fig.insert_s = run.insert_backlog(fig.events, due_in_s=BACKLOG_HELD_S)
            workers = run.start_workers(fig.workers)
            run.wait_for_workers(workers)  # running workers meet the backlog, as in production
            run.emulator.reset_counters()
            workers_before = sum(w.cpu_s() or 0.0 for w in workers)
            database_before, own_before = database_cpu_s(run.db), own_cpu_s()
            run.release_backlog()
            deadline, last_note = time.monotonic() + timeout_s, time.monotonic()
            while (left := run.unfinished()) and time.monotonic() < deadline:
                if not any(w.alive() for w in workers):
                    fig.problems.append(f"every worker exited with {left} deliveries unfinished")
                    break
                if time.monotonic() - last_note >= 10:
                    note(f"{fig.name}: {left} unfinished")
                    last_note = time.monotonic()
                time.sleep(POLL_S)
            fig.commits = run.commits(fig.workers)
            cpu = [w.cpu_s() for w in workers]
            fig.worker_cpu_s = sum(c for c in cpu if c is not None) - workers_before
            database_after = database_cpu_s(run.db)
            if database_before is not None and database_after is not None:
                fig.database_cpu_s = database_after - database_before
            fig.emulator_cpu_s = own_cpu_s() - own_before
            fig.loadavg = os.getloadavg()
            if left:
                fig.problems.append(f"{left} deliveries unfinished at the deadline")
        finally:
            procs.stop_all()
            if run is not None:
                try:
                    backlog_figures(fig, run)
                finally:
                    run.close()
    return fig


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def backlog_figures(fig: BacklogFigures, run: HubSpotRun) -> None:
    with run.ledger.engine.connect() as connection:
        fig.succeeded = int(
            connection.execute(text("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")).scalar_one()
        )
        first = connection.execute(text("SELECT min(started_at) FROM attempts")).scalar_one()
        last = connection.execute(text("SELECT max(finished_at) FROM deliveries")).scalar_one()
        fig.rate_limited_attempts = int(
            connection.execute(text("SELECT count(*) FROM attempts WHERE outcome = 'rate_limited'")).scalar_one()
        )
        for row in connection.execute(
            text("SELECT status, count(*) FROM deliveries WHERE status <> 'succeeded' GROUP BY status")
        ):
            fig.problems.append(f"{row[1]} deliveries {row[0]}")
    if first is not None and last is not None:
        fig.drain_s = (_aware(last) - _aware(first)).total_seconds()
        fig.events_per_s = fig.succeeded / max(fig.drain_s, 1e-9)
    if fig.commits is not None:
        fig.commits_per_event = fig.commits / max(fig.events, 1)
    log = run.emulator.request_log
    fig.requests = sum(1 for r in log if r.status != 429)
    fig.answered_429 = sum(1 for r in log if r.status == 429)
    calls = Counter(str(c["properties"].get("hs_call_external_id")) for c in run.emulator.objects("calls"))
    fig.duplicates = sum(1 for n in calls.values() if n > 1)
    fig.lost = sum(1 for i in range(fig.events) if calls.get(f"2x-{FIRST_ID + i}", 0) == 0)
    if fig.rate and fig.events_per_s:
        fig.ceiling = fig.rate / fig.window_s * BATCH_SIZE / 2
        fig.ceiling_share = fig.events_per_s / fig.ceiling


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run_dnc(workdir: Path, run_tag: str, backlog: int, rate: int, window_s: float, timeout_s: float) -> dict[str, Any]:
    """1 worker on PostgreSQL drains `backlog` events at the limit; a DNC webhook is POSTed meanwhile."""
    from _delivery_procs import start_receiver

    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"backlog": backlog, "rate": rate, "window_s": window_s, "dnc_s": None, "problems": []}
    with Procs(workdir) as procs:
        run: HubSpotRun | None = None
        try:
            run = HubSpotRun(procs, "dnc", "postgresql", run_tag, rate, window_s)
            start_receiver(procs, run.config, run.port, ready_path="/healthz")
            run.start_workers(1)
            deadline = time.monotonic() + timeout_s
            result["lone_s"] = [
                _delivered_after_post(run, FIRST_ID - 10 + n, phone(n), "hung_up", deadline) for n in range(3)
            ]  # an idle worker: never waits to fill a batch
            result["insert_s"] = run.insert_backlog(backlog)
            while run.unfinished() > backlog - 2 * BATCH_SIZE:  # the worker is busy with the backlog
                if time.monotonic() > deadline:
                    raise TimeoutError("the worker never got busy")
                time.sleep(0.05)
            result["dnc_s"] = _delivered_after_post(run, FIRST_ID + backlog + 1, DNC_PHONE, "do_not_call", deadline)
            counts = {s: n for (_sink, s), n in run.ledger.deliveries.counts().items()}
            result["backlog_left"] = run.unfinished()
            result["delivered_before"] = counts.get("succeeded", 0) - 1
            result["answered_429"] = sum(1 for r in run.emulator.request_log if r.status == 429)
        except (RuntimeError, TimeoutError) as exc:
            result["problems"].append(f"{exc.__class__.__name__}: {exc}")
        finally:
            procs.stop_all()
            if run is not None:
                run.close()
    return result


def _delivered_after_post(run: HubSpotRun, event_id: int, number: str, reason: str, deadline: float) -> float:
    """POST one webhook to `connector serve`; seconds from its 202 to its delivery's success in the ledger."""
    document = sample_payload(event_id, end_reason=reason, record_phone_number=number)
    status, body, acked = post(run.port, WEBHOOK_PATH, WEBHOOK_TOKEN, document)
    if status != "202":
        raise RuntimeError(f"the {reason} POST was answered {status}: {body[:300]}")
    while True:
        [delivery] = run.ledger.deliveries_for(str(event_id))
        if delivery["status"] == "succeeded":
            return float(delivery["finished_at"].timestamp() - acked)
        if delivery["status"] in ("dead", "held") or time.monotonic() > deadline:
            raise RuntimeError(f"the {reason} delivery is {delivery['status']}: {delivery['last_error']}")
        time.sleep(0.01)


def run_recovery(
    workdir: Path, run_tag: str, backlog: int, rate: int, window_s: float, timeout_s: float
) -> dict[str, Any]:
    """Seconds from `kill -9` of `connector serve` (and its embedded worker) to the first delivery of a claim the
    killed worker held, done by the surviving `connector worker`."""
    from _delivery_procs import connector_argv

    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"backlog": backlog, "recovery_s": None, "problems": []}
    with Procs(workdir) as procs:
        run: HubSpotRun | None = None
        try:
            run = HubSpotRun(procs, "recovery", "postgresql", run_tag, rate, window_s, embedded=True)
            result["insert_s"] = run.insert_backlog(backlog)
            [survivor] = run.start_workers(1)
            serve = procs.start("serve", connector_argv("serve", "--config", str(run.config)))
            wait_http(serve, run.port, "/healthz", timeout_s=60)
            deadline = time.monotonic() + timeout_s
            held: list[int] = []
            while not held:
                if time.monotonic() > deadline:
                    raise TimeoutError("the embedded worker never held a claim")
                live = run.ledger.sinks.live_workers(within_s=10)
                embedded = [w["worker_id"] for w in live if w["pid"] != survivor.proc.pid]
                if embedded:
                    with run.ledger.engine.connect() as connection:
                        held = [
                            int(r[0])
                            for r in connection.execute(
                                text("SELECT id FROM deliveries WHERE status = 'leased' AND lease_owner = :w"),
                                {"w": embedded[0]},
                            )
                        ]
                if not held:
                    time.sleep(0.02)
            os.killpg(serve.proc.pid, signal.SIGKILL)
            killed = time.time()
            serve.proc.wait(10)
            result["held"] = len(held)
            while True:
                with run.ledger.engine.connect() as connection:
                    first = connection.execute(
                        text("SELECT min(finished_at) FROM deliveries WHERE status = 'succeeded' AND id = ANY(:ids)"),
                        {"ids": held},
                    ).scalar_one()
                if first is not None:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("no claim of the killed worker was delivered")
                time.sleep(0.05)
            result["recovery_s"] = _aware(first).timestamp() - killed
        except (RuntimeError, TimeoutError) as exc:
            result["problems"].append(f"{exc.__class__.__name__}: {exc}")
        finally:
            procs.stop_all()
            if run is not None:
                run.close()
    return result


def backlog_table(figs: list[BacklogFigures]) -> str:
    head = [
        "run",
        "backend",
        "workers",
        "events",
        "limit",
        "drained",
        "events/s",
        "commits/event",
        "requests",
        "429s",
        "rate-limited attempts",
        "dup",
        "lost",
        "of ceiling",
    ]
    rows = [head] + [
        [
            f.name,
            f.backend,
            str(f.workers),
            str(f.events),
            f"{f.rate}/{f.window_s:g}s" if f.rate else "none",
            str(f.succeeded),
            _fmt(f.events_per_s, ".0f"),
            _fmt(f.commits_per_event, ".3f"),
            str(f.requests),
            str(f.answered_429),
            str(f.rate_limited_attempts),
            str(f.duplicates),
            str(f.lost),
            "-" if f.ceiling_share is None else f"{100 * f.ceiling_share:.0f}% of {f.ceiling:.0f}/s",
        ]
        for f in figs
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for f in figs:
        per_cpu = f.succeeded / f.worker_cpu_s if f.worker_cpu_s else None
        lines.append(
            f"  {f.name}: backlog inserted in {f.insert_s:.1f} s; drain {_fmt(f.drain_s, '.1f')} s; workers "
            f"used {_fmt(f.worker_cpu_s, '.1f')} CPU-s ({_fmt(per_cpu, '.0f')} events per CPU-second); "
            f"{f.commits} store commits by the workers (start to drain end, rate gate included); host load "
            f"average {_fmt(f.loadavg[0] if f.loadavg else None, '.1f')}"
        )
        if f.worker_cpu_s and f.succeeded:
            per_event = [("workers", f.worker_cpu_s), ("PostgreSQL", f.database_cpu_s), ("emulator", f.emulator_cpu_s)]
            lines.append(
                "    CPU per event (ms): "
                + ", ".join(f"{who} {1000 * cpu / f.succeeded:.2f}" for who, cpu in per_event if cpu is not None)
                + " (what the two cores share: the drain rate follows their sum when the host is saturated)"
            )
        lines += [f"    PROBLEM: {p}" for p in f.problems]
    return "\n".join(lines)


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)
