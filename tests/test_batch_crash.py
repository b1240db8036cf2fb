"""Batch mode dies at each crash point and loses nothing, duplicates nothing — now that the batch writes its journal
in bulk and defers `succeeded` marks to its next transaction (connector.engine.batch, connector.ledger.bulk).

The dying worker raises at the chosen point (the deterministic stand-in for `kill -9` that
tests/sinks/test_salesforce_batching.py uses too): its uncommitted bookkeeping is lost as in a real crash. It is
then declared dead (its claims released, as a live worker does for a dead one) and another worker drains, through the
real engine, hubspot-api-client and the HubSpot emulator over loopback HTTP, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from connector.config import parse_settings
from connector.emulators.hubspot.server import HubSpotEmulator
from connector.engine import batch as batching
from connector.engine.worker import Worker
from connector.ledger import Ledger
from tests.support import processes
from tests.support.delivery import drain, ingest
from tests.support.hubspot import TOKEN
from tests.support.ledger import truncate_all

REASONS = ["schedule_call_back", "hung_up", "no_answer", "call_transferred"]


class Crash(BaseException):
    """The dying worker stops here (a BaseException: nothing in the engine may catch a kill)."""


def settings(emulator: HubSpotEmulator, store_url: str, **worker: Any) -> Any:
    return parse_settings(
        {
            "receiver": {"auth": {"tokens": ["t" * 32]}},
            "store": {"url": store_url},
            "sinks": {"hs": {"type": "hubspot", "access_token": TOKEN, "base_url": emulator.url}},
            "worker": {
                "poll_interval_s": 0.05,
                "auth_probe_s": 1,
                "lease_s": 30,
                "batch_size": 40,
                "retry": {"schedule_s": [0.2, 0.2, 0.2], "jitter": 0, "quick_retries": 1, "quick_wait_s": 0.01},
                **worker,
            },
        },
        source="t",
        base_dir=Path("."),
        environ={},
    )


def phones(count: int) -> list[str]:
    return [f"+1312556{1000 + i:04d}" for i in range(count)]


def by_external_id(emulator: HubSpotEmulator, object_type: str, prop: str) -> Counter[str]:
    return Counter(str(r["properties"].get(prop)) for r in emulator.objects(object_type) if r["properties"].get(prop))


def crash_at(monkeypatch: pytest.MonkeyPatch, point: str, nth: int) -> None:
    seen = Counter[str]()

    def crash_point(name: str) -> None:
        seen[name] += 1
        if name == point and seen[name] == nth:
            raise Crash(name)

    monkeypatch.setattr(batching, "crash_point", crash_point)
    monkeypatch.setattr("connector.engine.single.crash_point", crash_point)


@pytest.mark.parametrize(
    ("point", "nth"),
    [
        ("before_crm_call", 1),
        ("before_crm_call", 3),
        ("after_crm_call", 1),
        ("after_crm_call", 2),
        ("after_crm_call", 3),
        ("after_action", 1),
    ],
)
def test_a_batch_killed_at_a_crash_point_loses_nothing_and_duplicates_nothing(
    store_url: str, monkeypatch: pytest.MonkeyPatch, point: str, nth: int
) -> None:
    with HubSpotEmulator(
        tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None, seed_custom_properties=True
    ) as emulator:
        ledger = Ledger.open(settings(emulator, store_url).store)
        truncate_all(ledger)
        numbers = phones(30)
        first_pass = point == "after_action"  # only contact resolution by the CRM passes there (once per batch:
        # resolve_many resolves the whole group, then its marks wait for the next transaction)
        if not first_pass:  # contacts known and cached: the backlog case the batch runner exists for
            for i, phone in enumerate(numbers):
                ingest(ledger, 1000 + i, sinks=("hs",), end_reason="no_answer", record_phone_number=phone)
            warm = Worker(settings(emulator, store_url), ledger=ledger, worker_id="warm")
            warm.open()
            drain(warm)
            warm.close()
        ids = [
            ingest(ledger, 2000 + i, sinks=("hs",), end_reason=REASONS[i % len(REASONS)], record_phone_number=phone)
            for i, phone in enumerate(numbers)
        ]
        dying = Worker(settings(emulator, store_url), ledger=ledger, worker_id="dying")
        dying.open()
        crash_at(monkeypatch, point, nth)
        with pytest.raises(Crash):
            dying.run_once()
        monkeypatch.undo()
        assert ledger.deliveries.counts().get(("hs", "leased"), 0) > 0  # it died holding its batch
        ledger.deliveries.release_claims_of([dying.id])  # what recover_dead_workers does for a dead worker
        survivor = Worker(settings(emulator, store_url), ledger=ledger, worker_id="survivor")
        survivor.open()
        try:
            drain(survivor)
        finally:
            survivor.close()
            dying.close()
        counts = ledger.deliveries.counts()
        ledger.dispose()
        calls = by_external_id(emulator, "calls", "hs_call_external_id")
        tasks = by_external_id(emulator, "tasks", "twox_task_key")
        contacts = Counter(c["properties"].get("phone") for c in emulator.objects("contacts"))
    total = len(ids) * (1 if first_pass else 2)
    assert counts == {("hs", "succeeded"): total}, counts
    assert all(calls[f"2x-{e}"] == 1 for e in ids), {e: calls[f"2x-{e}"] for e in ids if calls[f"2x-{e}"] != 1}
    assert [k for k, n in calls.items() if n > 1] == [] and [k for k, n in tasks.items() if n > 1] == []
    callbacks = [e for i, e in enumerate(ids) if REASONS[i % len(REASONS)] == "schedule_call_back"]
    assert sum(1 for k in tasks if any(k.startswith(f"2x-{e}") for e in callbacks)) == len(callbacks)
    assert all(contacts[p] == 1 for p in numbers)


def test_a_lone_call_takes_the_single_path_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing else due, one claimed delivery is run at once by the single-event path: the worker never waits
    for a batch to fill (latency is measured in bench/delivery.py, not here)."""
    with HubSpotEmulator(
        tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None, seed_custom_properties=True
    ) as emulator:
        store = f"sqlite:///{tmp_path / 'ledger.db'}"
        ledger = Ledger.open(settings(emulator, store).store)
        worker = Worker(settings(emulator, store, batch_size=100), ledger=ledger)
        worker.open()
        batched: list[int] = []
        real = batching.BatchingRunner._run_batch
        monkeypatch.setattr(
            batching.BatchingRunner,
            "_run_batch",
            lambda self, claimed, sink: batched.append(len(claimed)) or real(self, claimed, sink),
        )
        try:
            event_id = ingest(ledger, 77, sinks=("hs",), end_reason="hung_up")
            assert worker.run_once() == 1  # the first round delivers it
            assert [d["status"] for d in ledger.deliveries_for(event_id)] == ["succeeded"]
        finally:
            worker.close()
            ledger.dispose()
        assert batched == []
        assert [c["properties"]["hs_call_external_id"] for c in emulator.objects("calls")] == [f"2x-{event_id}"]


def test_a_contact_create_cut_off_by_a_crash_waits_the_settle_window_not_the_retry_schedule(store_url: str) -> None:
    """A worker died between journaling its contact resolution in flight and sending it: the contact may exist,
    and HubSpot's search may not show it yet, so the next worker waits CREATE_SETTLE_S before creating. That wait
    is not a failed attempt: with the default retry schedule (15 s, then 30 s …) it used to take 35 to 130 s."""
    from connector.ledger.schema import ActionStatus
    from connector.plan import contact_action_key
    from connector.sinks.hubspot.sink import CREATE_SETTLE_S

    with HubSpotEmulator(
        tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None, seed_custom_properties=True
    ) as emulator:
        default_retries = {"retry": {}}  # the shipped schedule, not the fast one of the other tests
        ledger = Ledger.open(settings(emulator, store_url).store)
        truncate_all(ledger)
        numbers = phones(6)
        ids = [ingest(ledger, 3000 + i, sinks=("hs",), record_phone_number=p) for i, p in enumerate(numbers)]
        claimed = ledger.deliveries.claim("dying", ["hs"], limit=10, lease_s=30)
        for item in claimed[:3]:  # the state a kill -9 leaves after the in-flight mark, before the request
            ledger.deliveries.journal_mark(
                item.id, contact_action_key(item.event_id), "resolve_contact", ActionStatus.IN_FLIGHT, owner="dying"
            )
        ledger.deliveries.release_claims_of(["dying"])
        survivor = Worker(settings(emulator, store_url, **default_retries), ledger=ledger, worker_id="survivor")
        survivor.open()
        started = time.monotonic()
        try:
            processes.wait_until(
                lambda: survivor.run_once() >= 0 and ledger.deliveries.counts() == {("hs", "succeeded"): 6},
                CREATE_SETTLE_S + 5,
                "the cut-off contacts, after the settle window",
                every_s=0.05,
            )
            took = time.monotonic() - started
        finally:
            survivor.close()
        attempts = [len(ledger.deliveries.attempts_for(d["id"])) for e in ids for d in ledger.deliveries_for(e)]
        counted = [d["attempts"] for e in ids for d in ledger.deliveries_for(e)]
        ledger.dispose()
        contacts = Counter(c["properties"].get("phone") for c in emulator.objects("contacts"))
    print(f"cut-off contacts resolved {took:.1f} s after the survivor started (settle window {CREATE_SETTLE_S:g} s)")
    assert took >= CREATE_SETTLE_S - 0.5  # it did wait for the index: no create before the window
    assert sorted(attempts) == [1, 1, 1, 2, 2, 2]  # the wait, then the create
    assert counted == [2] * 6  # the dying worker's claim and the survivor's: the wait is not a failed attempt
    assert all(contacts[p] == 1 for p in numbers)
