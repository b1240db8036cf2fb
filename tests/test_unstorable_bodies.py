"""Bodies the schema once could not hold: long ids, long unknown end reasons, NUL characters. The
same answer on SQLite and PostgreSQL, never a 503 (2X would retry forever), nothing lost: stored, or
quarantined with a 4xx naming the field. Long ids still give CRM keys within the CRMs' limits."""

from __future__ import annotations

import json

import pytest
import requests

from connector.keys import KEY_MAX_LEN, crm_key
from connector.sample import sample_payload
from tests.support.serving import Served


def _post(served: Served, document: dict) -> requests.Response:
    return requests.post(
        served.url,
        data=json.dumps(document),
        timeout=10,
        headers={"Authorization": served.token, "Content-Type": "application/json"},
    )


@pytest.mark.parametrize("length", [129, 512])
def test_ids_past_the_old_column_width_are_stored(served: Served, length: int) -> None:
    event_id = "7" * length
    answer = _post(served, sample_payload(event_id))
    assert answer.status_code == 202, answer.text
    assert served.ledger.get_event(event_id)["event_id"] == event_id
    assert _post(served, sample_payload(event_id)).status_code == 200  # a retry is a duplicate, as always


@pytest.mark.parametrize("event_id", ["x" * 513, "y" * 5000, "ab\x00cd"])
def test_ids_no_store_can_key_are_refused_with_422_and_kept(served: Served, event_id: str) -> None:
    answer = _post(served, sample_payload(event_id))
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert [e["path"] for e in body["errors"]] == ["id"]
    kept = served.ledger.get_quarantined(body["quarantine_id"])
    assert json.loads(kept["body"])["id"] == event_id  # nothing lost: the exact body is in quarantine
    assert served.ledger.count_events() == 0


def test_a_long_unknown_end_reason_is_stored_not_refused(served: Served) -> None:
    document = sample_payload(61_000)
    document["call"]["end_reason"] = "r" * 65
    answer = _post(served, document)
    assert answer.status_code == 202, answer.text
    assert served.ledger.get_event("61000")["end_reason"] == "r" * 65


def test_a_nul_in_end_reason_is_refused_with_its_path(served: Served) -> None:
    document = sample_payload(61_001)
    document["call"]["end_reason"] = "hung\x00up"
    answer = _post(served, document)
    assert answer.status_code == 422, answer.text
    assert [e["path"] for e in answer.json()["errors"]] == ["call.end_reason"]
    assert served.ledger.get_quarantined(answer.json()["quarantine_id"]) is not None


def test_crm_key_is_unchanged_for_ordinary_ids_and_bounded_and_distinct_for_long_ones() -> None:
    assert crm_key("123456") == "2x-123456"
    long_a, long_b = "a" * 5000, "a" * 4999 + "b"
    assert len(crm_key(long_a)) == KEY_MAX_LEN
    assert crm_key(long_a) == crm_key(long_a) != crm_key(long_b)
    assert crm_key(long_a).startswith("2x-aaaa")
    assert len(crm_key("z" * 125)) == 128 and crm_key("z" * 125) == "2x-" + "z" * 125


def test_a_long_id_reaches_salesforce_within_callobject(tmp_path) -> None:
    """Through the default mapping, simple-salesforce and the emulator: CallObject (255 chars) holds
    the key of a 512-character id and of its callback task."""
    from connector.emulators.salesforce.server import DEFAULT_SESSION_ID, SalesforceEmulator
    from connector.engine.worker import Worker
    from connector.ledger import Ledger
    from tests.support.delivery import drain, ingest
    from tests.support.settings import make_settings

    emulator = SalesforceEmulator()
    emulator.start()
    try:
        settings = make_settings(
            f"sqlite:///{tmp_path / 'sf.db'}",
            sinks={
                "sf": {
                    "type": "salesforce",
                    "instance_url": emulator.instance_url,
                    "auth": {"session_id": DEFAULT_SESSION_ID},
                    "ca_bundle": emulator.ca_file,
                }
            },
            worker={"poll_interval_s": 0.05},
        )
        ledger = Ledger.open(settings.store)
        event_id = ingest(ledger, "9" * 512, sinks=("sf",), end_reason="schedule_call_back")
        worker = Worker(settings, ledger=ledger)
        worker.open()
        try:
            drain(worker)
        finally:
            worker.close()
        [delivery] = ledger.deliveries_for(event_id)
        assert delivery["status"] == "succeeded", delivery["last_error"]
        keys = [e.action_key for e in ledger.deliveries.journal(delivery["id"]).values()]
        assert keys and all(len(k) <= 200 for k in keys)
        assert any(k.startswith(crm_key(event_id)) for k in keys)
        ledger.dispose()
    finally:
        emulator.stop()
