"""Schema drift costs the refused field only, never the call: an org/portal loses a connector field after set-up,
and every event still lands (call, do-not-call, wrong number, callback) through the real engine, the real clients
and the emulators, on SQLite and PostgreSQL; the field is named everywhere an operator looks, and a replay after
re-creating it fills it without breaking precedence."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import hubspot
import pytest
import requests
import yaml
from click.testing import CliRunner

from connector.cli import main
from connector.config import HubSpotSinkSettings, Settings, parse_settings
from connector.emulators.hubspot.server import HubSpotEmulator
from connector.emulators.salesforce.server import SalesforceEmulator
from connector.engine.worker import Worker
from connector.ledger import Ledger
from tests.support.delivery import drain, ingest, journal, statuses
from tests.support.hubspot import SEEDED, TOKEN, make_plan, run
from tests.support.salesforce import seed_contacts, tasks
from tests.support.serving import Served, serve

MIXED = ["do_not_call", "wrong_number", "schedule_call_back", "no_answer", "hung_up", "end_call"]
WORKER = {
    "poll_interval_s": 0.05,
    "auth_probe_s": 1,
    "lease_s": 10,
    "batch_size": 50,
    "retry": {"schedule_s": [0.2, 0.2], "jitter": 0, "quick_retries": 1, "quick_wait_s": 0.01},
}


def settings_for(store_url: str, sink: dict[str, Any]) -> Settings:
    return parse_settings(
        {
            "receiver": {"auth": {"tokens": ["t" * 32]}},
            "store": {"url": store_url},
            "sinks": {"crm": sink},
            "worker": WORKER,
        },
        source="t",
        base_dir=Path("."),
        environ={},
    )


def sf_sink(emulator: SalesforceEmulator, **extra: Any) -> dict[str, Any]:
    return {
        "type": "salesforce",
        "instance_url": emulator.instance_url,
        "ca_bundle": emulator.ca_file,
        "auth": {"session_id": emulator.session_id},
        **extra,
    }


def hs_sink(emulator: HubSpotEmulator, **extra: Any) -> dict[str, Any]:
    return {"type": "hubspot", "access_token": TOKEN, "base_url": emulator.url, **extra}


def cli(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.fixture
def sf() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator() as running:
        yield running


@pytest.fixture
def hs() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(
        tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None, seed_custom_properties=True
    ) as running:
        yield running


def probe(worker: Worker) -> None:
    """Let the paused sink's probe run (auth_probe_s is 1 s here)."""
    time.sleep(1.1)
    worker.run_once()


def archive_property(emulator: HubSpotEmulator, name: str) -> None:
    """What an admin deleting the property does: ``DELETE /crm/v3/properties/contacts/{name}``."""
    client = hubspot.Client.create(access_token=TOKEN, host=emulator.url)
    client.crm.properties.core_api.archive("contacts", name)


def recreate_property(emulator: HubSpotEmulator, name: str, type_: str = "string", field_type: str = "text") -> None:
    from hubspot.crm.properties import PropertyCreate

    client = hubspot.Client.create(access_token=TOKEN, host=emulator.url)
    client.crm.properties.core_api.create(
        "contacts", PropertyCreate(name=name, label=name, type=type_, field_type=field_type, group_name="twox")
    )


def surfaces(
    settings: Settings, ledger: Ledger, tmp_path: Path, store_url: str, sink: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """What `connector status`, /readyz and /metrics say about the sink ``crm``."""
    config = tmp_path / "drift.yaml"
    config.write_text(
        yaml.safe_dump(
            {"receiver": {"auth": {"tokens": ["t" * 32]}}, "store": {"url": store_url}, "sinks": {"crm": sink}}
        )
    )
    status = cli("status", "--json", "--config", str(config))["sinks"]["crm"]
    text = CliRunner().invoke(main, ["status", "--config", str(config)], catch_exceptions=False).stdout
    row = next(line for line in text.splitlines() if line.startswith("crm "))
    if status["warning"] and not status["paused"]:
        assert "missing fields" in row and status["warning"] in row, text  # the table says it too
    serving = serve(settings, ledger)
    served: Served = next(serving)
    try:
        ready = requests.get(served.base_url + "/readyz", timeout=5)
        metrics = requests.get(served.base_url + "/metrics", timeout=5).text
    finally:
        serving.close()
    assert ready.status_code == 200 and ready.json()["status"] == "ready"  # a warning, not "not ready"
    return status, ready.json()["sinks"]["crm"], metrics


# -- Salesforce ------------------------------------------------------------------------------------------------


def test_salesforce_field_deleted_after_setup_costs_that_field_only(
    sf: SalesforceEmulator, ledger: Ledger, store_url: str, tmp_path: Path
) -> None:
    sink = sf_sink(sf)
    settings = settings_for(store_url, sink)
    worker = Worker(settings, ledger=ledger)
    worker.open()
    try:
        known = seed_contacts(sf, 8)
        for i, (phone, _) in enumerate(known):  # set-up era: contacts resolved and cached
            ingest(ledger, 100 + i, sinks=("crm",), end_reason="no_answer", record_phone_number=phone)
        drain(worker)
        sf.delete_field("Contact", "TwoX_Last_Call_Outcome__c")

        batch = [
            ingest(ledger, 200 + i, sinks=("crm",), end_reason=MIXED[i % 6], record_phone_number=phone)
            for i, (phone, _) in enumerate(known[:6])
        ]
        drain(worker)  # a backlog: sObject Collections
        single = []
        for i, (phone, _) in enumerate(known[:6]):  # one at a time: the Composite path
            single.append(ingest(ledger, 300 + i, sinks=("crm",), end_reason=MIXED[i], record_phone_number=phone))
            drain(worker)
        older = ingest(ledger, 400, sinks=("crm",), end_reason="hung_up", record_phone_number=known[7][0])
        drain(worker)
        newer = ingest(ledger, 401, sinks=("crm",), end_reason="end_call", record_phone_number=known[7][0])
        drain(worker)

        events = batch + single + [older, newer]
        assert all(statuses(ledger, e) == ["succeeded"] for e in events)
        assert all(len(tasks(sf, f"2x-{e}")) == 1 for e in events)  # every call logged once
        for event_id, reason, (_, contact_id) in [
            *zip(batch, MIXED, known[:6], strict=True),
            *zip(single, MIXED, known[:6], strict=True),
        ]:
            contact = sf.get("Contact", contact_id)
            assert contact is not None and "TwoX_Last_Call_Outcome__c" not in contact
            if reason == "do_not_call":
                assert contact["DoNotCall"] is True
            if reason == "wrong_number":
                assert contact["TwoX_Wrong_Number__c"] is True
            if reason == "schedule_call_back":
                assert len(tasks(sf, f"2x-{event_id}:task:callback")) == 1
            update = journal(ledger, event_id)[f"2x-{event_id}:contact-update"]
            assert update["detail"]["skipped_fields"] == {"TwoX_Last_Call_Outcome__c": "INVALID_FIELD"}
            assert "TwoX_Last_Call_Outcome__c" not in update["detail"]["fields"]

        status, ready, metrics = surfaces(settings, ledger, tmp_path, store_url, sink)
        assert status["missing_fields"] == {"Contact.TwoX_Last_Call_Outcome__c": "INVALID_FIELD"}
        assert "Contact.TwoX_Last_Call_Outcome__c" in status["warning"] and "crm-setup" in status["warning"]
        assert "Contact.TwoX_Last_Call_Outcome__c" in ready["warning"] and ready["paused"] is False
        assert 'connector_sink_missing_fields{sink="crm"} 1.0' in metrics
        [kept] = ledger.sinks.written("crm", f"Contact:{known[7][1]}", ["TwoX_Last_Call_Outcome__c"]).values()
        assert kept.event_id not in (older, newer)  # skipped fields are not recorded as written (precedence)

        sf.restore_field("Contact", "TwoX_Last_Call_Outcome__c")  # what crm-setup does
        config = tmp_path / "drift.yaml"
        for event_id in [newer, older, *single]:  # the newer call first: the older one must not overwrite it
            cli("replay", "--config", str(config), "--event", event_id)
            drain(worker)
        assert sf.get("Contact", known[7][1])["TwoX_Last_Call_Outcome__c"] == "conversation_ended"
        for event_id, (_, contact_id), reason in zip(single, known[:6], MIXED, strict=True):
            outcome = sf.get("Contact", contact_id)["TwoX_Last_Call_Outcome__c"]
            assert outcome, reason
            update = journal(ledger, event_id)[f"2x-{event_id}:contact-update"]
            assert "skipped_fields" not in update["detail"]
            assert "TwoX_Last_Call_Outcome__c" in update["detail"]["fields"]
        assert all(len(tasks(sf, f"2x-{e}")) == 1 for e in events)  # the replay wrote no call twice
        assert ledger.sinks.missing("crm") == []  # written again: the warning is gone
    finally:
        worker.close()


def test_hubspot_an_answer_that_is_no_date_costs_its_property_not_the_do_not_call(
    hs: HubSpotEmulator, ledger: Ledger, store_url: str, tmp_path: Path
) -> None:
    """`question_fields.map: {demo_date: {property: demo_date}}` on a date property: "next Tuesday" is HubSpot's 400
    INVALID_LONG for the whole update, which dead-lettered the call with its do-not-call. Now the property is left
    out and named in the audit trail; single and batch paths alike."""
    from connector.default_mappings import default_mapping_path

    recreate_property(hs, "demo_date", type_="date", field_type="date")
    mapping = tmp_path / "dates.yaml"
    mapping.write_text(
        default_mapping_path("hubspot").read_text().replace("  map: {}", "  map: {demo_date: {property: demo_date}}", 1)
    )
    worker = Worker(settings_for(store_url, hs_sink(hs, mapping=str(mapping))), ledger=ledger)
    worker.open()
    phones = [f"+1312555{4000 + i:04d}" for i in range(4)]
    try:
        answers = ["next Tuesday", "2026-12-08", "sometime", "soon"]
        lone = ingest(
            ledger,
            500,
            sinks=("crm",),
            end_reason="do_not_call",
            record_phone_number=phones[0],
            question_fields={"demo_date": answers[0]},
        )
        drain(worker)  # one event: the single path
        backlog = [
            ingest(
                ledger,
                501 + i,
                sinks=("crm",),
                end_reason="do_not_call",
                record_phone_number=phone,
                question_fields={"demo_date": answer},
            )
            for i, (phone, answer) in enumerate(zip(phones[1:], answers[1:], strict=True))
        ]
        drain(worker)  # a backlog: batch update
        by_phone = {c["properties"].get("phone"): c["properties"] for c in hs.objects("contacts")}
        for event_id, phone, answer in zip([lone, *backlog], phones, answers, strict=True):
            assert statuses(ledger, event_id) == ["succeeded"]
            assert by_phone[phone]["twox_do_not_call"] == "true"
            update = journal(ledger, event_id)[f"2x-{event_id}:contact-update"]
            if answer == "2026-12-08":
                assert by_phone[phone].get("demo_date") == answer and "skipped_fields" not in update["detail"], (
                    update,
                    by_phone[phone],
                )
            else:
                assert not by_phone[phone].get("demo_date")
                assert update["detail"]["skipped_fields"] == {"demo_date": "INVALID_LONG"}
    finally:
        worker.close()


@pytest.mark.parametrize(
    ("deleted", "hold"), [("TwoX_Wrong_Number__c", True), ("DoNotCall", False)], ids=["hold", "do_not_call_field"]
)
def test_salesforce_pauses_instead_of_skipping(
    sf: SalesforceEmulator, ledger: Ledger, store_url: str, deleted: str, hold: bool
) -> None:
    settings = settings_for(store_url, sf_sink(sf, **({"on_missing_field": "hold"} if hold else {})))
    worker = Worker(settings, ledger=ledger)
    worker.open()
    try:
        [(phone, contact_id)] = seed_contacts(sf, 1)
        sf.delete_field("Contact", deleted)
        event = ingest(
            ledger, 500, sinks=("crm",), end_reason="wrong_number" if hold else "do_not_call", record_phone_number=phone
        )
        drain(worker, rounds=5)
        state = ledger.sinks.status("crm")
        assert state.paused and f"Contact.{deleted}" in (state.reason or "") and "crm-setup" in (state.reason or "")
        assert statuses(ledger, event) == ["pending"] and ledger.deliveries.counts().get(("crm", "dead"), 0) == 0
        assert [m.name for m in ledger.sinks.missing("crm")] == [f"Contact.{deleted}"]
        assert tasks(sf, f"2x-{event}") == []  # allOrNone: nothing written while paused
        probe(worker)  # the field is still missing: the probe keeps the sink paused
        assert ledger.sinks.status("crm").paused and statuses(ledger, event) == ["pending"]
        sf.restore_field("Contact", deleted)
        probe(worker)  # describe lists it again: resumed
        drain(worker)
        assert statuses(ledger, event) == ["succeeded"] and len(tasks(sf, f"2x-{event}")) == 1
        assert sf.get("Contact", contact_id)[deleted] is True
    finally:
        worker.close()


def test_salesforce_missing_task_field_never_costs_the_call_task(sf: SalesforceEmulator, tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    from tests.support.salesforce import variant

    mapping = variant(tmp_path, hung_up="TwoX_Call_Score__c: 7")  # a custom Task field nobody created
    settings = settings_for(f"sqlite:///{tmp_path / 'l.db'}", sf_sink(sf, mapping=str(mapping)))
    ledger = Ledger.open(settings.store)
    worker = Worker(settings, ledger=ledger)
    worker.open()
    try:
        known = seed_contacts(sf, 3)
        events = [
            ingest(ledger, 600 + i, sinks=("crm",), end_reason="hung_up", record_phone_number=p)
            for i, (p, _) in enumerate(known)
        ]
        drain(worker)  # batch path
        events.append(ingest(ledger, 700, sinks=("crm",), end_reason="hung_up", record_phone_number=known[0][0]))
        drain(worker)  # single path
        assert all(statuses(ledger, e) == ["succeeded"] and len(tasks(sf, f"2x-{e}")) == 1 for e in events)
        for event_id in events:
            activity = journal(ledger, event_id)[f"2x-{event_id}:activity"]
            assert activity["detail"]["skipped_fields"] == {"TwoX_Call_Score__c": "INVALID_FIELD"}
        assert [m.name for m in ledger.sinks.missing("crm")] == ["Task.TwoX_Call_Score__c"]
    finally:
        worker.close()
        ledger.dispose()


# -- HubSpot ---------------------------------------------------------------------------------------------------


def test_hubspot_property_deleted_after_setup_costs_that_property_only(
    hs: HubSpotEmulator, ledger: Ledger, store_url: str, tmp_path: Path
) -> None:
    sink = hs_sink(hs)
    settings = settings_for(store_url, sink)
    worker = Worker(settings, ledger=ledger)
    worker.open()
    phones = [f"+1312555{3000 + i:04d}" for i in range(7)]
    try:
        for i, phone in enumerate(phones):  # set-up era: contacts created and cached
            ingest(ledger, 100 + i, sinks=("crm",), end_reason="no_answer", record_phone_number=phone)
        drain(worker)
        archive_property(hs, "twox_last_call_outcome")

        batch = [
            ingest(ledger, 200 + i, sinks=("crm",), end_reason=MIXED[i], record_phone_number=phone)
            for i, phone in enumerate(phones[:6])
        ]
        drain(worker)  # a backlog: batch create / batch update
        single = []
        for i, phone in enumerate(phones[:6]):
            single.append(ingest(ledger, 300 + i, sinks=("crm",), end_reason=MIXED[i], record_phone_number=phone))
            drain(worker)
        older = ingest(ledger, 400, sinks=("crm",), end_reason="hung_up", record_phone_number=phones[6])
        drain(worker)
        newer = ingest(ledger, 401, sinks=("crm",), end_reason="end_call", record_phone_number=phones[6])
        drain(worker)

        events = batch + single + [older, newer]
        assert all(statuses(ledger, e) == ["succeeded"] for e in events)
        calls = [c["properties"].get("hs_call_external_id") for c in hs.objects("calls")]
        assert all(calls.count(f"2x-{e}") == 1 for e in events)  # every call logged once
        by_phone = {c["properties"].get("phone"): c for c in hs.objects("contacts")}
        for event_id, reason, phone in [
            *zip(batch, MIXED, phones[:6], strict=True),
            *zip(single, MIXED, phones[:6], strict=True),
        ]:
            properties = by_phone[phone]["properties"]
            assert properties.get("twox_last_call_outcome") in (None, "", "no_answer")  # the set-up era's value
            if reason == "do_not_call":
                assert properties["twox_do_not_call"] == "true"
            if reason == "wrong_number":
                assert properties["twox_wrong_number"] == "true"
            results = journal(ledger, event_id)
            if reason == "schedule_call_back":
                assert results[f"2x-{event_id}:task:callback"]["crm_id"]
            update = results[f"2x-{event_id}:contact-update"]
            assert update["detail"]["skipped_fields"] == {"twox_last_call_outcome": "PROPERTY_DOESNT_EXIST"}

        status, ready, metrics = surfaces(settings, ledger, tmp_path, store_url, sink)
        assert status["missing_fields"] == {"contacts.twox_last_call_outcome": "PROPERTY_DOESNT_EXIST"}
        assert "contacts.twox_last_call_outcome" in ready["warning"]
        assert 'connector_sink_missing_fields{sink="crm"} 1.0' in metrics

        recreate_property(hs, "twox_last_call_outcome")
        config = tmp_path / "drift.yaml"
        for event_id in [newer, older]:  # newer first: the older call must not overwrite it
            cli("replay", "--config", str(config), "--event", event_id)
            drain(worker)
        properties = {c["properties"].get("phone"): c for c in hs.objects("contacts")}[phones[6]]["properties"]
        assert properties["twox_last_call_outcome"] == "conversation_ended"
        assert ledger.sinks.missing("crm") == []
        calls = [c["properties"].get("hs_call_external_id") for c in hs.objects("calls")]
        assert all(calls.count(f"2x-{e}") == 1 for e in events)
    finally:
        worker.close()


@pytest.mark.parametrize(
    ("deleted", "hold"),
    [("twox_wrong_number", True), ("twox_do_not_call", False)],
    ids=["hold", "do_not_call_property"],
)
def test_hubspot_pauses_instead_of_skipping(hs: HubSpotEmulator, tmp_path: Path, deleted: str, hold: bool) -> None:
    settings = settings_for(
        f"sqlite:///{tmp_path / 'l.db'}", hs_sink(hs, **({"on_missing_field": "hold"} if hold else {}))
    )
    ledger = Ledger.open(settings.store)
    worker = Worker(settings, ledger=ledger)
    worker.open()
    try:
        archive_property(hs, deleted)
        event = ingest(ledger, 800, sinks=("crm",), end_reason="wrong_number" if hold else "do_not_call")
        drain(worker, rounds=5)
        state = ledger.sinks.status("crm")
        assert state.paused and f"contacts.{deleted}" in (state.reason or "")
        assert statuses(ledger, event) == ["pending"] and ledger.deliveries.counts().get(("crm", "dead"), 0) == 0
        probe(worker)
        assert ledger.sinks.status("crm").paused and statuses(ledger, event) == ["pending"]
        recreate_property(hs, deleted, "bool", "booleancheckbox")
        probe(worker)
        drain(worker)
        assert statuses(ledger, event) == ["succeeded"]
        assert hs.get("contacts", SEEDED)["properties"][deleted] == "true"
    finally:
        worker.close()
        ledger.dispose()


def test_500_question_keys_create_properties_in_one_batch_up_to_the_cap(hs: HubSpotEmulator) -> None:
    from connector.plan import UpdateContact
    from connector.sinks.hubspot.sink import HubSpotSink
    from tests.support.hubspot import CountingGate

    # with on_missing_field: hold, too: answers over the cap are skipped, never a reason to pause
    sink = HubSpotSink(
        "hs", HubSpotSinkSettings(type="hubspot", access_token=TOKEN, base_url=hs.url, on_missing_field="hold")
    )
    sink.open(CountingGate())
    try:
        answers = {f"question {i:03d}": f"answer {i}" for i in range(500)}
        plan = make_plan(900, question_fields=answers)
        hs.reset_counters()
        context = run(sink, plan)
    finally:
        sink.close()
    [update] = [a for a in plan.actions if isinstance(a, UpdateContact)]
    result = context.results[update.key]
    created = [n for n in hs.properties("contacts") if n.startswith("twox_q_question_")]
    assert len(created) == 100  # max_question_properties_per_event
    assert hs.request_count(path_prefix="/crm/v3/properties/contacts/batch/create", method="POST") == 1
    assert len(result.detail["skipped_fields"]) == 400
    assert set(result.detail["skipped_fields"].values()) == {"MAX_QUESTION_PROPERTIES"}
    contact = hs.get("contacts", SEEDED)["properties"]
    assert all(contact[name] for name in created) and contact["twox_last_call_outcome"]
    assert not set(result.detail["skipped_fields"]) & set(created)
    assert hs.request_count(path_prefix="/crm/v3/objects/contacts/", method="PATCH") == 2  # refused, then sent


def test_crm_setup_clears_the_warning_once_the_fields_exist(hs: HubSpotEmulator, tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'l.db'}"
    ledger = Ledger.open(settings_for(store_url, hs_sink(hs)).store)
    try:
        archive_property(hs, "twox_last_call_outcome")
        ledger.sinks.note_missing("crm", {("contacts", "twox_last_call_outcome"): "PROPERTY_DOESNT_EXIST"}, "1")
        config = tmp_path / "setup.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "receiver": {"auth": {"tokens": ["t" * 32]}},
                    "store": {"url": store_url},
                    "sinks": {"crm": hs_sink(hs)},
                }
            )
        )
        cli("crm-setup", "--config", str(config), "--sink", "crm", "--no-ledger-questions")
        assert "twox_last_call_outcome" in hs.properties("contacts")
        assert ledger.sinks.missing("crm") == []
    finally:
        ledger.dispose()


def test_what_drift_costs_in_salesforce_api_calls(sf: SalesforceEmulator) -> None:
    """Measured: a drifted write is the refused Composite plus the one sent again (2 calls instead of 1); the event
    after the first refusal also describes the object afresh (once), later ones do not."""
    from tests.support.salesforce import make_plan as sf_plan
    from tests.support.salesforce import open_sink
    from tests.support.salesforce import run as sf_run

    sink = open_sink(sf)
    try:
        sf_run(sink, sf_plan(1))  # warm: describes, the contact known
        sf.delete_field("Contact", "TwoX_Last_Call_Outcome__c")
        costs = []
        for event_id in (2, 3, 4, 5):
            before = sf.api_calls()
            context = sf_run(sink, sf_plan(event_id))
            costs.append(sf.api_calls() - before)
            assert context.results[f"2x-{event_id}:contact-update"].detail["skipped_fields"] == {
                "TwoX_Last_Call_Outcome__c": "INVALID_FIELD"
            }
        sf.restore_field("Contact", "TwoX_Last_Call_Outcome__c")
        before = sf.api_calls()
        sf_run(sink, sf_plan(6))
        restored = sf.api_calls() - before
    finally:
        sink.close()
    # the contact is known (0 calls to resolve): refused composite + resent composite; the second event also
    # re-describes Contact once (the cached types still listed the deleted field)
    assert costs == [2, 3, 2, 2], costs
    assert restored == 1  # the field is written again at once: no memory of the refusal delays it
    assert sf.get("Contact", sf.seed_ids["contact_john"])["TwoX_Last_Call_Outcome__c"]


def test_the_warning_tells_a_refused_value_from_a_missing_field() -> None:
    from datetime import datetime

    from connector.ledger.sinkstate import MissingField
    from connector.missing_fields import warning

    now = datetime.now(UTC)
    missing = MissingField("crm", "contacts", "twox_wrong_number", "PROPERTY_DOESNT_EXIST", "1", now, now)
    option = MissingField("crm", "calls", "hs_call_direction", "INVALID_OPTION", "2", now, now)
    assert warning("crm", []) is None
    only_missing = warning("crm", [missing])
    assert only_missing is not None and "lacks fields contacts.twox_wrong_number" in only_missing
    assert "refused the values" not in only_missing
    both = warning("crm", [missing, option])
    assert both is not None and "lacks fields contacts.twox_wrong_number" in both
    assert (
        "refused the values written to calls.hs_call_direction (not an option of the property, or not of its type)"
        in both
    )
    assert "lacks fields" not in warning("crm", [option])  # type: ignore[operator]
