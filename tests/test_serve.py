"""The real `connector serve` (gunicorn, several worker processes) over HTTP: sandbox first run,
concurrent duplicates, and restarts (graceful and kill -9) that lose nothing acknowledged."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import yaml

from connector.config import load_settings
from connector.ledger import Ledger
from connector.sample import sample_payload
from tests.support.ledger import empty_store
from tests.support.net import free_port
from tests.support.settings import TOKEN

pytestmark = pytest.mark.slow
CONNECTOR = [sys.executable, "-m", "connector"]


def write_config(folder: Path, store_url: str, port: int) -> Path:
    config = folder / "connector.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {"port": port, "auth": {"header": "X-2X-Token", "tokens": ["${BENCH_TOKEN}"]}},
                "store": {"url": store_url},
                "serve": {"workers": 3},
                "sinks": {},
            }
        )
    )
    return config


@contextmanager
def running(args: list[str], cwd: Path, port: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Start a connector process in its own process group and wait until /readyz answers 200."""
    process = subprocess.Popen(
        CONNECTOR + args,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or a busy machine slow to answer
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not become ready:\n{process.stdout.read()}")
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def post(port: int, document: dict, token: str = TOKEN, header: str = "X-2X-Token") -> requests.Response:
    return requests.post(
        f"http://127.0.0.1:{port}/webhooks/2x/post-call", json=document, headers={header: token}, timeout=10
    )


@pytest.fixture
def served_config(tmp_path: Path, store_url: str) -> tuple[Path, int]:
    port = free_port()
    return write_config(tmp_path, store_url, port), port


def test_concurrent_posts_of_one_id_accept_exactly_one(
    served_config: tuple[Path, int], tmp_path: Path, store_url: str
) -> None:
    config, port = served_config
    empty_store(store_url)
    document = sample_payload(5150)
    with running(["serve", "--config", str(config)], tmp_path, port, {"BENCH_TOKEN": TOKEN}):
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: post(port, document), range(32)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 31 + [202]
    ledger = Ledger.open(load_settings(config, environ={"BENCH_TOKEN": TOKEN}).store)
    assert ledger.count_events() == 1
    ledger.dispose()


def test_kill_9_under_load_loses_nothing_acknowledged(
    served_config: tuple[Path, int], tmp_path: Path, store_url: str
) -> None:
    config, port = served_config
    empty_store(store_url)
    acknowledged: list[str] = []

    def send(i: int) -> None:
        try:
            answer = post(port, sample_payload(700_000 + i))
        except requests.RequestException:
            return  # the server died mid-request: 2X would retry; not acknowledged
        if answer.status_code == 202:
            acknowledged.append(answer.json()["id"])

    with running(["serve", "--config", str(config)], tmp_path, port, {"BENCH_TOKEN": TOKEN}) as server:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(send, i) for i in range(400)]
            while len(acknowledged) < 60:
                time.sleep(0.01)
            os.killpg(server.pid, signal.SIGKILL)
            for future in futures:
                future.result()
    assert len(acknowledged) >= 60

    with running(["serve", "--config", str(config)], tmp_path, port, {"BENCH_TOKEN": TOKEN}):
        ledger = Ledger.open(load_settings(config, environ={"BENCH_TOKEN": TOKEN}).store, migrate_schema=False)
        missing = [event_id for event_id in acknowledged if ledger.get_event(event_id) is None]
        assert missing == []
        # A 2X retry of an acknowledged event after the restart is recognised as a duplicate.
        retry = post(port, sample_payload(int(acknowledged[0])))
        assert retry.status_code == 200 and retry.json()["status"] == "duplicate"
        ledger.dispose()


def test_sandbox_first_run_walkthrough(tmp_path: Path) -> None:
    """What the README promises: serve --sandbox prints a send-sample command that works."""
    port = free_port()
    process = subprocess.Popen(
        CONNECTOR + ["serve", "--sandbox", "--port", str(port)],
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        while not any(line.strip().startswith("curl -s http") for line in lines):
            line = process.stdout.readline()
            assert line, "sandbox exited before printing its banner:\n" + "".join(lines)
            lines.append(line)
        banner = "".join(lines)
        token = re.search(r"Token\s+:\s+(\S+)", banner).group(1)
        command = next(line.strip() for line in lines if line.strip().startswith("connector send-sample"))
        _wait_ready(port)
        sent = subprocess.run(
            [sys.executable, "-m", "connector", *shlex.split(command)[1:]], capture_output=True, text=True, timeout=30
        )
        assert sent.returncode == 0, sent.stderr
        answer = json.loads(sent.stdout.split(" ", 2)[2])
        assert answer["status"] == "accepted"
        curl = next(line.strip() for line in lines if line.strip().startswith("curl -s http"))
        posted = subprocess.run(shlex.split(curl), capture_output=True, text=True, timeout=30)
        assert posted.returncode == 0 and json.loads(posted.stdout)["status"] == "accepted", posted
        deadline = time.monotonic() + 30
        while True:  # the embedded worker delivers it to both emulated CRMs within seconds
            status = subprocess.run(
                [*CONNECTOR, "status", "--json", "--config", "connector-sandbox.yaml", answer["id"]],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert status.returncode == 0, status.stderr
            report = json.loads(status.stdout)
            delivered = {d["sink"]: d["status"] for d in report["deliveries"]}
            if delivered == {"hubspot": "succeeded", "salesforce": "succeeded"} or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert delivered == {"hubspot": "succeeded", "salesforce": "succeeded"}, report["deliveries"]
        assert report["event_id"] == answer["id"]
        assert report["normalized"]["call"]["end_reason"]["known"] is True
        for delivery in report["deliveries"]:
            assert {"resolve_contact", "create_activity", "update_contact"} <= set(delivery["crm_ids"])
        dashboard = re.search(r"Dashboard\s+:\s+(\S+)\s.*\n(?:.*\n)*?\s+Login\s+:\s+user (\S+), password (\S+)", banner)
        assert dashboard, banner
        url, user, password = dashboard.groups()
        page = requests.get(f"{url}events/{answer['id']}", auth=(user, password), timeout=10)
        assert page.status_code == 200 and answer["id"] in page.text
        assert requests.get(url, timeout=10).status_code == 401
        assert (tmp_path / "connector-sandbox.db").exists()
        assert token in (tmp_path / "connector-sandbox.yaml").read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or a busy machine slow to answer
            time.sleep(0.1)
    raise AssertionError("sandbox never became ready")


def test_kill_9_of_receiver_and_embedded_worker_under_load_delivers_every_acknowledged_call_once(
    tmp_path: Path, store_url: str
) -> None:
    """The whole `connector serve` (receiver + embedded worker) is killed while 2X posts and the
    worker delivers; after a restart every acknowledged call reaches the CRM exactly once."""
    from connector.default_mappings import default_mapping_path
    from tests.support.recorder import Recorder

    recorder = Recorder()
    recorder.start()
    try:
        port = free_port()
        empty_store(store_url)
        config = tmp_path / "serve.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "receiver": {"port": port, "auth": {"header": "X-2X-Token", "tokens": [TOKEN]}},
                    "store": {"url": store_url},
                    "serve": {"workers": 3},
                    "sinks": {
                        "rec": {
                            "type": "http",
                            "url": recorder.url,
                            "mapping": str(default_mapping_path("hubspot")),
                            "headers": {"Authorization": f"Bearer {recorder.token}"},
                        }
                    },
                    "worker": {"poll_interval_s": 0.05, "lease_s": 5},
                    "logging": {"level": "WARNING"},
                }
            )
        )
        acknowledged: list[str] = []

        def send(i: int) -> None:
            try:
                answer = post(port, sample_payload(800_000 + i, record_phone_number=f"+1202555{i:04d}"))
            except requests.RequestException:
                return
            if answer.status_code == 202:
                acknowledged.append(answer.json()["id"])

        with running(["serve", "--config", str(config)], tmp_path, port) as server:
            with ThreadPoolExecutor(6) as pool:
                futures = [pool.submit(send, i) for i in range(300)]
                while len(acknowledged) < 80 or len(recorder.writes) < 40:
                    time.sleep(0.01)
                os.killpg(server.pid, signal.SIGKILL)
                for future in futures:
                    future.result()
        with running(["serve", "--config", str(config)], tmp_path, port):
            ledger = Ledger.open(load_settings(config).store, migrate_schema=False)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                done = {
                    d["event_id"] for e in acknowledged for d in ledger.deliveries_for(e) if d["status"] == "succeeded"
                }
                if len(done) == len(acknowledged):
                    break
                time.sleep(0.3)
            ledger.dispose()
        assert len(done) == len(acknowledged) >= 80
        assert recorder.duplicates() == {}
        assert {f"2x-{e}:activity" for e in acknowledged} <= recorder.keys()
    finally:
        recorder.stop()


def test_metrics_sum_every_process_of_serve(tmp_path: Path, recorder) -> None:
    """gunicorn workers and the embedded delivery worker count into one /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    from connector.default_mappings import default_mapping_path

    port = free_port()
    config = tmp_path / "metrics.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {"port": port, "auth": {"header": "X-2X-Token", "tokens": [TOKEN]}},
                "store": {"url": f"sqlite:///{tmp_path / 'm.db'}"},
                "serve": {"workers": 3},
                "sinks": {
                    "rec": {
                        "type": "http",
                        "url": recorder.url,
                        "mapping": str(default_mapping_path("hubspot")),
                        "headers": {"Authorization": f"Bearer {recorder.token}"},
                    }
                },
                "worker": {"poll_interval_s": 0.05},
                "logging": {"level": "WARNING"},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with running(["serve", "--config", str(config)], tmp_path, port, env):
        with ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(
                    lambda i: post(port, sample_payload(600 + i, record_phone_number=f"+1202555{i:04d}")), range(12)
                )
            )
        assert [a.status_code for a in answers] == [202] * 12
        deadline = time.monotonic() + 30
        while True:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            found = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            delivered = found.get(("connector_delivery_attempts_total", (("outcome", "succeeded"), ("sink", "rec"))), 0)
            if delivered == 12 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    assert found[("connector_http_responses_total", (("status", "202"),))] == 12
    assert delivered == 12
