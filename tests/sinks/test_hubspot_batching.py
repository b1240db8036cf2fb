"""Under a backlog the HubSpot sink writes many events' Calls and contact updates per request,
through the real engine, client and emulator — with the same exactly-once guarantees."""

from __future__ import annotations

from pathlib import Path

from connector.emulators.hubspot.server import HubSpotEmulator
from tests.support.delivery import drain, ingest, worker_on
from tests.support.hubspot import TOKEN, calls_of, engine_settings


def numbers(count: int) -> list[str]:
    return [f"+1312555{1000 + i:04d}" for i in range(count)]


def test_a_backlog_costs_a_fraction_of_a_request_per_event(tmp_path: Path) -> None:
    with HubSpotEmulator(
        tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None, seed_custom_properties=True
    ) as emulator:
        with worker_on(engine_settings(emulator, tmp_path)) as (ledger, worker):
            for i, phone in enumerate(numbers(40)):  # first calls: contacts get created and cached
                ingest(ledger, 1000 + i, sinks=("hs",), end_reason="no_answer", record_phone_number=phone)
            drain(worker)
            emulator.reset_counters()
            ids = [
                ingest(ledger, 2000 + i, sinks=("hs",), end_reason="hung_up", record_phone_number=phone)
                for i, phone in enumerate(numbers(40))
            ]
            drain(worker)
            counts = ledger.deliveries.counts()
        requests = emulator.request_count()
        assert counts[("hs", "succeeded")] == 80
        assert requests / len(ids) <= 0.2, f"{requests} requests for {len(ids)} events"
        for event_id in ids:
            [call] = calls_of(emulator, int(event_id))
            assert call["properties"]["hs_call_external_id"] == f"2x-{event_id}"
        contact = next(c for c in emulator.objects("contacts") if c["properties"].get("phone") == numbers(1)[0])
        assert contact["properties"]["twox_last_call_outcome"] == "hung_up"


def test_a_refused_option_in_a_batch_costs_that_property_only(tmp_path: Path) -> None:
    """An enumeration value HubSpot refuses (INVALID_OPTION, e.g. an option an admin removed) fails the whole batch
    create; the batch is sent again without that property for that event, and every call is logged once."""
    with HubSpotEmulator(
        tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None, seed_custom_properties=True
    ) as emulator:
        with worker_on(engine_settings(emulator, tmp_path)) as (ledger, worker):
            good = [ingest(ledger, 3000 + i, sinks=("hs",), record_phone_number=p) for i, p in enumerate(numbers(5))]
            bad = ingest(
                ledger,
                3999,
                sinks=("hs",),
                record_phone_number="+13125559999",
                call={"end_reason": "hung_up", "call_direction": "sideways", "duration": 5},
            )
            drain(worker)
            states = {e: [d["status"] for d in ledger.deliveries_for(e)] for e in [*good, bad]}
            [delivery] = ledger.deliveries_for(bad)
            activity = ledger.deliveries.journal(delivery["id"])[f"2x-{bad}:activity"]
        assert all(states[e] == ["succeeded"] for e in [*good, bad])
        assert activity.result["detail"]["skipped_fields"] == {"hs_call_direction": "INVALID_OPTION"}
        [call] = calls_of(emulator, int(bad))
        assert "hs_call_direction" not in call["properties"] or not call["properties"]["hs_call_direction"]
        assert all(len(calls_of(emulator, int(e))) == 1 for e in good)


def test_a_429_storm_is_absorbed_without_a_failed_delivery(tmp_path: Path) -> None:
    """The portal's real limit is far below what the sink was told: HubSpot answers 429 again and
    again; every delivery still succeeds, none is dead-lettered, none is written twice."""
    with HubSpotEmulator(
        tokens=[TOKEN], rate_limit=8, rate_window_s=1.0, search_rate_per_s=None, seed_custom_properties=True
    ) as emulator:
        with worker_on(engine_settings(emulator, tmp_path)) as (ledger, worker):
            ids = [
                ingest(ledger, 4000 + i, sinks=("hs",), end_reason="no_answer", record_phone_number=p)
                for i, p in enumerate(numbers(12))
            ]
            import time

            deadline = time.monotonic() + 60
            while ledger.deliveries.counts().get(("hs", "succeeded"), 0) < len(ids) and time.monotonic() < deadline:
                drain(worker)
            counts = ledger.deliveries.counts()
            throttled = [r for r in emulator.request_log if r.status == 429]
        assert throttled, "the test must actually provoke 429s"
        assert counts.get(("hs", "succeeded")) == len(ids) and counts.get(("hs", "dead"), 0) == 0
        assert all(len(calls_of(emulator, int(e))) == 1 for e in ids)


def test_a_revoked_token_pauses_the_sink_and_a_restored_one_resumes_it(tmp_path: Path) -> None:
    """Through the real engine: 401s pause HubSpot (nothing dead-lettered), then the probe resumes it."""
    import time

    with HubSpotEmulator(
        tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None, seed_custom_properties=True
    ) as emulator:
        with worker_on(engine_settings(emulator, tmp_path)) as (ledger, worker):
            emulator.set_tokens(["someone-rotated-it"])
            ids = [ingest(ledger, 5000 + i, sinks=("hs",), record_phone_number=p) for i, p in enumerate(numbers(3))]
            drain(worker, rounds=5)
            paused = ledger.sinks.status("hs")
            waiting = ledger.deliveries.counts()
            emulator.set_tokens([TOKEN])
            time.sleep(1.1)  # auth_probe_s in these settings
            drain(worker)
            resumed = ledger.sinks.status("hs")
            done = ledger.deliveries.counts()
        assert paused.paused and "credentials rejected" in (paused.reason or "")
        assert waiting.get(("hs", "dead"), 0) == 0 and waiting.get(("hs", "pending")) == len(ids)
        assert not resumed.paused and done.get(("hs", "succeeded")) == len(ids)
        assert all(len(calls_of(emulator, int(e))) == 1 for e in ids)
