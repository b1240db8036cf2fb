"""Under a backlog the Salesforce sink writes many events' Tasks and contact updates per sObject Collections
request, through the real engine, simple-salesforce and the emulator, with the same exactly-once guarantees."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from connector.emulators.salesforce.server import SalesforceEmulator
from connector.engine import batch as batching
from connector.ledger import Ledger
from tests.support.delivery import drain, ingest, statuses
from tests.support.salesforce import Engine, client, engine_settings, seed_contacts, tasks, variant


class Crash(BaseException):
    """Stands for the process dying (kill -9) at a crash point: nothing after it runs."""


@pytest.fixture
def emulator() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator() as running:
        yield running


@pytest.fixture
def engine(emulator: SalesforceEmulator, tmp_path: Path) -> Iterator[Engine]:
    yield (running := Engine(engine_settings(emulator, tmp_path)))
    running.close()


def collection_requests(emulator: SalesforceEmulator, since: int = 0) -> list[tuple[str, int]]:
    """(method, number of records) of every sObject Collections request since ``since``."""
    return [
        (r["method"], len(r["body"]["records"]))
        for r in emulator.request_log[since:]
        if r["path"].endswith("/composite/sobjects")
    ]


def dead_reason(ledger: Ledger, event_id: str) -> str:
    [delivery] = ledger.deliveries_for(event_id)
    return str(delivery["dead_reason"])


def test_a_backlog_costs_a_fraction_of_an_api_call_per_event(emulator: SalesforceEmulator, engine: Engine) -> None:
    known = seed_contacts(emulator, 45)
    for i, (phone, _) in enumerate(known):  # first sight of each number: a SOSL each, then warm in the ledger
        ingest(engine.ledger, 1000 + i, sinks=("sf",), end_reason="no_answer", record_phone_number=phone)
    drain(engine.worker)
    before, since = emulator.api_calls(), len(emulator.request_log)
    bundles = {
        "hung_up": "hung_up",
        "schedule_call_back": "callback",
        "do_not_call": "do_not_call",
        "end_call": "conversation_ended",
        "voicemail_detected": "voicemail",
    }
    reasons = list(bundles)
    ids = [
        ingest(engine.ledger, 2000 + i, sinks=("sf",), end_reason=reasons[i % 5], record_phone_number=phone)
        for i, (phone, _) in enumerate(known)
    ]
    drain(engine.worker)
    calls = emulator.api_calls() - before

    assert all(statuses(engine.ledger, e) == ["succeeded"] for e in ids)
    # call Tasks, contact updates, follow-up Tasks: one request each for all 45 events
    assert collection_requests(emulator, since) == [("POST", 45), ("PATCH", 45), ("POST", 9)]
    # plus two reads for do-not-call (tests/test_callbacks_dnc.py): one SOQL finds no open callback Task of the 9
    # do-not-call contacts (so nothing to close), one SOQL reads DoNotCall of the 9 callback contacts
    assert calls == 5 and calls / len(ids) <= 0.12
    for event_id, (_, who), reason in zip(ids, known, [reasons[i % 5] for i in range(45)], strict=True):
        [call] = tasks(emulator, f"2x-{event_id}")
        assert (call["WhoId"], call["Status"], call["TaskSubtype"], call["CallType"]) == (
            who,
            "Completed",
            "Call",
            "Outbound",
        )
        assert call["CallDurationInSeconds"] == 33  # "33" from the template, coerced to the int field
        follow_ups = tasks(emulator, f"2x-{event_id}:task:callback")
        assert len(follow_ups) == (reason == "schedule_call_back")
        assert all(t["WhoId"] == who and t["Status"] == "Not Started" for t in follow_ups)
        contact = emulator.get("Contact", who)
        assert contact["TwoX_Last_Call_Outcome__c"] == bundles[reason]
        assert contact["DoNotCall"] is (reason == "do_not_call")
    assert len(emulator.records("Task")) == 45 * 2 + 9  # the first round's 45, this round's 45, 9 follow-ups


def test_two_numbers_of_one_record_never_share_a_request_and_rank_still_wins(
    emulator: SalesforceEmulator, engine: Engine
) -> None:
    """The engine claims one delivery per number; two numbers of one Lead reach the same batch."""
    lead = client(emulator).Lead.create(
        {"LastName": "Poe", "Company": "Acme", "Phone": "(415) 555-0170", "MobilePhone": "415.555.0171"}
    )["id"]
    office, mobile = "+14155550170", "+14155550171"
    others = seed_contacts(emulator, 3, first=3000)
    for event_id, phone in [(10, office), (11, mobile)]:
        ingest(engine.ledger, event_id, sinks=("sf",), end_reason="no_answer", record_phone_number=phone)
    drain(engine.worker)  # warms the engine's contact cache for both numbers (rounds: 2 PATCH requests)
    since = len(emulator.request_log)
    closed = ingest(engine.ledger, 12, sinks=("sf",), end_reason="not_interested", record_phone_number=office)
    later = ingest(engine.ledger, 13, sinks=("sf",), end_reason="no_answer", record_phone_number=mobile)
    for i, (phone, _) in enumerate(others):
        ingest(engine.ledger, 20 + i, sinks=("sf",), end_reason="hung_up", record_phone_number=phone)
    drain(engine.worker)

    assert all(statuses(engine.ledger, e) == ["succeeded"] for e in [closed, later, "20", "21", "22"])
    # one Lead, three Contacts: the Lead's second update waits for a second request (others resolve by SOSL)
    assert [c for c in collection_requests(emulator, since) if c[0] == "PATCH"] == [("PATCH", 4), ("PATCH", 1)]
    record = emulator.get("Lead", lead)
    # not_interested (rank 50) is not overwritten by the newer no_answer (rank 10); the newer call's fields are
    assert (record["Status"], record["TwoX_Last_Call_Outcome__c"]) == ("Closed - Not Converted", "no_answer")
    [delivery] = engine.ledger.deliveries_for(later)
    update = engine.ledger.deliveries.journal(delivery["id"])["2x-13:contact-update"]
    assert update.result["detail"]["superseded_in_batch"] == ["Status"]
    assert all(len(tasks(emulator, f"2x-{e}")) == 1 for e in [10, 11, 12, 13, 20, 21, 22])


def test_one_bad_event_in_a_batch_fails_alone(emulator: SalesforceEmulator, tmp_path: Path) -> None:
    """A record Salesforce refuses for a reason no field can be left out for (a WhatId that is no id: "id value of incorrect type") is
    dead; the other records of the same sObject Collections request are saved."""
    engine = Engine(engine_settings(emulator, tmp_path, mapping=variant(tmp_path, hung_up="WhatId: bogus")))
    try:
        known = seed_contacts(emulator, 12)
        for i, (phone, _) in enumerate(known):
            ingest(engine.ledger, 100 + i, sinks=("sf",), end_reason="no_answer", record_phone_number=phone)
        drain(engine.worker)
        since = len(emulator.request_log)
        good = [
            ingest(engine.ledger, 200 + i, sinks=("sf",), end_reason="no_answer", record_phone_number=p)
            for i, (p, _) in enumerate(known[1:])
        ]
        bad = ingest(engine.ledger, 299, sinks=("sf",), end_reason="hung_up", record_phone_number=known[0][0])
        drain(engine.worker)
        assert all(statuses(engine.ledger, e) == ["succeeded"] for e in good)
        assert statuses(engine.ledger, bad) == ["dead"] and "id value of incorrect type" in dead_reason(
            engine.ledger, bad
        )
        assert tasks(emulator, f"2x-{bad}") == [] and all(len(tasks(emulator, f"2x-{e}")) == 1 for e in good)
        # the bad event's contact is untouched; the others got their update in one request
        assert emulator.get("Contact", known[0][1])["TwoX_Last_Call_Outcome__c"] == "no_answer"
        creates = [c for c in collection_requests(emulator, since) if c[0] == "POST"]
        assert creates == [("POST", 12)]
        one_by_one = [r for r in emulator.request_log[since:] if r["path"].endswith("/composite")]
        assert one_by_one == []
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("extra", "field", "code"),
    [
        ("CallType: Sideways", "CallType", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),  # Salesforce names the field
        ("IsReminderSet: maybe", "IsReminderSet", "WRONG_TYPE"),  # it would not: JSON_PARSER_ERROR for the request
    ],
)
def test_a_value_the_field_cannot_take_costs_that_field_not_the_call(
    emulator: SalesforceEmulator, tmp_path: Path, extra: str, field: str, code: str
) -> None:
    """Both used to dead-letter the call, and a do-not-call in the same Composite with it: now the value is left
    out, named with its code in the audit trail, and the rest of the call lands."""
    engine = Engine(engine_settings(emulator, tmp_path, mapping=variant(tmp_path, do_not_call=extra)))
    try:
        known = seed_contacts(emulator, 4)
        events = []
        for group in (known[:1], known[1:]):  # one event alone (a Composite request), then three (Collections)
            events += [
                ingest(
                    engine.ledger,
                    300 + len(events) + i,
                    sinks=("sf",),
                    end_reason="do_not_call",
                    record_phone_number=phone,
                )
                for i, (phone, _) in enumerate(group)
            ]
            drain(engine.worker)
        for event_id, (_, contact_id) in zip(events, known, strict=True):
            assert statuses(engine.ledger, event_id) == ["succeeded"]
            assert emulator.get("Contact", contact_id)["DoNotCall"] is True
            [task] = tasks(emulator, f"2x-{event_id}")
            assert task[field] != "Sideways" and task[field] != "maybe"
            [delivery] = engine.ledger.deliveries_for(event_id)
            activity = engine.ledger.deliveries.journal(delivery["id"])[f"2x-{event_id}:activity"]
            assert activity.result["detail"]["skipped_fields"] == {field: code}
    finally:
        engine.close()


def test_a_crash_after_the_collection_is_looked_up_never_duplicated(
    emulator: SalesforceEmulator, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = seed_contacts(emulator, 8)
    for i, (phone, _) in enumerate(known):
        ingest(engine.ledger, 400 + i, sinks=("sf",), end_reason="no_answer", record_phone_number=phone)
    drain(engine.worker)
    ids = [
        ingest(engine.ledger, 500 + i, sinks=("sf",), end_reason="schedule_call_back", record_phone_number=p)
        for i, (p, _) in enumerate(known)
    ]

    def die_after_the_crm_call(name: str) -> None:
        if name == "after_crm_call":
            raise Crash(name)

    monkeypatch.setattr(batching, "crash_point", die_after_the_crm_call)
    claimed = engine.ledger.deliveries.claim(engine.worker.id, ["sf"], limit=50, lease_s=0.1)
    with pytest.raises(Crash):  # the call Tasks are saved; the journal still says in flight
        engine.worker._runner.run_many(claimed)  # the dying worker's runner
    monkeypatch.undo()
    assert all(len(tasks(emulator, f"2x-{e}")) == 1 for e in ids)
    engine.restart()
    time.sleep(0.2)
    assert engine.ledger.deliveries.sweep_expired() == len(ids)
    since = len(emulator.request_log)
    drain(engine.worker)

    assert all(statuses(engine.ledger, e) == ["succeeded"] for e in ids)
    assert all(len(tasks(emulator, f"2x-{e}")) == len(tasks(emulator, f"2x-{e}:task:callback")) == 1 for e in ids)
    lookups = [
        r for r in emulator.request_log[since:] if r["path"].endswith("/query/") and "CallObject" in str(r["query"])
    ]
    assert len(lookups) == len(ids)  # each in-flight call Task found by its CallObject
    assert collection_requests(emulator, since) == [("PATCH", 8), ("POST", 8)]  # updates and follow-ups only


def test_a_lost_answer_is_looked_up_by_the_quick_retry(
    emulator: SalesforceEmulator, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = seed_contacts(emulator, 10)
    for i, (phone, _) in enumerate(known):
        ingest(engine.ledger, 600 + i, sinks=("sf",), end_reason="no_answer", record_phone_number=phone)
    drain(engine.worker)
    ids = [
        ingest(engine.ledger, 700 + i, sinks=("sf",), end_reason="hung_up", record_phone_number=p)
        for i, (p, _) in enumerate(known)
    ]
    http = engine.sink.connection._http
    assert http is not None
    real, lost = http.request, []

    def commit_then_time_out(method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        answer = real(method, url, *args, **kwargs)
        if method == "POST" and url.endswith("/composite/sobjects") and not lost:
            lost.append(url)
            raise requests.ReadTimeout("read timed out")  # Salesforce saved the Tasks; we never heard
        return answer

    monkeypatch.setattr(http, "request", commit_then_time_out)
    since = len(emulator.request_log)
    drain(engine.worker)

    assert lost and all(statuses(engine.ledger, e) == ["succeeded"] for e in ids)
    assert all(len(tasks(emulator, f"2x-{e}")) == 1 for e in ids)
    [lookup] = [r for r in emulator.request_log[since:] if r["path"].endswith("/query/")]  # one SOQL for all ten
    assert all(f"'2x-{e}'" in lookup["query"]["q"][0] for e in ids)
    assert collection_requests(emulator, since) == [("POST", 10), ("PATCH", 10)]  # never sent twice
