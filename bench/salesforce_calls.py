"""Salesforce API calls per event, measured on the Salesforce emulator through the real delivery engine.

Why: a Salesforce org has no per-second limit but a rolling 24-hour API allocation (100,000 + 1,000 per user
license on Enterprise), shared with every other integration of the org; calls per event turns it into calls per
day. Everything is real except Salesforce itself: `connector.engine.worker.Worker` on a temporary SQLite ledger, the
registered `salesforce` sink (simple-salesforce), the packaged default mapping; the emulator counts each request
as Salesforce does (a Composite or sObject Collections request is ONE call, whatever it contains).

    python bench/salesforce_calls.py [--events 30] [--backlog 200] [--batch-size 200] [--json [FILE]]

A benchmark script that prints figures, not a test; exit status 1 when a delivery did not succeed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import machine, note  # noqa: E402
from simple_salesforce import Salesforce

from connector.config import Settings, parse_settings
from connector.emulators.salesforce.server import SalesforceEmulator
from connector.engine.worker import Worker
from connector.ledger import Ledger
from connector.payload import parse_webhook
from connector.receiver.ingest import content_hash
from connector.sample import SAMPLE_PHONE, sample_payload

SINK = "salesforce"
ORDINARY = ["no_answer", "hung_up", "call_transferred", "not_interested", "voicemail_detected", "end_call"]
STEADY_GOAL, BACKLOG_GOAL = 1.0, 0.1
_ID = re.compile(r"/[A-Za-z0-9]{15,18}(?=/|$)")


@dataclass
class Figure:
    """One measured scenario."""

    name: str
    events: int
    calls: int = 0
    seconds: float = 0.0
    failed: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    goal: float | None = None

    @property
    def per_event(self) -> float:
        return self.calls / self.events if self.events else 0.0


def number(block: int, index: int) -> str:
    """+1 312 5BB-NNNN: fictional, possible, and none of the emulator's seeded records uses it."""
    return f"+1312{500 + block:03d}{index:04d}"


class Bench:
    """One emulated org, one SQLite ledger and one worker; events are ingested, then drained."""

    def __init__(self, workdir: Path, batch_size: int) -> None:
        self.emulator = SalesforceEmulator()
        self.emulator.start()
        self.settings = settings(workdir, self.emulator, batch_size)
        self.ledger = Ledger.open(self.settings.store)
        self.worker = Worker(self.settings, ledger=self.ledger)
        self.worker.open()
        self.next_id = 1

    def close(self) -> None:
        self.worker.close()
        self.ledger.dispose()
        self.emulator.stop()

    def seed_contacts(self, numbers: list[str]) -> None:
        """Contacts whose phones a human typed ``(312) 5BB-NNNN``, created 200 per collection request."""
        sf = Salesforce(
            instance_url=self.emulator.instance_url,
            session_id=self.emulator.session_id,
            session=self.emulator.client_session(),
            version="62.0",
        )
        records = [
            {"attributes": {"type": "Contact"}, "LastName": f"Bench {n[-4:]}", "Phone": f"({n[2:5]}) {n[5:8]}-{n[8:]}"}
            for n in numbers
        ]
        for start in range(0, len(records), 200):
            sf.restful("composite/sobjects", method="POST", json={"records": records[start : start + 200]})

    def ingest(self, phone: str, end_reason: str) -> str:
        document = sample_payload(self.next_id, end_reason=end_reason, record_phone_number=phone)
        self.next_id += 1
        event = parse_webhook(document)
        self.ledger.record_event(
            event,
            body=json.dumps(document).encode(),
            content_type="application/json",
            content_hash=content_hash(document),
            sinks=[SINK],
        )
        return event.id

    def drain(self, idle_rounds: int = 3) -> None:
        idle = 0
        while idle < idle_rounds:
            done = self.worker.run_once()
            idle = idle + 1 if done == 0 else 0
            if done == 0:
                time.sleep(0.05)

    def measure(
        self, name: str, events: list[tuple[str, str]], *, backlog: bool = False, goal: float | None = None
    ) -> Figure:
        """Deliver ``events`` (phone, end_reason) and count the org's API calls: one at a time (ingest, deliver,
        next), or all ingested first as a ``backlog`` the worker claims ``batch_size`` at a time."""
        calls, since = self.emulator.api_calls(), len(self.emulator.request_log)
        if backlog:
            ids = [self.ingest(phone, reason) for phone, reason in events]
            started = time.monotonic()
            self.drain()
        else:
            ids, started = [], time.monotonic()
            for phone, reason in events:
                ids.append(self.ingest(phone, reason))
                self.drain(idle_rounds=1)
        figure = Figure(name, len(ids), seconds=time.monotonic() - started, goal=goal)
        figure.calls = self.emulator.api_calls() - calls
        figure.kinds.update(kind(r) for r in self.emulator.request_log[since:] if r.get("counted", True))
        figure.failed = sum(1 for i in ids for d in self.ledger.deliveries_for(i) if d["status"] != "succeeded")
        note(f"{name}: {figure.calls} API calls for {figure.events} events in {figure.seconds:.1f} s")
        return figure


def kind(request: dict[str, Any]) -> str:
    """``POST composite (3 subrequests)``, ``PATCH composite/sobjects (200 records)``, ``GET search``…"""
    path = _ID.sub("/{id}", re.sub(r"^/services/data/v[\d.]+/", "", request["path"]).rstrip("/"))
    body = request.get("body") if isinstance(request.get("body"), dict) else {}
    if path == "composite":
        return f"{request['method']} composite ({len(body.get('compositeRequest') or [])} subrequests)"
    if path == "composite/sobjects":
        return f"{request['method']} composite/sobjects ({len(body.get('records') or [])} records)"
    return f"{request['method']} {path}"


def settings(workdir: Path, emulator: SalesforceEmulator, batch_size: int) -> Settings:
    return parse_settings(
        {
            "receiver": {"auth": {"tokens": ["b" * 32]}},
            "store": {"url": f"sqlite:///{workdir / 'ledger.db'}"},
            "sinks": {
                SINK: {
                    "type": "salesforce",
                    "instance_url": emulator.instance_url,
                    "ca_bundle": emulator.ca_file,
                    "auth": {"session_id": emulator.session_id},
                }
            },
            "worker": {"poll_interval_s": 0.05, "lease_s": 60, "batch_size": batch_size},
        },
        source="<bench>",
        base_dir=workdir,
        environ={},
    )


def run(args: argparse.Namespace) -> list[Figure]:
    n, size = args.events, args.backlog
    with tempfile.TemporaryDirectory(prefix="bench-salesforce-") as tmp:
        bench = Bench(Path(tmp), args.batch_size)
        try:
            bench.seed_contacts([number(1, i) for i in range(n)] + [number(2, i) for i in range(size)])
            return [
                bench.measure(
                    "first event of the sink's life (known contact; one-off describes)", [(SAMPLE_PHONE, "no_answer")]
                ),
                bench.measure(
                    "known contact, steady state (cache warm)",
                    [(SAMPLE_PHONE, ORDINARY[i % len(ORDINARY)]) for i in range(n)],
                    goal=STEADY_GOAL,
                ),
                bench.measure(
                    "callback, known contact (cache warm)",
                    [(SAMPLE_PHONE, "schedule_call_back") for _ in range(n)],
                    goal=STEADY_GOAL,
                ),
                bench.measure(
                    "first sight of a known number (SOSL)",
                    [(number(1, i), ORDINARY[i % len(ORDINARY)]) for i in range(n)],
                ),
                bench.measure(
                    "new number (SOSL + Lead created)", [(number(3, i), ORDINARY[i % len(ORDINARY)]) for i in range(n)]
                ),
                bench.measure(
                    f"backlog of {size}: known numbers, first sight (SOSL each)",
                    [(number(2, i), ORDINARY[i % len(ORDINARY)]) for i in range(size)],
                    backlog=True,
                ),
                bench.measure(
                    f"backlog of {size}: the same contacts again (cache warm; every 10th a callback)",
                    [
                        (number(2, i), "schedule_call_back" if i % 10 == 9 else ORDINARY[i % len(ORDINARY)])
                        for i in range(size)
                    ],
                    backlog=True,
                    goal=BACKLOG_GOAL,
                ),
                bench.measure(
                    f"backlog of {size}: new numbers (SOSL + Lead each)",
                    [(number(4, i), ORDINARY[i % len(ORDINARY)]) for i in range(size)],
                    backlog=True,
                ),
            ]
        finally:
            bench.close()


def render(figures: list[Figure], info: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "# Salesforce API calls per event (emulator, real engine and simple-salesforce)",
        "",
        f"- date: {info['date_utc']}",
        f"- machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}",
        f"- command: `{info['command']}`",
        (
            f"- setup: 1 worker (`batch_size` {args.batch_size}), SQLite ledger, sink `salesforce`, default "
            "mapping, emulator with the connector's custom fields; a Composite or sObject Collections request "
            "counts as one API call"
        ),
        "",
        "| scenario | events | API calls | calls/event | goal | failed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        goal = "" if f.goal is None else f"≤ {f.goal:g} {'✓' if f.per_event <= f.goal else '✗'}"
        lines.append(f"| {f.name} | {f.events} | {f.calls} | {f.per_event:.3f} | {goal} | {f.failed} |")
    lines += ["", "Request mix per scenario:"]
    lines += [f"- {f.name}: " + ", ".join(f"{k} ×{c}" for k, c in sorted(f.kinds.items())) for f in figures]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=30, help="events per one-at-a-time scenario")
    parser.add_argument("--backlog", type=int, default=200, help="events in each backlog scenario")
    parser.add_argument("--batch-size", type=int, default=200, help="worker.batch_size (deliveries per claim)")
    parser.add_argument("--json", nargs="?", const="-", default=None, help="also write JSON (to FILE or stdout)")
    args = parser.parse_args(argv)
    info = machine()
    figures = run(args)
    print(render(figures, info, args))
    if args.json:
        text = json.dumps(
            {
                "machine": info,
                "scenarios": [
                    {
                        "name": f.name,
                        "events": f.events,
                        "api_calls": f.calls,
                        "per_event": round(f.per_event, 4),
                        "seconds": round(f.seconds, 2),
                        "failed": f.failed,
                        "requests_by_kind": dict(f.kinds),
                    }
                    for f in figures
                ],
            },
            indent=2,
        )
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 1 if any(f.failed for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
