"""Distinct-contact backlog: how fast one worker drains calls for many DIFFERENT contacts, and at what CRM cost.

Why: with a contact cache that is cold for most numbers, every event used to cost a contact search, and HubSpot
allows 5 searches/s — a backlog of distinct contacts drained at ~4 events/s. This run queues `--events` calls
(default 5,000): 80 % for existing contacts (mostly distinct numbers: one in ten is called twice; half stored in
national format), 20 % for new numbers; then one in-process `connector.engine.worker.Worker` (the real engine, sinks and
client libraries) drains them against the emulator: HubSpot with its search limit (5/s) and no other rate limit,
or Salesforce. Printed: drain rate, CRM requests per event by kind, duplicate contacts and duplicate calls
(counted in the emulator), failed deliveries.

    python bench/_delivery_distinct.py [--crms hubspot,salesforce] [--events 5000] [--batch 100] [--store-url URL]
    python bench/delivery.py --distinct hubspot,salesforce[@EVENTS]      (the same, with the defaults)

Goals (issue 11): ≥ 300 events/s, ≤ 0.1 CRM requests per event, zero duplicates. Exit status 1 when a run had
duplicates or failed deliveries.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, note  # noqa: E402

TOKEN = "bench-distinct-" + "0" * 8
_ID = re.compile(r"/[0-9A-Za-z]{15,18}$|/\d+$")


@dataclass
class Distinct:
    crm: str
    events: int
    batch: int
    seconds: float = 0.0
    requests: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    duplicate_contacts: int = 0
    duplicate_calls: int = 0
    failed: int = 0
    resolve_s: float = 0.0
    """Time the worker spent inside the sink's ``resolve_many`` (CRM round trips and matching)."""

    def line(self) -> str:
        rate = self.events / self.seconds if self.seconds else 0.0
        mix = ", ".join(f"{k} ×{c}" for k, c in self.kinds.most_common())
        return (
            f"{self.crm}: {self.events} events (batch {self.batch}) drained in {self.seconds:.1f} s = "
            f"{rate:.0f} events/s (goal ≥ 300); {self.requests} CRM requests = "
            f"{self.requests / max(self.events, 1):.3f}/event (goal ≤ 0.1); duplicate contacts "
            f"{self.duplicate_contacts}, duplicate calls {self.duplicate_calls}, failed {self.failed}\n"
            f"    inside the sink's resolve_many: {self.resolve_s:.1f} s "
            f"({1000 * self.resolve_s / max(self.events, 1):.2f} ms/event); the rest is the worker's ledger work\n"
            f"    requests: {mix}"
        )


def existing_number(i: int) -> str:
    return f"+1{415 + i // 10_000}555{i % 10_000:04d}"


def new_number(i: int) -> str:
    return f"+1{617 + i // 10_000}555{i % 10_000:04d}"


def national(e164: str) -> str:
    return f"({e164[2:5]}) {e164[5:8]}-{e164[8:]}"


def plan_numbers(events: int) -> tuple[list[str], list[str]]:
    """(numbers of the existing contacts, one number per event): one existing number in ten called twice."""
    existing_events, new_events = events * 4 // 5, events - events * 4 // 5
    distinct = existing_events - existing_events // 10
    existing = [existing_number(i) for i in range(distinct)]
    calls = existing + existing[: existing_events - distinct] + [new_number(i) for i in range(new_events)]
    return existing, calls


def _settings(workdir: Path, sink: dict[str, Any], batch: int, store_url: str | None) -> Any:
    from connector.config import parse_settings

    return parse_settings(
        {
            "receiver": {"auth": {"tokens": ["b" * 32]}},
            "store": {"url": store_url or f"sqlite:///{workdir / 'ledger.db'}"},
            "sinks": {"crm": sink},
            "worker": {"poll_interval_s": 0.05, "lease_s": 120, "batch_size": batch},
        },
        source="<bench>",
        base_dir=workdir,
        environ={},
    )


def _queue(ledger: Any, calls: list[str]) -> list[str]:
    from connector.payload import parse_webhook
    from connector.receiver.ingest import content_hash
    from connector.sample import sample_payload

    ids = []
    for i, phone in enumerate(calls):
        document = sample_payload(100_000 + i, end_reason="no_answer", record_phone_number=phone)
        event = parse_webhook(document)
        ledger.record_event(
            event,
            body=json.dumps(document).encode(),
            content_type="application/json",
            content_hash=content_hash(document),
            sinks=["crm"],
        )
        ids.append(event.id)
    return ids


def _timed_resolve(worker: Any, figure: Distinct) -> None:
    """Add the time spent in the sink's ``resolve_many`` to ``figure.resolve_s`` (wraps the open sink's method)."""
    sink = worker._runtimes["crm"].sink
    inner = sink.resolve_many

    def timed(actions: Any) -> Any:
        started = time.perf_counter()
        try:
            return inner(actions)
        finally:
            figure.resolve_s += time.perf_counter() - started

    sink.resolve_many = timed


def _drain(ledger: Any, worker: Any, total: int, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if worker.run_once() == 0:
            counts = ledger.deliveries.counts()
            if sum(c for (_, status), c in counts.items() if status in ("succeeded", "dead")) >= total:
                break
            time.sleep(0.05)
    return time.monotonic() - started


def run_hubspot(events: int, batch: int, store_url: str | None, timeout_s: float) -> Distinct:
    import hubspot
    from hubspot.crm.properties import PropertyCreate

    from connector.emulators.hubspot.server import HubSpotEmulator
    from connector.engine.worker import Worker
    from connector.ledger import Ledger
    from connector.phones import national_digits

    figure = Distinct("hubspot", events, batch)
    existing, calls = plan_numbers(events)
    with (
        tempfile.TemporaryDirectory(prefix="bench-distinct-") as tmp,
        HubSpotEmulator(
            tokens=[TOKEN], rate_limit=None, search_rate_per_s=5, seed_custom_properties=True, seed_contacts=False
        ) as emulator,
    ):
        emulator.seed_records(
            "contacts",
            [{"phone": national(n) if i % 2 else n, "lastname": f"Existing {i}"} for i, n in enumerate(existing)],
        )
        hubspot.Client.create(access_token=TOKEN, host=emulator.url).crm.properties.core_api.create(
            "contacts",
            PropertyCreate(
                name="twox_q_case_number", label="2X: case number", type="string", field_type="text", group_name="twox"
            ),
        )  # as crm-setup would
        settings = _settings(
            Path(tmp), {"type": "hubspot", "access_token": TOKEN, "base_url": emulator.url}, batch, store_url
        )
        ledger = Ledger.open(settings.store)
        worker = Worker(settings, ledger=ledger)
        worker.open()
        _timed_resolve(worker, figure)
        try:
            note(f"hubspot: queueing {events} calls ({len(existing)} existing contacts)")
            _queue(ledger, calls)
            emulator.reset_counters()
            figure.seconds = _drain(ledger, worker, events, timeout_s)
            counts = ledger.deliveries.counts()
        finally:
            worker.close()
            ledger.dispose()
        log = emulator.request_log
        figure.requests = len(log)
        figure.kinds.update(f"{r.method} {_ID.sub('/{id}', r.path)} {r.status}" for r in log)
        phones = Counter(
            national_digits(c["properties"].get("phone") or "")
            for c in emulator.objects("contacts")
            if c["properties"].get("phone")
        )
        figure.duplicate_contacts = sum(n - 1 for n in phones.values() if n > 1)
        keys = Counter(c["properties"].get("hs_call_external_id") for c in emulator.objects("calls"))
        figure.duplicate_calls = sum(n - 1 for n in keys.values() if n > 1)
        figure.failed = events - counts.get(("crm", "succeeded"), 0)
    return figure


def run_salesforce(events: int, batch: int, store_url: str | None, timeout_s: float) -> Distinct:
    from simple_salesforce import Salesforce

    from connector.emulators.salesforce.server import SalesforceEmulator
    from connector.engine.worker import Worker
    from connector.ledger import Ledger
    from connector.phones import national_digits

    figure = Distinct("salesforce", events, batch)
    existing, calls = plan_numbers(events)
    with tempfile.TemporaryDirectory(prefix="bench-distinct-") as tmp, SalesforceEmulator() as emulator:
        client = Salesforce(
            instance_url=emulator.instance_url,
            session_id=emulator.session_id,
            session=emulator.client_session(),
            version="62.0",
        )
        records = [
            {"attributes": {"type": "Contact"}, "LastName": f"Existing {i}", "Phone": national(n) if i % 2 else n}
            for i, n in enumerate(existing)
        ]
        for start in range(0, len(records), 200):
            client.restful("composite/sobjects", method="POST", json={"records": records[start : start + 200]})
        sink = {
            "type": "salesforce",
            "instance_url": emulator.instance_url,
            "ca_bundle": emulator.ca_file,
            "auth": {"session_id": emulator.session_id},
        }
        settings = _settings(Path(tmp), sink, batch, store_url)
        ledger = Ledger.open(settings.store)
        worker = Worker(settings, ledger=ledger)
        worker.open()
        _timed_resolve(worker, figure)
        try:
            note(f"salesforce: queueing {events} calls ({len(existing)} existing contacts)")
            _queue(ledger, calls)
            before, since = emulator.api_calls(), len(emulator.request_log)
            figure.seconds = _drain(ledger, worker, events, timeout_s)
            counts = ledger.deliveries.counts()
        finally:
            worker.close()
            ledger.dispose()
        figure.requests = emulator.api_calls() - before
        figure.kinds.update(
            f"{r['method']} {_ID.sub('/{id}', r['path'].split('?')[0])}" for r in emulator.request_log[since:]
        )
        phones = Counter(
            national_digits(r.get("Phone") or "")
            for s in ("Contact", "Lead")
            for r in emulator.records(s)
            if r.get("Phone")
        )
        figure.duplicate_contacts = sum(n - 1 for n in phones.values() if n > 1)
        keys = Counter(r.get("CallObject") for r in emulator.records("Task") if r.get("CallObject"))
        figure.duplicate_calls = sum(n - 1 for n in keys.values() if n > 1)
        figure.failed = events - counts.get(("crm", "succeeded"), 0)
    return figure


def run_distinct(
    crms: list[str], events: int, batch: int, store_url: str | None = None, timeout_s: float = 600.0
) -> int:
    """Run and print each CRM's figures; 1 when any run had duplicates or failed deliveries."""
    runners = {"hubspot": run_hubspot, "salesforce": run_salesforce}
    status = 0
    for crm in crms:
        if crm not in runners:
            raise SystemExit(f"unknown CRM {crm!r}: use hubspot, salesforce")
        figure = runners[crm](events, batch, store_url, timeout_s)
        print(figure.line(), flush=True)
        if figure.duplicate_contacts or figure.duplicate_calls or figure.failed:
            status = 1
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crms", default="hubspot,salesforce", help="comma list: hubspot, salesforce")
    parser.add_argument("--events", type=int, default=5000, help="queued calls (80 %% existing contacts, 20 %% new)")
    parser.add_argument("--batch", type=int, default=100, help="worker.batch_size (deliveries claimed at once)")
    parser.add_argument("--store-url", default=None, help="ledger URL (default: a new SQLite file)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up draining after this many seconds")
    args = parser.parse_args(argv)
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores; {info['date_utc']}; Python {info['python']}")
    print(f"command: {info['command']}")
    return run_distinct(
        [c.strip() for c in args.crms.split(",") if c.strip()], args.events, args.batch, args.store_url, args.timeout
    )


if __name__ == "__main__":
    sys.exit(main())
