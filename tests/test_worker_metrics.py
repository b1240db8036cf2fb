"""A standalone `connector worker` (the PostgreSQL scale-out setup, `worker.embedded: false`) serves its delivery
counters on `worker.metrics_port`: `serve`'s /metrics cannot see them, as no multiprocess directory joins them."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from connector.ledger import Ledger
from tests.support.delivery import ingest
from tests.support.ledger import truncate_all
from tests.support.net import free_port
from tests.support.recorder import Recorder
from tests.support.settings import make_settings
from tests.support.worker_processes import start_worker, stop, wait_for_line, write_config

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    answer = requests.get(url, timeout=5)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def wait_until(condition, what: str, timeout_s: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_standalone_worker_serves_its_delivery_counters(tmp_path: Path, store_url: str, recorder: Recorder) -> None:
    ledger = Ledger.open(make_settings(store_url).store)
    truncate_all(ledger)
    config = write_config(tmp_path, store_url, recorder, worker={"metrics_port": 0})
    process = start_worker(config)
    try:
        line = wait_for_line(process, "connector worker: delivery metrics on ")
        url = line.rsplit(" ", 1)[1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        wait_until(lambda: recorder.request_times, "the worker's credentials check")  # it would take a failure
        recorder.fail_next(1, status=429, retry_after=0.2)
        recorder.fail_next(1, status=400)  # a permanent refusal: that delivery is dead-lettered
        for event_id in (1, 2, 3):
            ingest(ledger, event_id, record_phone_number=f"+1202555011{event_id}")
        counts = ledger.deliveries.counts
        wait_until(lambda: counts().get(("rec", "succeeded")) == 2 and counts().get(("rec", "dead")) == 1, "delivery")
        found = scrape(url)
    finally:
        stop(process)
        ledger.dispose()
    assert found[("connector_delivery_attempts_total", (("outcome", "dead"), ("sink", "rec")))] == 1
    assert found[("connector_delivery_attempts_total", (("outcome", "succeeded"), ("sink", "rec")))] == 2
    assert found[("connector_rate_limited_total", (("sink", "rec"),))] == 1
    assert found[("connector_delivery_attempt_seconds_count", (("sink", "rec"),))] >= 3


def test_a_metrics_port_in_use_stops_the_worker_with_the_setting_named(tmp_path: Path, recorder: Recorder) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}", recorder)
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        process = start_worker(config, "--metrics-port", str(port))
        _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert f"worker.metrics_port: 127.0.0.1:{port} is already in use" in err
    assert "Traceback" not in err
