"""Contacts of a backlog resolved many per request on Salesforce (one SOSL with OR terms, one sObject Collections
create for the new numbers), through simple-salesforce against the emulator over loopback HTTPS."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from connector.emulators.salesforce.server import SalesforceEmulator
from connector.phones import same_number
from connector.plan import MatchByPhone, ResolveContact
from connector.sinks.base import ActionResult
from connector.sinks.salesforce.resolve import SEARCH_TEXT_MAX, search_statements
from tests.support.delivery import drain, ingest
from tests.support.salesforce import Engine, engine_settings, open_sink, seed_contacts

FIELDS = ["Phone", "MobilePhone"]


def new_number(i: int) -> str:
    return f"+1617555{3000 + i:04d}"


def resolve(e164: str, key: str) -> ResolveContact:
    return ResolveContact(
        key=key,
        match=[MatchByPhone(objects=["Contact", "Lead"], fields=FIELDS, e164=e164)],
        on_no_match="create",
        create_object="Lead",
        create_properties={"LastName": "Caller", "Company": "Unknown", "Phone": e164},
        on_multiple="oldest",
    )


def searches(emulator: SalesforceEmulator, since: int = 0) -> list[dict[str, Any]]:
    return [r for r in emulator.request_log[since:] if r["path"].endswith("/search/") or r["path"].endswith("/search")]


def with_number(emulator: SalesforceEmulator, e164: str) -> list[dict[str, Any]]:
    return [
        r
        for sobject in ("Contact", "Lead")
        for r in emulator.records(sobject)
        if any(same_number(r.get(f), e164) for f in FIELDS)
    ]


def test_existing_national_format_and_new_numbers_in_two_api_calls() -> None:
    """45 Contacts typed ``(312) 555-2000`` and 30 new numbers: one SOSL, one collection create."""
    with SalesforceEmulator() as emulator:
        known = seed_contacts(emulator, 45)
        numbers = [n for n, _ in known] + [new_number(i) for i in range(30)]
        sink = open_sink(emulator)
        try:
            sink.resolve_many([resolve(new_number(99), "2x-warm:contact")])  # the describe: once per process
            before, since = emulator.api_calls(), len(emulator.request_log)
            results = sink.resolve_many([resolve(n, f"2x-{i}:contact") for i, n in enumerate(numbers)])
            used = emulator.api_calls() - before
        finally:
            sink.close()
        assert [r.crm_id for r in results[:45]] == [i for _, i in known]  # type: ignore[union-attr]
        assert all(isinstance(r, ActionResult) and r.created and r.object == "Lead" for r in results[45:])
        assert len(searches(emulator, since)) == 1 and used == 2, emulator.request_log[since:]
        for number in numbers:
            assert len(with_number(emulator, number)) == 1


def test_the_search_text_stays_under_soql_sosl_limits_and_splits() -> None:
    """300 numbers do not fit one FIND text of 4,000 characters: several statements, each under the limit."""
    numbers = [f"+1312555{i:04d}" for i in range(300)]
    statements = search_statements(["Contact", "Lead"], FIELDS, numbers)
    assert len(statements) > 1
    for statement in statements:
        text = statement[statement.index("{") + 1 : statement.index("}")]
        assert len(text) <= SEARCH_TEXT_MAX
    assert sum(s.count(" OR ") + 1 for s in statements) == sum(1 for n in numbers for _ in range(2))


def test_two_events_of_one_new_number_create_one_lead() -> None:
    with SalesforceEmulator() as emulator:
        sink = open_sink(emulator)
        try:
            first, second = sink.resolve_many(
                [resolve(new_number(1), "2x-1:contact"), resolve(new_number(1), "2x-2:contact")]
            )
        finally:
            sink.close()
        assert isinstance(first, ActionResult) and isinstance(second, ActionResult)
        assert first.crm_id == second.crm_id and first.created and not second.created
        assert len(with_number(emulator, new_number(1))) == 1


def test_a_lead_refused_as_a_duplicate_resolves_to_the_existing_record() -> None:
    """A Lead exists for the number but the search index has not caught up (so it is "new"); a blocking duplicate
    rule refuses the create with DUPLICATES_DETECTED; the record store (SOQL, no lag) names the Lead it resolves to."""
    with SalesforceEmulator() as emulator:
        emulator.block_duplicates("Lead", "Phone")
        sink = open_sink(emulator)
        try:
            [existing] = sink.resolve_many([resolve(new_number(5), "2x-0:contact")])
            assert isinstance(existing, ActionResult) and existing.created
            sink.close()
            sink = open_sink(emulator)  # another process: it has not seen the create
            emulator.set_search_lag(60)  # ... and SOSL has not either
            results = sink.resolve_many(
                [resolve(new_number(5), "2x-1:contact"), resolve(new_number(6), "2x-2:contact")]
            )
        finally:
            sink.close()
        duplicate, fresh = results
        assert isinstance(duplicate, ActionResult) and duplicate.crm_id == existing.crm_id
        assert duplicate.detail["matched_by"] == "duplicate_rule" and not duplicate.created
        assert isinstance(fresh, ActionResult) and fresh.created
        assert len(with_number(emulator, new_number(5))) == 1


def test_a_backlog_resolves_many_per_api_call_through_the_engine(tmp_path: Path) -> None:
    with SalesforceEmulator() as emulator:
        known = seed_contacts(emulator, 30)
        numbers = [n for n, _ in known] + [new_number(i) for i in range(20)]
        engine = Engine(engine_settings(emulator, tmp_path))
        try:
            ids = [
                ingest(engine.ledger, 9000 + i, sinks=("sf",), end_reason="no_answer", record_phone_number=n)
                for i, n in enumerate(numbers)
            ]
            since = len(emulator.request_log)
            drain(engine.worker)
            counts = engine.ledger.deliveries.counts()
        finally:
            engine.close()
        assert counts[("sf", "succeeded")] == len(ids), counts
        assert len(searches(emulator, since)) == 1
        for number in numbers:
            assert len(with_number(emulator, number)) == 1


def test_a_crash_after_the_collection_create_never_duplicates_a_lead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies right after Salesforce created 8 Leads; SOSL lags; the next worker looks each in-flight
    resolve up (the sink's lookup: SOSL, then SOQL on the fields set to the number, which does not lag) and creates
    none again."""
    from connector.engine import batch as batching

    class Crash(BaseException):
        pass

    def die_after_the_crm_call(name: str) -> None:
        if name == "after_crm_call":
            raise Crash(name)

    with SalesforceEmulator() as emulator:
        emulator.set_search_lag(60)
        engine = Engine(engine_settings(emulator, tmp_path))
        try:
            ids = [
                ingest(
                    engine.ledger, 9200 + i, sinks=("sf",), end_reason="no_answer", record_phone_number=new_number(i)
                )
                for i in range(8)
            ]
            monkeypatch.setattr(batching, "crash_point", die_after_the_crm_call)
            claimed = engine.ledger.deliveries.claim(engine.worker.id, ["sf"], limit=50, lease_s=0.1)
            with pytest.raises(Crash):
                engine.worker._runner.run_many(claimed)
            monkeypatch.undo()
            engine.restart()
            time.sleep(0.2)
            assert engine.ledger.deliveries.sweep_expired() == len(ids)
            drain(engine.worker)
            counts = engine.ledger.deliveries.counts()
        finally:
            engine.close()
        assert counts.get(("sf", "succeeded")) == len(ids), counts
        for i in range(8):
            assert len(with_number(emulator, new_number(i))) == 1


def test_a_refused_batched_sosl_falls_back_to_one_search_per_number() -> None:
    with SalesforceEmulator() as emulator:
        known = seed_contacts(emulator, 3)
        sink = open_sink(emulator)
        try:
            since = len(emulator.request_log)
            emulator.fail_next(
                1, status=400, error_code="MALFORMED_SEARCH", message="search too complex", path_contains="/search"
            )
            results = sink.resolve_many([resolve(n, f"2x-{i}:contact") for i, (n, _) in enumerate(known)])
        finally:
            sink.close()
        assert [r.crm_id for r in results] == [i for _, i in known]  # type: ignore[union-attr]
        assert len(searches(emulator, since)) == 4  # the refused batched SOSL, then one per number
