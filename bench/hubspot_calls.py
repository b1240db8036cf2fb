"""HubSpot API calls per event, measured on the HubSpot emulator through the real delivery engine.

Why: HubSpot's private-app budget (190 requests / 10 s on Professional/Enterprise) caps how many calls a portal
can take in; calls per event is the number that turns that budget into events per second. Everything is real
except HubSpot itself: `connector.engine.worker.Worker` on a temporary SQLite ledger, the registered `hubspot` sink
(hubspot-api-client v12), the packaged default mapping; the emulator counts every request it answers.

    python bench/hubspot_calls.py [--events 30] [--backlog 300] [--numbers 60] [--json [FILE]]

Before measuring, `crm-setup` (connector.ops.crm_setup.run_hubspot_setup) creates the question property the sample
answers (`twox_q_case_number`), so no figure includes the one-off property creation. A benchmark script that
prints figures, not a test; exit status 1 when a delivery did not succeed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import machine, note  # noqa: E402

from connector.config import HubSpotSinkSettings, Settings, parse_settings
from connector.emulators.hubspot.server import HubSpotEmulator
from connector.engine.worker import Worker
from connector.ledger import Ledger
from connector.mapping.sinks import load_sink_mappings
from connector.ops.crm_setup import run_hubspot_setup
from connector.payload import parse_webhook
from connector.receiver.ingest import content_hash
from connector.sample import SAMPLE_PHONE, sample_payload

TOKEN = "bench-hubspot-" + os.urandom(6).hex()
SINK = "hubspot"
LIMIT, WINDOW_S = 190, 10.0
ORDINARY = ["no_answer", "hung_up", "call_transferred", "not_interested", "voicemail_detected", "end_call"]
AREAS = ["617", "503", "702", "808", "907"]
"""Area codes none of the emulator's seeded contacts use: each number below is new to the portal."""
BATCH_GOAL = 0.2
_ID = re.compile(r"/\d+")


@dataclass
class Figure:
    """One measured scenario."""

    name: str
    events: int
    requests: int = 0
    seconds: float = 0.0
    throttled: int = 0
    failed: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    @property
    def per_event(self) -> float:
        return self.requests / self.events if self.events else 0.0


def new_number(index: int) -> str:
    """+1 AAA 555-01NN: fictional, possible, and unknown to the emulated portal."""
    return f"+1{AREAS[index // 100 % len(AREAS)]}55501{index % 100:02d}"


class Bench:
    """One emulated portal, one SQLite ledger and one worker; events are ingested, then drained."""

    def __init__(self, workdir: Path, *, rate_limit: int | None) -> None:
        self.emulator = HubSpotEmulator(
            tokens=[TOKEN], rate_limit=rate_limit, rate_window_s=WINDOW_S, seed_custom_properties=True
        )
        self.emulator.start()
        self.settings = settings(workdir, self.emulator.url)
        self.ledger = Ledger.open(self.settings.store)
        mapping = load_sink_mappings(self.settings)[SINK]
        sink_settings = self.settings.sinks[SINK]
        assert isinstance(sink_settings, HubSpotSinkSettings)
        report = run_hubspot_setup(sink_settings, mapping, extra_questions=["case_number"], sink=SINK)
        if not report.ok:
            raise SystemExit(f"crm-setup failed: {[p.render() for p in report.problems]}")
        self.worker = Worker(self.settings, ledger=self.ledger)
        self.worker.open()
        self.next_id = 1
        self.emulator.reset_counters()

    def close(self) -> None:
        self.worker.close()
        self.ledger.dispose()
        self.emulator.stop()

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

    def measure(self, name: str, events: list[tuple[str, str]], *, backlog: bool = False) -> Figure:
        """Deliver ``events`` (phone, end_reason) and count HubSpot's requests: one at a time (ingest, deliver,
        next: nothing to batch, whatever the engine can do), or all ingested first as a ``backlog``."""
        self.emulator.reset_counters()
        started = time.monotonic()
        if backlog:
            ids = [self.ingest(phone, reason) for phone, reason in events]
            started = time.monotonic()
            self.drain()
        else:
            ids = []
            for phone, reason in events:
                ids.append(self.ingest(phone, reason))
                self.drain(idle_rounds=1)
        figure = Figure(name, len(ids), seconds=time.monotonic() - started)
        log = self.emulator.request_log
        if len(log) > 1:  # first to last HubSpot request: the drain loop's idle rounds are not delivery time
            figure.seconds = log[-1].time - log[0].time
        figure.requests = len(log)
        figure.throttled = sum(1 for r in log if r.status == 429)
        figure.kinds.update(f"{r.method} {_ID.sub('/{id}', r.path)}" for r in log)
        figure.failed = sum(1 for i in ids for d in self.ledger.deliveries_for(i) if d["status"] != "succeeded")
        note(f"{name}: {figure.requests} requests for {figure.events} events in {figure.seconds:.1f} s")
        return figure


def settings(workdir: Path, url: str) -> Settings:
    return parse_settings(
        {
            "receiver": {"auth": {"tokens": ["b" * 32]}},
            "store": {"url": f"sqlite:///{workdir / 'ledger.db'}"},
            "sinks": {SINK: {"type": "hubspot", "access_token": TOKEN, "base_url": url}},
            "worker": {"poll_interval_s": 0.05, "lease_s": 60},
        },
        source="<bench>",
        base_dir=workdir,
        environ={},
    )


@dataclass
class Results:
    unbatched: list[Figure]
    backlogs: list[Figure]
    numbers: int


def run(args: argparse.Namespace) -> Results:
    with tempfile.TemporaryDirectory(prefix="bench-hubspot-") as tmp:
        (Path(tmp) / "a").mkdir()
        bench = Bench(Path(tmp) / "a", rate_limit=None)
        try:
            unbatched = [
                bench.measure("known contact, first event (cold cache)", [(SAMPLE_PHONE, "no_answer")]),
                bench.measure(
                    "known contact, steady state (cache warm)",
                    [(SAMPLE_PHONE, ORDINARY[i % len(ORDINARY)]) for i in range(args.events)],
                ),
                bench.measure(
                    "new number, first event (contact created)",
                    [(new_number(i), ORDINARY[i % len(ORDINARY)]) for i in range(args.events)],
                ),
                bench.measure(
                    "callback, known contact (cache warm)",
                    [(SAMPLE_PHONE, "schedule_call_back") for _ in range(args.events)],
                ),
            ]
        finally:
            bench.close()
        (Path(tmp) / "b").mkdir()
        bench = Bench(Path(tmp) / "b", rate_limit=LIMIT)
        try:
            mix = [
                (
                    new_number(1000 + i % args.numbers),
                    "schedule_call_back" if i % 10 == 9 else ORDINARY[i % len(ORDINARY)],
                )
                for i in range(args.backlog)
            ]
            backlogs = [
                bench.measure(f"backlog, {args.numbers} new numbers", mix, backlog=True),
                bench.measure(
                    f"backlog, the same {args.numbers} numbers again (contacts known, cache warm)", mix, backlog=True
                ),
            ]
        finally:
            bench.close()
    return Results(unbatched, backlogs, args.numbers)


def rows(results: Results) -> Iterator[str]:
    yield "| scenario | events | HubSpot calls | calls/event | failed |"
    yield "|---|---:|---:|---:|---:|"
    for f in results.unbatched:
        yield f"| {f.name} | {f.events} | {f.requests} | {f.per_event:.2f} | {f.failed} |"


def render(results: Results, info: dict[str, Any]) -> str:
    lines = [
        "# HubSpot API calls per event (emulator, real engine and SDK)",
        "",
        f"- date: {info['date_utc']}",
        f"- machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}",
        f"- command: `{info['command']}`",
        (
            "- setup: 1 worker, SQLite ledger, sink `hubspot`, default mapping, emulator with the connector's custom "
            "properties (`seed_custom_properties=True`) + `twox_q_case_number` from crm-setup"
        ),
        "",
        "## (a) unbatched (one event at a time): calls per event",
        "",
        *rows(results),
        "",
        "Request mix per scenario:",
    ]
    for f in [*results.unbatched, *results.backlogs]:
        mix = ", ".join(f"{kind} ×{count}" for kind, count in f.kinds.most_common())
        lines.append(f"- {f.name}: {mix}")
    lines += [
        "",
        (
            f"## (b) backlog at HubSpot's private-app limit ({LIMIT} requests / {WINDOW_S:.0f} s; "
            f"every 10th event a callback)"
        ),
        "",
        (
            "| backlog | events | seconds | events/s | calls/event | requests/s | budget used | 429s | failed | "
            "events/s the budget allows |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in results.backlogs:
        ceiling = LIMIT / WINDOW_S / b.per_event if b.per_event else float("inf")
        lines.append(
            f"| {b.name} | {b.events} | {b.seconds:.1f} | {b.events / b.seconds:.2f} | {b.per_event:.2f} | "
            f"{b.requests / b.seconds:.1f} | {b.requests / b.seconds / (LIMIT / WINDOW_S):.0%} | "
            f"{b.throttled} | {b.failed} | {ceiling:.1f} |"
        )
    lines += ["", *(f"- {b.name}: {batching_verdict(b)}" for b in results.backlogs)]
    return "\n".join(lines)


def batching_verdict(backlog: Figure) -> str:
    """Decided from what HubSpot saw, not assumed: batching is being built while this script exists."""
    batched = sum(count for kind, count in backlog.kinds.items() if "/batch/" in kind)
    if backlog.per_event <= BATCH_GOAL:
        return f"Batching across events: goal met ({backlog.per_event:.2f} ≤ {BATCH_GOAL} calls/event)."
    how = (
        (
            "no HubSpot batch endpoint was called: batching across events is NOT implemented (or not active) in "
            "the engine that ran; it runs one delivery at a time, one request per action"
        )
        if not batched
        else (
            f"{batched} batch requests were sent; the other {backlog.requests - batched} requests "
            "(contact searches and creates, one per new number) are not batched"
        )
    )
    return (
        f"**Batching across events: goal NOT met** (≤ {BATCH_GOAL} calls/event under a backlog; measured "
        f"{backlog.per_event:.2f}, {backlog.per_event / BATCH_GOAL:.0f}× the goal): {how}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30, help="events per unbatched scenario")
    parser.add_argument("--backlog", type=int, default=300, help="events in each rate-limited backlog run")
    parser.add_argument("--numbers", type=int, default=60, help="distinct (new) numbers in the backlog run")
    parser.add_argument("--json", nargs="?", const="-", default=None, help="also write JSON (to FILE or stdout)")
    args = parser.parse_args(argv)
    info = machine()
    results = run(args)
    print(render(results, info))
    if args.json:
        data = {
            "machine": info,
            "scenarios": [
                {
                    "name": f.name,
                    "events": f.events,
                    "requests": f.requests,
                    "per_event": round(f.per_event, 3),
                    "seconds": round(f.seconds, 2),
                    "throttled_429": f.throttled,
                    "failed": f.failed,
                    "requests_by_kind": dict(f.kinds),
                }
                for f in [*results.unbatched, *results.backlogs]
            ],
        }
        text = json.dumps(data, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    failed = sum(f.failed for f in [*results.unbatched, *results.backlogs])
    return 1 if failed or any(b.throttled for b in results.backlogs) else 0


if __name__ == "__main__":
    sys.exit(main())
