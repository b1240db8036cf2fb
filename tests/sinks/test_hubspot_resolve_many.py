"""Contacts of a backlog resolved many per request on HubSpot (one IN search per 100 numbers, one batch create per
100 new ones), through hubspot-api-client against the emulator over loopback HTTP — and never a duplicate."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from connector.emulators.hubspot.server import HubSpotEmulator
from connector.engine.worker import Worker
from connector.ledger import Ledger
from connector.plan import MatchByPhone, ResolveContact
from connector.sinks.base import ActionResult
from tests.support.delivery import drain, ingest, worker_on
from tests.support.hubspot import TOKEN, calls_of, engine_settings, open_sink

FIELDS = ["phone", "mobilephone"]


def existing_number(i: int) -> str:
    return f"+1415555{2000 + i:04d}"


def new_number(i: int) -> str:
    return f"+1617555{3000 + i:04d}"


def national(e164: str) -> str:
    """How a human types a US number: ``(415) 555-2000``."""
    return f"({e164[2:5]}) {e164[5:8]}-{e164[8:]}"


def resolve(e164: str, key: str, **overrides: Any) -> ResolveContact:
    return ResolveContact(
        key=key,
        match=[MatchByPhone(objects=["contacts"], fields=FIELDS, e164=e164)],
        on_no_match=overrides.pop("on_no_match", "create"),
        create_object="contacts",
        create_properties=overrides.pop("create", {"phone": e164}),
        on_multiple=overrides.pop("on_multiple", "oldest"),
    )


def searches(emulator: HubSpotEmulator) -> list[Any]:
    return [r for r in emulator.request_log if r.path.endswith("/search")]


def add_question_property(emulator: HubSpotEmulator) -> None:
    """The sample's question property, as crm-setup would create it (its one-off creation is not what is counted)."""
    import hubspot
    from hubspot.crm.properties import PropertyCreate

    client = hubspot.Client.create(access_token=TOKEN, host=emulator.url)
    client.crm.properties.core_api.create(
        "contacts",
        PropertyCreate(
            name="twox_q_case_number", label="2X: case number", type="string", field_type="text", group_name="twox"
        ),
    )


def with_number(emulator: HubSpotEmulator, e164: str) -> list[dict[str, Any]]:
    from connector.phones import same_number

    return [c for c in emulator.objects("contacts") if any(same_number(c["properties"].get(f), e164) for f in FIELDS)]


@pytest.fixture
def portal() -> Any:
    with HubSpotEmulator(
        tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None, seed_custom_properties=True
    ) as emulator:
        yield emulator


def test_existing_national_format_and_new_numbers_in_two_requests(portal: HubSpotEmulator) -> None:
    """60 existing contacts (half typed in national format, half in mobilephone) and 40 new numbers: one search, one
    batch create; every number resolves to its own contact, the seeded ones to the seeded record."""
    seeded = portal.seed_records(
        "contacts",
        [{"phone": national(existing_number(i))} if i % 2 else {"mobilephone": existing_number(i)} for i in range(60)],
    )
    numbers = [existing_number(i) for i in range(60)] + [new_number(i) for i in range(40)]
    sink = open_sink(portal)
    try:
        portal.reset_counters()
        results = sink.resolve_many([resolve(n, f"2x-{i}:contact") for i, n in enumerate(numbers)])
    finally:
        sink.close()
    assert all(isinstance(r, ActionResult) for r in results)
    assert [r.crm_id for r in results[:60]] == seeded  # type: ignore[union-attr]
    assert all(r.created for r in results[60:])  # type: ignore[union-attr]
    kinds = Counter(r.path for r in portal.request_log)
    assert len(searches(portal)) == 1 and kinds["/crm/v3/objects/contacts/batch/create"] == 1, kinds
    assert portal.request_count() <= 3, kinds  # + at most the schema read for fitting the created values
    for number in numbers:
        assert len(with_number(portal, number)) == 1


def test_250_numbers_split_into_searches_within_the_in_limit(portal: HubSpotEmulator) -> None:
    """The emulator refuses more than 100 IN values (and more than 5 groups / 6 filters per group / 18 filters);
    250 distinct numbers take three searches and no refused request."""
    portal.seed_records("contacts", [{"phone": existing_number(i)} for i in range(250)])
    sink = open_sink(portal)
    try:
        portal.reset_counters()
        results = sink.resolve_many([resolve(existing_number(i), f"2x-{i}:contact") for i in range(250)])
    finally:
        sink.close()
    assert all(isinstance(r, ActionResult) and not r.created for r in results)
    assert len(searches(portal)) == 3
    assert all(r.status == 200 for r in portal.request_log), [r.status for r in portal.request_log]


def test_two_events_of_one_new_number_create_one_contact(portal: HubSpotEmulator) -> None:
    sink = open_sink(portal)
    try:
        results = sink.resolve_many([resolve(new_number(1), "2x-1:contact"), resolve(new_number(1), "2x-2:contact")])
    finally:
        sink.close()
    first, second = results
    assert isinstance(first, ActionResult) and isinstance(second, ActionResult)
    assert first.crm_id == second.crm_id and first.created and not second.created
    assert len(with_number(portal, new_number(1))) == 1


def test_a_create_refused_as_existing_resolves_to_the_existing_contact(portal: HubSpotEmulator) -> None:
    """The number is new to search, but the contact's email exists (another number on it): HubSpot's 409 on email
    is answered by reading that email from the record store; the other new contacts of the batch are created."""
    [existing] = portal.seed_records("contacts", [{"email": "ana@example.com", "phone": "+13125550000"}])
    actions = [
        resolve(new_number(i), f"2x-{i}:contact", create={"phone": new_number(i), "email": f"person{i}@example.com"})
        for i in range(3)
    ]
    actions.append(resolve(new_number(9), "2x-9:contact", create={"phone": new_number(9), "email": "ANA@example.com"}))
    sink = open_sink(portal)
    try:
        results = sink.resolve_many(actions)
    finally:
        sink.close()
    assert all(isinstance(r, ActionResult) for r in results), results
    conflicted = results[3]
    assert isinstance(conflicted, ActionResult)
    assert conflicted.crm_id == existing and not conflicted.created
    assert conflicted.detail["matched_by"] == "existing_email"
    assert all(r.created for r in results[:3])  # type: ignore[union-attr]
    emails = Counter(c["properties"].get("email", "").lower() for c in portal.objects("contacts"))
    assert all(count == 1 for email, count in emails.items() if email)


def test_a_backlog_resolves_many_per_request_through_the_engine(tmp_path: Path) -> None:
    """100 queued calls (60 existing contacts, 40 new numbers) through the real worker: requests per event counted."""
    with HubSpotEmulator(tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=5, seed_custom_properties=True) as portal:
        portal.seed_records("contacts", [{"phone": national(existing_number(i))} for i in range(60)])
        add_question_property(portal)
        settings = engine_settings(portal, tmp_path)
        settings = settings.model_copy(update={"worker": settings.worker.model_copy(update={"batch_size": 100})})
        with worker_on(settings) as (ledger, worker):
            numbers = [existing_number(i) for i in range(60)] + [new_number(i) for i in range(40)]
            ids = [
                ingest(ledger, 7000 + i, sinks=("hs",), end_reason="no_answer", record_phone_number=n)
                for i, n in enumerate(numbers)
            ]
            portal.reset_counters()
            drain(worker)
            counts = ledger.deliveries.counts()
        kinds = Counter(r.path for r in portal.request_log)
        assert counts[("hs", "succeeded")] == 100, counts
        assert len(searches(portal)) == 1, kinds
        assert portal.request_count() / len(ids) <= 0.1, kinds
        assert all(r.status < 400 for r in portal.request_log)
        for number in numbers:
            assert len(with_number(portal, number)) == 1
        for event_id in ids:
            assert len(calls_of(portal, int(event_id))) == 1


def test_no_duplicate_contact_with_three_workers_on_postgresql_and_search_lag(
    pg_server_url: str, tmp_path: Path
) -> None:
    """Three workers (own ledger connections each) drain 3 calls for each of 30 new numbers while HubSpot's search
    index lags 3 s: each number gets exactly one contact, each call one Call."""
    with HubSpotEmulator(
        tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None, search_lag_s=3.0, seed_custom_properties=True
    ) as portal:
        add_question_property(portal)
        settings = engine_settings(portal, tmp_path)
        settings = settings.model_copy(
            update={
                "store": settings.store.model_copy(update={"url": pg_server_url}),
                "worker": settings.worker.model_copy(update={"batch_size": 20}),
            }
        )
        setup = Ledger.open(settings.store)
        try:
            from connector.ledger.schema import metadata

            with setup.engine.begin() as connection:
                for table in reversed(metadata.sorted_tables):
                    connection.execute(table.delete())
            ids = [
                ingest(
                    setup,
                    8000 + round_ * 100 + i,
                    sinks=("hs",),
                    end_reason="no_answer",
                    record_phone_number=new_number(i),
                )
                for round_ in range(3)
                for i in range(30)
            ]
        finally:
            setup.dispose()
        stop = threading.Event()
        errors: list[BaseException] = []

        def work() -> None:
            ledger = Ledger.open(settings.store)
            worker = Worker(settings, ledger=ledger)
            worker.open()
            try:
                while not stop.is_set():
                    if worker.run_once() == 0:
                        time.sleep(0.05)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
            finally:
                worker.close()
                ledger.dispose()

        threads = [threading.Thread(target=work) for _ in range(3)]
        for thread in threads:
            thread.start()
        check = Ledger.open(settings.store)
        try:
            deadline = time.monotonic() + 90
            while check.deliveries.counts().get(("hs", "succeeded"), 0) < len(ids) and time.monotonic() < deadline:
                time.sleep(0.2)
            counts = check.deliveries.counts()
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            check.dispose()
        assert not errors, errors
        assert counts.get(("hs", "succeeded")) == len(ids), counts
        for i in range(30):
            assert len(with_number(portal, new_number(i))) == 1, new_number(i)
        for event_id in ids:
            assert len(calls_of(portal, int(event_id))) == 1


def test_a_crash_after_the_batch_create_never_duplicates_a_contact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies right after HubSpot created 10 contacts (journal: in flight, shared cache not written) and
    the claims come back at once while search still lags: the next worker waits for the index, finds them, and
    creates none again."""
    from connector.engine import batch as batching

    class Crash(BaseException):
        pass

    def die_after_the_crm_call(name: str) -> None:
        if name == "after_crm_call":
            raise Crash(name)

    with HubSpotEmulator(
        tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None, search_lag_s=4.0, seed_custom_properties=True
    ) as portal:
        add_question_property(portal)
        settings = engine_settings(portal, tmp_path)
        with worker_on(settings) as (ledger, worker):
            ids = [
                ingest(ledger, 9100 + i, sinks=("hs",), end_reason="no_answer", record_phone_number=new_number(i))
                for i in range(10)
            ]
            monkeypatch.setattr(batching, "crash_point", die_after_the_crm_call)
            claimed = ledger.deliveries.claim(worker.id, ["hs"], limit=50, lease_s=0.1)
            with pytest.raises(Crash):
                worker._runner.run_many(claimed)
            monkeypatch.undo()
            assert sum(len(with_number(portal, new_number(i))) for i in range(10)) == 10
        time.sleep(0.2)
        with worker_on(settings) as (ledger, worker):  # a new process: nothing the old sink knew survives
            assert ledger.deliveries.sweep_expired() == len(ids)
            deadline = time.monotonic() + 60
            while ledger.deliveries.counts().get(("hs", "succeeded"), 0) < len(ids) and time.monotonic() < deadline:
                drain(worker, rounds=20)
            counts = ledger.deliveries.counts()
        assert counts.get(("hs", "succeeded")) == len(ids), counts
        for i in range(10):
            assert len(with_number(portal, new_number(i))) == 1
        for event_id in ids:
            assert len(calls_of(portal, int(event_id))) == 1


def test_a_refused_batched_search_falls_back_to_one_search_per_number(portal: HubSpotEmulator) -> None:
    """What IN does on phone properties is not documented: should a portal refuse the batched search (400), the
    numbers are searched one by one (EQ), as before, instead of failing the deliveries."""
    seeded = portal.seed_records("contacts", [{"phone": national(existing_number(i))} for i in range(3)])
    sink = open_sink(portal)
    try:
        portal.reset_counters()
        portal.fail_next(1, status=400)
        results = sink.resolve_many([resolve(existing_number(i), f"2x-{i}:contact") for i in range(3)])
    finally:
        sink.close()
    assert [r.crm_id for r in results] == seeded  # type: ignore[union-attr]
    assert [r.status for r in searches(portal)] == [400, 200, 200, 200]


def test_resolve_marks_in_flight_in_one_transaction_and_a_lost_lease_fails_only_its_delivery(tmp_path: Path) -> None:
    """10 new numbers resolved together: their in-flight marks are one transaction, not one per delivery; the
    delivery whose lease went to another worker meanwhile gets no CRM call (its contact is not created) and
    fails alone, the other 9 are delivered."""
    from sqlalchemy import event, update

    from connector.ledger.schema import deliveries

    with HubSpotEmulator(
        tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None, seed_custom_properties=True
    ) as portal:
        add_question_property(portal)
        settings = engine_settings(portal, tmp_path)
        with worker_on(settings) as (ledger, worker):
            for i in range(10):
                ingest(ledger, 9300 + i, sinks=("hs",), end_reason="no_answer", record_phone_number=new_number(i))
            claimed = ledger.deliveries.claim(worker.id, ["hs"], limit=50, lease_s=30)
            stolen = next(c for c in claimed if c.event_id == "9303")
            with ledger.engine.begin() as connection:
                connection.execute(update(deliveries).where(deliveries.c.id == stolen.id).values(lease_owner="other"))
            commits: list[object] = []
            count = commits.append
            event.listen(ledger.engine, "commit", count)
            outcomes = worker._runner.run_many(claimed)
            event.remove(ledger.engine, "commit", count)
            states = {c.id: d["status"] for c in claimed for d in ledger.deliveries_for(c.event_id)}
            attempts = ledger.deliveries.attempts_for(stolen.id)
        assert Counter(outcomes)["succeeded"] == 9 and len(outcomes) == 10, outcomes
        assert [i for i, status in states.items() if status != "succeeded"] == [stolen.id]
        assert attempts[-1]["outcome"] != "succeeded"
        assert with_number(portal, new_number(3)) == []  # no CRM call for the stolen delivery
        assert all(len(with_number(portal, new_number(i))) == 1 for i in range(10) if i != 3)
        assert len(commits) <= 11, len(commits)  # the resolve stage's in-flight marks are one of them (were 10)
