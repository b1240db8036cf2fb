"""/metrics in Prometheus text format: answers by status, stored events, quarantine, deliveries,
backlog, oldest due age, paused sinks — from the receiver process and from the ledger."""

from __future__ import annotations

import json

import requests
from prometheus_client.parser import text_string_to_metric_families

from connector.config import Settings
from connector.engine.worker import Worker
from connector.ledger import Ledger
from connector.sample import sample_payload
from tests.support.delivery import drain, engine_settings, ingest
from tests.support.serving import Served, serve


def samples(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = requests.get(base_url + "/metrics", timeout=5)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(settings: Settings, ledger: Ledger) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics of an app served with these settings for one request."""
    serving = serve(settings, ledger)
    served = next(serving)
    try:
        return samples(served.base_url)
    finally:
        serving.close()


def test_answers_and_stored_events_are_counted(served: Served) -> None:
    headers = {"Authorization": served.token, "Content-Type": "application/json"}
    for event_id, reason in ((1, "do_not_call"), (2, "no_answer")):
        requests.post(
            served.url, data=json.dumps(sample_payload(event_id, end_reason=reason)), headers=headers, timeout=5
        )
    requests.post(served.url, data=b'{"id": 3, "call": "x"}', headers=headers, timeout=5)
    requests.post(served.url, data=b"{}", headers={"Content-Type": "application/json"}, timeout=5)
    found = samples(served.base_url)
    assert found[("connector_http_responses_total", (("status", "202"),))] == 2
    assert found[("connector_http_responses_total", (("status", "422"),))] == 1
    assert found[("connector_http_responses_total", (("status", "401"),))] == 1
    assert found[("connector_events_stored", (("end_reason", "do_not_call"),))] == 1
    assert found[("connector_quarantined", (("code", "validation_failed"),))] == 1
    assert found[("connector_store_up", ())] == 1


def test_delivery_state_and_paused_sinks(ledger: Ledger, store_url: str, recorder) -> None:
    settings = engine_settings(store_url, recorder.url)
    ingest(ledger, 10, record_phone_number="+12025550110")
    ingest(ledger, 11, record_phone_number="+12025550111")
    recorder.token = "revoked"
    worker = Worker(settings, ledger=ledger)
    worker.open()
    drain(worker, rounds=3)
    found = scrape(settings, ledger)
    assert found[("connector_sink_paused", (("sink", "rec"),))] == 1
    assert found[("connector_backlog", (("sink", "rec"),))] == 2
    assert found[("connector_deliveries", (("sink", "rec"), ("state", "pending")))] == 2
    assert found[("connector_oldest_due_age_seconds", (("sink", "rec"),))] >= 0
    assert found[("connector_live_workers", ())] == 1


def test_unknown_end_reasons_fold_into_one_label(served: Served) -> None:
    """The payload picks end_reason; 50 invented reasons must not become 50 series."""
    headers = {"Authorization": served.token, "Content-Type": "application/json"}
    for event_id in range(50):
        body = sample_payload(100 + event_id, end_reason=f"made_up_reason_{event_id}")
        assert requests.post(served.url, data=json.dumps(body), headers=headers, timeout=5).status_code == 202
    body = sample_payload(200, end_reason="no_answer")
    assert requests.post(served.url, data=json.dumps(body), headers=headers, timeout=5).status_code == 202
    stored = {
        labels: value for (name, labels), value in samples(served.base_url).items() if name == "connector_events_stored"
    }
    assert stored == {(("end_reason", "unknown"),): 50, (("end_reason", "no_answer"),): 1}


def test_zero_valued_gauges_are_exported_for_every_configured_sink(ledger: Ledger, store_url: str, recorder) -> None:
    """A healthy, idle sink still has a backlog of 0 and paused 0, so `== 0` alerts can see it."""
    found = scrape(engine_settings(store_url, recorder.url), ledger)
    assert found[("connector_backlog", (("sink", "rec"),))] == 0
    assert found[("connector_sink_paused", (("sink", "rec"),))] == 0
