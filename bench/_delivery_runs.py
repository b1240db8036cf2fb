"""The two scenarios of bench/delivery.py: a throughput run, and do-not-call behind a backlog.

Each runs in its own folder with its own store (a fresh PostgreSQL database or SQLite file) and
its own CRM stand-in, and stops every process and drops its database however it ends.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import note
from _delivery_measure import RunFigures, dead_reasons, figures
from _delivery_post import DNC_PHONE, ORDINARY, event, post, post_all
from _delivery_procs import (
    WEBHOOK_PATH,
    Procs,
    free_port,
    http_json,
    migrate,
    pg_create,
    pg_drop,
    start_crm,
    start_receiver,
    start_workers,
    wait_http,
    write_config,
)

from connector.config import load_settings
from connector.ledger import Ledger
from connector.payload import parse_webhook
from connector.receiver.ingest import content_hash

WEBHOOK_TOKEN = "bench-webhook-" + os.urandom(8).hex()
CRM_TOKEN = "bench-crm-" + os.urandom(8).hex()
FIRST_ID = 100_000
BUSY_WRITES = 50
"""The DNC event is posted once the stand-in has seen this many writes of the backlog."""
UNFINISHED = ("pending", "leased", "retry_scheduled")


class Setup:
    """Store, stand-in and config of one scenario; `close()` drops the database."""

    def __init__(self, procs: Procs, name: str, backend: str, run_tag: str, rate: int, window_s: float) -> None:
        self.db = f"bench_delivery_{run_tag}_{name}" if backend == "postgresql" else None
        self._ledger: Ledger | None = None
        self.store_url = pg_create(self.db) if self.db else f"sqlite:///{procs.workdir / 'connector.db'}"
        try:
            self.crm_port = start_crm(procs, CRM_TOKEN, rate, window_s)
            self.port = free_port()
            self.config = write_config(
                procs.workdir / "connector.yaml",
                store_url=self.store_url,
                port=self.port,
                webhook_token=WEBHOOK_TOKEN,
                crm_port=self.crm_port,
                crm_token=CRM_TOKEN,
                rate=rate,
                window_s=window_s,
            )
            migrate(self.config, procs.workdir)
            self._ledger = Ledger.open(load_settings(self.config).store, migrate_schema=False)
        except BaseException:
            procs.stop_all()  # nothing may hold the database while it is dropped
            self.close()
            raise

    @property
    def ledger(self) -> Ledger:
        assert self._ledger is not None, "opened in __init__"
        return self._ledger

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.dispose()
        if self.db:
            pg_drop(self.db)


def scan_logs(procs: Procs, fig_problems: list[str]) -> None:
    """Record non-zero exits and any output of the connector processes (they log WARNING and up)."""
    for proc in procs.started:
        lines = [ln for ln in proc.output().splitlines() if ln.strip() and not ln.startswith("crm stand-in on")]
        if lines:
            fig_problems.append(f"{proc.name}: {len(lines)} log lines, first: " + " | ".join(lines[:3])[:600])


def exit_problems(procs: Procs, problems: list[str]) -> None:
    for name, code in procs.exit_codes.items():
        if code not in (0, None):
            problems.append(f"{name} exited with {code} after SIGTERM")


def run_throughput(fig: RunFigures, workdir: Path, run_tag: str, timeout_s: float) -> RunFigures:
    """Post fig.events webhooks as fast as the receiver takes them; measure until all are delivered."""
    deadline = time.monotonic() + timeout_s
    workdir.mkdir(parents=True, exist_ok=True)
    setup: Setup | None = None
    with Procs(workdir) as procs:
        try:
            setup = Setup(procs, fig.name, fig.backend, run_tag, fig.rate, fig.window_s)
            workers = start_workers(procs, setup.config, fig.workers)
            start_receiver(procs, setup.config, setup.port)
            documents = [event(FIRST_ID + i, i) for i in range(fig.events)]
            note(f"{fig.name}: posting {fig.events} events")
            posted = post_all(setup.port, WEBHOOK_PATH, WEBHOOK_TOKEN, documents, deadline=deadline)
            fig.posted, fig.post_s, fig.post_errors = len(posted.acks), posted.ended - posted.started, posted.errors
            note(f"{fig.name}: {fig.posted} acknowledged in {fig.post_s:.1f} s ({posted.statuses}); delivering")
            fig.timed_out = not wait_delivered(setup.ledger, setup.crm_port, fig, workers, deadline)
            cpu = [w.cpu_s() for w in workers]
            fig.worker_cpu_s = sum(c for c in cpu if c is not None)
            fig.loadavg = os.getloadavg()
            stats = http_json(setup.crm_port, "GET", "/_bench/stats")[1]
            figures(fig, stats, posted.acks, setup.ledger)
        finally:
            procs.stop_all()
            scan_logs(procs, fig.problems)
            exit_problems(procs, fig.problems)
            if setup is not None:
                setup.close()
    return fig


def wait_delivered(ledger: Ledger, crm_port: int, fig: RunFigures, workers: list[Any], deadline: float) -> bool:
    """Until no delivery is unfinished; False at the deadline. Notes workers that died meanwhile."""
    last_note = time.monotonic()
    while time.monotonic() < deadline:
        counts = {status: n for (_sink, status), n in ledger.deliveries.counts().items()}
        left = sum(counts.get(s, 0) for s in UNFINISHED)
        if left == 0:
            return True
        dead_workers = [w.name for w in workers if not w.alive()]
        if len(dead_workers) == len(workers):
            fig.problems.append(f"all workers exited with {left} deliveries unfinished: {dead_workers}")
            return False
        if time.monotonic() - last_note >= 10:
            seen = http_json(crm_port, "GET", "/_bench/count")[1]
            note(
                f"{fig.name}: {left} unfinished, {counts.get('succeeded', 0)} succeeded, "
                f"{seen['writes']} writes, {seen['rejected']} 429s"
            )
            last_note = time.monotonic()
        time.sleep(0.25)
    fig.problems.append(f"hard timeout: {ledger.deliveries.counts()} unfinished at the deadline")
    return False


def insert_backlog(ledger: Ledger, count: int, threads: int = 4) -> float:
    """`count` ordinary events straight into the ledger (as the receiver stores them); returns seconds."""
    started = time.monotonic()

    def insert(slot: int) -> None:
        for i in range(slot, count, threads):
            document = event(FIRST_ID + i, i, reasons=ORDINARY)
            ledger.record_event(
                parse_webhook(document),
                body=json.dumps(document).encode(),
                content_type="application/json",
                content_hash=content_hash(document),
                sinks=["crm"],
            )

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(insert, range(threads)))
    return time.monotonic() - started


def run_dnc(workdir: Path, run_tag: str, backlog: int, rate: int, window_s: float, timeout_s: float) -> dict[str, Any]:
    """1 worker on PostgreSQL behind `backlog` events: seconds from a DNC POST's 202 to its contact update."""
    deadline = time.monotonic() + timeout_s
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"backlog": backlog, "rate": rate, "window_s": window_s, "dnc_s": None, "problems": []}
    setup: Setup | None = None
    with Procs(workdir) as procs:
        try:
            setup = Setup(procs, "dnc", "postgresql", run_tag, rate, window_s)
            note(f"dnc: inserting a backlog of {backlog} events")
            result["insert_s"] = insert_backlog(setup.ledger, backlog)
            receiver = start_receiver(procs, setup.config, setup.port, ready_path="/healthz")
            start_workers(procs, setup.config, 1)
            wait_http(receiver, setup.port, "/readyz", timeout_s=30)
            while http_json(setup.crm_port, "GET", "/_bench/count")[1]["writes"] < BUSY_WRITES:
                if time.monotonic() > deadline:
                    raise TimeoutError("the worker never got busy")
                time.sleep(0.05)
            dnc_id = FIRST_ID + backlog + 1
            status, body, acked = post(
                setup.port,
                WEBHOOK_PATH,
                WEBHOOK_TOKEN,
                event(dnc_id, 0, reasons=["do_not_call"]) | {"record_phone_number": DNC_PHONE},
            )
            result["dnc_post_status"] = status
            if status != "202":
                raise RuntimeError(f"the do-not-call POST was answered {status}: {body[:300]}")
            key = f"2x-{dnc_id}:contact-update"
            while (answer := http_json(setup.crm_port, "GET", f"/_bench/key/{key}"))[0] != 200:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{key} never reached the stand-in")
                time.sleep(0.02)
            result["dnc_s"] = answer[1]["at"] - acked
            counts = {s: n for (_sink, s), n in setup.ledger.deliveries.counts().items()}
            result["backlog_left"] = sum(counts.get(s, 0) for s in UNFINISHED)
            result["delivered_before"] = counts.get("succeeded", 0)
            result["dead"] = counts.get("dead", 0)
            if result["dead"]:
                result["problems"].extend(dead_reasons(setup.ledger))
            result["rejected_429"] = http_json(setup.crm_port, "GET", "/_bench/count")[1]["rejected"]
        except (RuntimeError, TimeoutError) as exc:
            result["problems"].append(f"{exc.__class__.__name__}: {exc}")
        finally:
            procs.stop_all()
            scan_logs(procs, result["problems"])
            exit_problems(procs, result["problems"])
            if setup is not None:
                setup.close()
    return result
