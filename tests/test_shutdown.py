"""Clean starts and stops: SIGTERM and SIGINT (Ctrl-C reaches the whole process group) of `serve`,
`worker` and the sandbox leave no traceback on stderr; `validate` and `serve` refuse a sink type
that is not installed, naming the installed ones, before anything is accepted."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from connector.default_mappings import default_mapping_path
from connector.sample import sample_payload
from tests.conftest import TOKEN, free_port
from tests.support import processes
from tests.support.recorder import Recorder

pytestmark = pytest.mark.slow
NOISE = ("Traceback", "AssertionError", "can only join a child process", "KeyboardInterrupt")


def _config(folder: Path, port: int, recorder: Recorder, sink_type: str = "http") -> Path:
    config = folder / "connector.yaml"
    config.write_text(yaml.safe_dump({
        "receiver": {"port": port, "auth": {"header": "X-2X-Token", "tokens": [TOKEN]}},
        "store": {"url": f"sqlite:///{folder / 'stop.db'}"}, "serve": {"workers": 2},
        "sinks": {"rec": {"type": sink_type, "url": recorder.url, "mapping": str(default_mapping_path("hubspot")),
                          "headers": {"Authorization": f"Bearer {recorder.token}"}}},
        "worker": {"poll_interval_s": 0.05},
    }))
    return config


def _quiet(log: Path) -> str:
    text = log.read_text(errors="replace")
    assert not [n for n in NOISE if n in text], text
    return text


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_without_a_traceback(tmp_path: Path, recorder: Recorder, sig: signal.Signals) -> None:
    port = free_port()
    config = _config(tmp_path, port, recorder)
    log = tmp_path / "serve.log"
    server = processes.start(["serve", "--config", str(config)], tmp_path, log)
    try:
        processes.wait_ready(server, port, log)
        answer = requests.post(f"http://127.0.0.1:{port}/webhooks/2x/post-call", json=sample_payload(1),
                               headers={"X-2X-Token": TOKEN}, timeout=10)
        assert answer.status_code == 202
        processes.wait_until(lambda: recorder.writes, 30, "a delivery")
    finally:
        code = processes.stop(server, sig)
    assert code == 0
    _quiet(log)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_worker_stops_without_a_traceback(tmp_path: Path, recorder: Recorder, sig: signal.Signals) -> None:
    config = _config(tmp_path, free_port(), recorder)
    log = tmp_path / "worker.log"
    worker = processes.start(["worker", "--config", str(config)], tmp_path, log)
    try:
        from connector.ledger import Ledger
        from tests.conftest import make_settings

        ledger = Ledger.open(make_settings(f"sqlite:///{tmp_path / 'stop.db'}").store)
        processes.wait_until(lambda: ledger.sinks.live_workers(within_s=10), 30, "the worker's heartbeat")
        ledger.dispose()
    finally:
        code = processes.stop(worker, sig)
    assert code == 0
    _quiet(log)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sandbox_stops_without_a_traceback(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    log = tmp_path / "sandbox.log"
    sandbox = processes.start(["serve", "--sandbox", "--port", str(port)], tmp_path, log)
    try:
        processes.wait_ready(sandbox, port, log)
    finally:
        code = processes.stop(sandbox, sig)
    assert code == 0
    _quiet(log)


def test_validate_and_serve_refuse_an_unknown_sink_type(tmp_path: Path, recorder: Recorder) -> None:
    port = free_port()
    config = _config(tmp_path, port, recorder, sink_type="hubspt")
    for command in (["validate", "--offline"], ["serve"]):
        done = subprocess.run([*processes.CONNECTOR, *command, "--config", str(config)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, (command, done.stderr)
        assert "sinks.rec.type: no sink type 'hubspt' is installed; installed: http, hubspot, salesforce" \
            in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "stop.db").exists()  # serve refused before even opening the store
