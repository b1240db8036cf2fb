"""The HubSpot sink with the real hubspot-api-client v12 over loopback HTTP against the HubSpot emulator.

Why the real SDK and real plans: the SDK's per-module exceptions, silent None on unexpected statuses and request
shapes, and the planner's actual actions, are what production runs; a mock would hide exactly those mismatches.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import hubspot
import pytest
import urllib3
from hubspot.crm.contacts import SimplePublicObjectInputForCreate

from connector.default_mappings import default_mapping_path
from connector.emulators.hubspot.server import HubSpotEmulator
from connector.engine.worker import Worker
from connector.errors import AuthError, OutcomeUnknown, PermanentError, RateLimited, TransientError
from connector.ledger import Ledger
from connector.mapping.planner import plan_event
from connector.payload import parse_webhook
from connector.plan import CreateActivity, CreateTask, Plan, ResolveContact, UpdateContact
from connector.sample import sample_payload
from connector.sinks.base import ExecutionContext
from connector.sinks.hubspot.contacts import hubspot_properties
from connector.sinks.hubspot.sink import HubSpotSink
from tests.support.delivery import drain, ingest, statuses
from tests.support.hubspot import (
    CALL_TIME,
    MAPPING,
    SEEDED,
    TOKEN,
    CountingGate,
    calls_of,
    engine_settings,
    make_plan,
    open_sink,
    run,
    seeded_portal,
)

GUID = MAPPING.spec.constants["dispositions"]


@pytest.fixture
def emulator() -> Iterator[HubSpotEmulator]:
    """A fresh portal per test (tests.support.hubspot.seeded_portal)."""
    with seeded_portal() as running:
        yield running


@pytest.fixture
def sink(emulator: HubSpotEmulator) -> Iterator[HubSpotSink]:
    opened = open_sink(emulator)
    yield opened
    opened.close()


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)  # Python 3.11 reads "Z"


# -- what each outcome does to the CRM -------------------------------------------------------------

OUTCOMES = [  # (overrides, bundle, hs_lead_status, hs_call_status, disposition, extra contact properties)
    (
        {"end_reason": "do_not_call"},
        "do_not_call",
        "UNQUALIFIED",
        "COMPLETED",
        "connected",
        {"twox_do_not_call": "true"},
    ),
    (
        {"end_reason": "wrong_number"},
        "wrong_number",
        "UNQUALIFIED",
        "COMPLETED",
        "wrong_number",
        {"twox_wrong_number": "true"},
    ),
    ({"end_reason": "call_transferred"}, "transferred", "CONNECTED", "COMPLETED", "connected", {}),
    ({"end_reason": "schedule_call_back"}, "callback", "IN_PROGRESS", "COMPLETED", "connected", {}),
    ({"end_reason": "not_interested"}, "not_interested", "UNQUALIFIED", "COMPLETED", "connected", {}),
    ({"end_reason": "end_call"}, "conversation_ended", "CONNECTED", "COMPLETED", "connected", {}),
    ({"end_reason": "hung_up"}, "hung_up", "ATTEMPTED_TO_CONTACT", "COMPLETED", "connected", {}),
    (
        {"end_reason": "voicemail_detected", "message_left": "Y"},
        "voicemail_left",
        "ATTEMPTED_TO_CONTACT",
        "COMPLETED",
        "left_voicemail",
        {},
    ),
    ({"end_reason": "voicemail_detected"}, "voicemail", "ATTEMPTED_TO_CONTACT", "NO_ANSWER", "no_answer", {}),
    ({"end_reason": "no_answer"}, "no_answer", "ATTEMPTED_TO_CONTACT", "NO_ANSWER", "no_answer", {}),
    (
        {"failure_reason": "invalid_number"},
        "invalid_number",
        "UNQUALIFIED",
        "FAILED",
        "wrong_number",
        {"twox_number_invalid": "true"},
    ),
    ({"failure_reason": "unreachable"}, "unreachable", "ATTEMPTED_TO_CONTACT", "FAILED", "no_answer", {}),
    ({"end_reason": "alien_reason"}, "unrecognized", "NEW", "COMPLETED", "connected", {}),  # status unchanged
]


@pytest.mark.parametrize(
    ("overrides", "bundle", "lead_status", "call_status", "disposition", "extra"),
    OUTCOMES,
    ids=[o[1] for o in OUTCOMES],
)
def test_each_outcome_lands_the_documented_state(
    emulator: HubSpotEmulator,
    sink: HubSpotSink,
    overrides: dict[str, Any],
    bundle: str,
    lead_status: str,
    call_status: str,
    disposition: str,
    extra: dict[str, str],
) -> None:
    document = sample_payload(77, **{k: v for k, v in overrides.items() if k != "failure_reason"})
    if "failure_reason" in overrides:
        document["call"].update(failure_reason=overrides["failure_reason"], answered=False, duration=0)
    plan = plan_event(parse_webhook(document), MAPPING, sink="hs", call_time=CALL_TIME)
    context = run(sink, plan)

    assert context.contact().crm_id == SEEDED and not context.contact().created  # "(202) 555-0143" found
    assert len(emulator.objects("contacts")) == 4  # the seed: nothing created
    contact = emulator.get("contacts", SEEDED)["properties"]
    assert contact["hs_lead_status"] == lead_status
    assert contact["twox_last_call_outcome"] == bundle and instant(contact["twox_last_call_at"]) == CALL_TIME
    assert contact["twox_workflow_ended"] == "true" and contact["twox_q_case_number"] == "8057"
    assert {k: contact.get(k) for k in extra} == extra
    [call] = calls_of(emulator, 77)
    assert call["associations"] == {"contacts": [SEEDED]}
    props = call["properties"]
    assert (props["hs_call_status"], props["hs_call_disposition"]) == (call_status, GUID[disposition])
    assert props["hs_call_duration"] == ("0" if "failure_reason" in overrides else "33000")
    assert "Hi, is John available?" in props["hs_call_body"] and instant(props["hs_timestamp"]) == CALL_TIME
    if bundle == "unrecognized":
        assert "alien_reason" in props["hs_call_title"]
    tasks = emulator.objects("tasks")
    if bundle != "callback":
        assert tasks == []
        return
    [task] = tasks
    planned = next(a for a in plan.actions if isinstance(a, CreateTask))
    assert task["associations"] == {"contacts": [SEEDED]} and task["properties"]["twox_task_key"] == planned.key
    assert instant(task["properties"]["hs_timestamp"]) == planned.due  # lead-local 10:00 next business day
    assert planned.due.isoformat() == "2026-11-27T10:00:00-05:00" and task["properties"]["hs_task_type"] == "CALL"
    assert instant(contact["twox_callback_due"]) == planned.due


# -- request economy ----------------------------------------------------------------------------------


def test_a_known_contact_costs_two_requests_per_event(emulator: HubSpotEmulator) -> None:
    """The issue's goal: resolve from the cache + create call + patch contact. Every request passed the gate."""
    gate = CountingGate()
    sink = open_sink(emulator, gate=gate)
    per_event = []
    for event_id, reason in [(1, "hung_up"), (2, "no_answer"), (3, "end_call"), (4, "schedule_call_back")]:
        emulator.reset_counters()
        run(sink, make_plan(event_id, end_reason=reason))
        per_event.append([(r.method, r.path) for r in emulator.request_log])
    assert per_event[0] == [
        ("POST", "/crm/v3/objects/contacts/search"),
        ("POST", "/crm/v3/objects/calls"),
        ("PATCH", f"/crm/v3/objects/contacts/{SEEDED}"),
    ]  # cold: one search
    assert per_event[1] == per_event[2] == per_event[0][1:]  # warm: 2 requests
    assert [p for _, p in per_event[3]] == [*[p for _, p in per_event[0][1:]], "/crm/v3/objects/tasks"]  # + task
    assert gate.waits == 3 + 2 + 2 + 3

    other = open_sink(emulator)  # another process: a meta contact id is checked once, then trusted
    counts = []
    for event_id in (5, 6):
        emulator.reset_counters()
        run(other, make_plan(event_id, meta={"hubspot_contact_id": "1002"}))
        counts.append(emulator.request_count())
    assert counts == [3, 2] and len(calls_of(emulator, 6)) == 1
    assert emulator.associations("calls", calls_of(emulator, 6)[0]["id"], "contacts") == ["1002"]


def test_bad_meta_ids_fall_back_to_the_phone(emulator: HubSpotEmulator, sink: HubSpotSink) -> None:
    """A wrong id must not attach the call to nothing, nor dead-letter a call the phone number can place."""
    for event_id, bad in [(11, "999999"), (12, "not-an-id")]:
        emulator.reset_counters()
        context = run(sink, make_plan(event_id, meta={"hubspot_contact_id": bad}))
        assert context.contact().crm_id == SEEDED and context.contact().detail["matched_by"] == "phone"
        assert emulator.request_count(path_prefix="/crm/v3/objects/contacts/999999") == (1 if bad.isdigit() else 0)


def test_a_new_number_creates_one_contact_despite_search_lag(emulator: HubSpotEmulator, sink: HubSpotSink) -> None:
    emulator.set_search_lag(30)  # nothing written now is searchable during this test
    first = run(sink, make_plan(21, record_phone_number="+13035550123"))
    second = run(sink, make_plan(22, record_phone_number="+13035550123"))
    created = first.contact()
    assert created.created and not second.contact().created and second.contact().crm_id == created.crm_id
    new = [c for c in emulator.objects("contacts") if c["properties"].get("phone") == "+13035550123"]
    assert [c["id"] for c in new] == [created.crm_id]
    assert new[0]["properties"]["firstname"] == "John" and new[0]["properties"]["hs_lead_status"] == "CONNECTED"
    both = [calls_of(emulator, event_id)[0]["id"] for event_id in (21, 22)]
    assert emulator.associations("contacts", created.crm_id, "calls") == both


def test_an_existing_email_is_the_contact(emulator: HubSpotEmulator, sink: HubSpotSink) -> None:
    """HubSpot's 409 "Contact already exists. Existing ID: N" on create means found, not failed."""
    resolve = make_plan(23, record_phone_number="+13035550124").actions[0]
    resolve = resolve.model_copy(update={"create_properties": {"email": "maria.garcia@example.com"}})
    result = sink.execute(resolve, ExecutionContext())
    assert (result.crm_id, result.created) == (SEEDED, False)


def test_skip_when_no_contact_matches(sink: HubSpotSink) -> None:
    resolve = make_plan(24, record_phone_number="+13035550125").actions[0].model_copy(update={"on_no_match": "skip"})
    assert sink.execute(resolve, ExecutionContext()).skipped


# -- never twice -----------------------------------------------------------------------------------


def test_redelivery_finds_the_first_call_and_task(emulator: HubSpotEmulator, sink: HubSpotSink) -> None:
    """After a crash right after the POSTs, another process's lookup finds them although search lags."""
    plan = make_plan(31, end_reason="schedule_call_back")
    context = run(sink, plan)
    emulator.set_search_lag(30)
    other = open_sink(emulator)
    restarted = ExecutionContext(results={plan.actions[0].key: context.contact()})
    for action in plan.actions:
        if isinstance(action, (CreateActivity, CreateTask)):
            found = other.lookup(action, restarted)
            assert found is not None and found.crm_id == context.results[action.key].crm_id
    assert other.lookup(make_plan(32).actions[1], restarted) is None  # never written: None, so it is written
    assert len(calls_of(emulator, 31)) == 1 and len(emulator.objects("tasks")) == 1


def test_a_lost_response_is_looked_up_before_writing_again(
    emulator: HubSpotEmulator, sink: HubSpotSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HubSpot wrote the call but the answer never arrived (read timeout): the engine's quick retry calls execute
    again without a lookup, so the sink looks it up itself."""
    emulator.set_search_lag(30)
    plan = make_plan(33)
    context = run(sink, Plan.model_validate({**plan.model_dump(), "actions": plan.actions[:1]}))
    real_create = sink.api._basic.create

    def create_then_time_out(*args: Any, **kwargs: Any) -> Any:
        real_create(*args, **kwargs)
        raise urllib3.exceptions.ReadTimeoutError(None, "/crm/v3/objects/calls", "Read timed out.")

    monkeypatch.setattr(sink.api._basic, "create", create_then_time_out)
    with pytest.raises(TransientError):
        sink.execute(plan.actions[1], context)
    monkeypatch.setattr(sink.api._basic, "create", real_create)
    again = sink.execute(plan.actions[1], context)
    assert again.detail == {"found_by": "associations"} and [c["id"] for c in calls_of(emulator, 33)] == [again.crm_id]


# -- errors ----------------------------------------------------------------------------------------


def test_rate_limits_say_how_long_to_wait() -> None:
    with HubSpotEmulator(tokens=[TOKEN], rate_limit=2, search_rate_per_s=1) as limited:
        sink = open_sink(limited)
        resolve = make_plan(41).actions[0]
        sink.execute(resolve, ExecutionContext())
        with pytest.raises(RateLimited) as caught:  # the search API's own per-second limit
            sink.execute(
                resolve.model_copy(update={"match": [resolve.match[0].model_copy(update={"e164": "+14155550100"})]}),
                ExecutionContext(),
            )
        assert caught.value.retry_after == 1.0 and caught.value.status == 429
        sink.check_auth()
        sink.check_auth()
        with pytest.raises(RateLimited) as caught:  # the 10-second burst limit, no Retry-After: one window
            sink.check_auth()
        assert caught.value.retry_after == 10.0 and caught.value.code == "TEN_SECONDLY_ROLLING"
        assert "ten_secondly_rolling" in (caught.value.crm_message or "")


def test_429_with_retry_after_and_server_errors(emulator: HubSpotEmulator, sink: HubSpotSink) -> None:
    emulator.fail_next(1, status=429, retry_after=3)
    with pytest.raises(RateLimited) as limited:
        sink.check_auth()
    assert limited.value.retry_after == 3.0
    for status, code, wait in [(503, "SERVICE_UNAVAILABLE", None), (502, "BAD_GATEWAY", None), (423, "LOCKED", 2.0)]:
        emulator.fail_next(1, status=status)
        with pytest.raises(TransientError) as caught:
            sink.check_auth()
        assert type(caught.value) is (OutcomeUnknown if status >= 500 else TransientError)  # 5xx: may have written
        assert (caught.value.status, caught.value.code, caught.value.retry_after) == (status, code, wait)
    closed = open_sink(emulator)
    emulator.stop()
    with pytest.raises(TransientError, match="unreachable") as refused:
        closed.check_auth()
    assert not isinstance(refused.value, OutcomeUnknown)  # never connected: nothing can have been written


def test_values_are_hubspot_strings() -> None:
    assert hubspot_properties({"a": True, "b": False, "c": None, "d": 33000.0, "e": 1.5, "f": 7, "g": "x"}) == {
        "a": "true",
        "b": "false",
        "c": "",
        "d": "33000",
        "e": "1.5",
        "f": "7",
        "g": "x",
    }


def test_an_unknown_property_costs_only_that_property(emulator: HubSpotEmulator, sink: HubSpotSink) -> None:
    """Question auto-creation off: the missing property is left out and named (code only, never the answer);
    the call, the other contact properties and the rest of the event land in the same run."""
    sink.settings = sink.settings.model_copy(update={"auto_create_question_properties": False})
    plan = make_plan(51, question_fields={"favourite_colour": "blue"})
    context = run(sink, plan)
    [update] = [a for a in plan.actions if isinstance(a, UpdateContact)]
    result = context.results[update.key]
    assert result.detail["skipped_fields"] == {"twox_q_favourite_colour": "PROPERTY_DOESNT_EXIST"}
    assert "twox_q_favourite_colour" not in result.detail["fields"] and "blue" not in str(result.detail)
    contact = emulator.get("contacts", SEEDED)["properties"]
    assert contact["twox_last_call_outcome"] and "twox_q_favourite_colour" not in contact
    assert len(calls_of(emulator, 51)) == 1


def test_bad_token_pauses_until_check_auth_passes(emulator: HubSpotEmulator) -> None:
    sink = open_sink(emulator, token="revoked")
    with pytest.raises(AuthError) as caught:
        run(sink, make_plan(61))
    assert (caught.value.status, caught.value.code) == (401, "INVALID_AUTHENTICATION")
    with pytest.raises(AuthError):
        sink.check_auth()
    emulator.set_tokens([TOKEN, "revoked"])
    sink.check_auth()
    emulator.fail_next(1, status=403)  # e.g. MISSING_SCOPES: configuration, the same for every event: pause
    with pytest.raises(AuthError):
        sink.check_auth()


# -- several contacts share the number ------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["oldest", "most_recently_active", "hold"])
def test_several_contacts_share_the_number(emulator: HubSpotEmulator, sink: HubSpotSink, policy: str) -> None:
    client = hubspot.Client.create(access_token=TOKEN, host=emulator.url).crm.contacts.basic_api
    older = client.create(SimplePublicObjectInputForCreate(properties={"phone": "303-555-0177"})).id
    time.sleep(0.01)
    newer = client.create(SimplePublicObjectInputForCreate(properties={"mobilephone": "(303) 555 0177"})).id
    resolve = make_plan(71, record_phone_number="+13035550177").actions[0]
    assert isinstance(resolve, ResolveContact)
    resolve = resolve.model_copy(update={"on_multiple": policy})
    if policy == "hold":
        with pytest.raises(PermanentError) as caught:
            sink.execute(resolve, ExecutionContext())
        assert caught.value.code == "AMBIGUOUS_CONTACT" and older in (caught.value.crm_message or "")
        return
    chosen = sink.execute(resolve, ExecutionContext())
    assert chosen.crm_id == (older if policy == "oldest" else newer) and chosen.detail["candidates"] == 2


# -- through the real engine ----------------------------------------------------------------------------


def test_the_engine_delivers_through_the_sink(emulator: HubSpotEmulator, tmp_path: Path) -> None:
    """Through the real worker, the `hubspot` entry point and a SQLite ledger."""
    settings = engine_settings(emulator, tmp_path)
    ledger = Ledger.open(settings.store)
    worker = Worker(settings, ledger=ledger)
    worker.open()
    try:
        first = ingest(ledger, 81, sinks=("hs",), end_reason="not_interested")
        emulator.fail_next(3, status=503, path_contains="/objects/calls")  # beyond the quick retry: rescheduled
        drain(worker)
        later = ingest(ledger, 82, sinks=("hs",), end_reason="no_answer")  # lower rank: status must not move back
        drain(worker)
        assert statuses(ledger, first) == statuses(ledger, later) == ["succeeded"]
        attempts = ledger.deliveries.attempts_for(ledger.deliveries_for(first)[0]["id"])
        assert [a["outcome"] for a in attempts] == ["retry", "succeeded"]  # the retry looked up, then wrote once
    finally:
        worker.close()
        ledger.dispose()
    assert len(calls_of(emulator, 81)) == len(calls_of(emulator, 82)) == 1
    contact = emulator.get("contacts", SEEDED)["properties"]
    assert contact["hs_lead_status"] == "UNQUALIFIED" and contact["twox_last_call_outcome"] == "no_answer"


def test_a_contact_deleted_after_it_was_cached_is_resolved_again(emulator: HubSpotEmulator, tmp_path: Path) -> None:
    """The shared contact cache points at a contact someone deleted: the engine forgets it and resolves again."""
    settings = engine_settings(emulator, tmp_path)
    ledger = Ledger.open(settings.store)
    worker = Worker(settings, ledger=ledger)
    worker.open()
    try:
        first = ingest(ledger, 91, sinks=("hs",), end_reason="no_answer", record_phone_number="+13125550111")
        drain(worker)
        [created] = [c for c in emulator.objects("contacts") if c["properties"].get("phone") == "+13125550111"]
        emulator_delete(emulator, created["id"])
        second = ingest(ledger, 92, sinks=("hs",), end_reason="hung_up", record_phone_number="+13125550111")
        drain(worker)
        assert statuses(ledger, first) == statuses(ledger, second) == ["succeeded"]
        outcomes = [a["outcome"] for a in ledger.deliveries.attempts_for(ledger.deliveries_for(second)[0]["id"])]
        assert outcomes == ["retry", "succeeded"]
    finally:
        worker.close()
        ledger.dispose()
    live = [c for c in emulator.objects("contacts") if c["properties"].get("phone") == "+13125550111"]
    assert len(live) == 1 and live[0]["id"] != created["id"]
    assert len(calls_of(emulator, 92)) == 1


def emulator_delete(emulator: HubSpotEmulator, contact_id: str) -> None:
    import requests

    answer = requests.delete(
        f"{emulator.url}/crm/v3/objects/contacts/{contact_id}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    assert answer.status_code == 204


def test_a_new_question_gets_its_property_created_once(tmp_path: Path) -> None:
    """Answers to a question nobody set up yet still land: the sink creates `twox_q_<name>` (text) once."""
    with HubSpotEmulator(
        tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None, seed_custom_properties=True
    ) as fresh:
        settings = engine_settings(fresh, tmp_path)
        ledger = Ledger.open(settings.store)
        worker = Worker(settings, ledger=ledger)
        worker.open()
        try:
            first = ingest(ledger, 95, sinks=("hs",), question_fields={"Favourite Colour": "blue"})
            second = ingest(
                ledger,
                96,
                sinks=("hs",),
                question_fields={"Favourite Colour": "red"},
                record_phone_number="+13125550122",
            )
            drain(worker)
            assert statuses(ledger, first) == statuses(ledger, second) == ["succeeded"]
        finally:
            worker.close()
            ledger.dispose()
        created = fresh.properties("contacts")["twox_q_favourite_colour"]
        assert (created["type"], created["fieldType"], created["groupName"]) == ("string", "text", "twox")
        assert fresh.get("contacts", SEEDED)["properties"]["twox_q_favourite_colour"] == "blue"
        assert fresh.request_count(path_prefix="/crm/v3/properties/contacts", method="POST") == 2  # group + property


def test_a_missing_property_outside_the_connector_namespace_is_skipped_not_created(tmp_path: Path) -> None:
    mapping = default_mapping_path("hubspot").read_text().replace("twox_last_call_outcome:", "custom_status_field:")
    (tmp_path / "m.yaml").write_text(mapping)
    with HubSpotEmulator(
        tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None, seed_custom_properties=True
    ) as fresh:
        settings = engine_settings(fresh, tmp_path, mapping=str(tmp_path / "m.yaml"))
        ledger = Ledger.open(settings.store)
        worker = Worker(settings, ledger=ledger)
        worker.open()
        try:
            event = ingest(ledger, 97, sinks=("hs",))
            drain(worker)
            [delivery] = ledger.deliveries_for(event)
            missing = [(m.object, m.field, m.code) for m in ledger.sinks.missing("hs")]
        finally:
            worker.close()
            ledger.dispose()
        assert delivery["status"] == "succeeded"
        assert missing == [("contacts", "custom_status_field", "PROPERTY_DOESNT_EXIST")]
        assert "custom_status_field" not in fresh.properties("contacts")  # a typo never creates junk
        assert fresh.get("contacts", SEEDED)["properties"]["twox_last_call_at"]
