"""Clean starts and stops: SIGTERM and SIGINT (Ctrl-C reaches the whole process group) of `serve`,
`worker` and the sandbox leave no traceback on stderr; `serve` prints one start-up block and one line per
stop stage; `validate` and `serve` refuse a sink type that is not installed, naming the installed ones, before
anything is accepted; every other start-up failure (port in use, read-only store directory, unreachable store,
unreadable mapping) is one `Error:` line, never a traceback."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from connector.default_mappings import default_mapping_path
from connector.sample import sample_payload
from tests.support import processes
from tests.support.net import free_port
from tests.support.recorder import Recorder
from tests.support.settings import TOKEN

pytestmark = pytest.mark.slow
NOISE = ("Traceback", "AssertionError", "can only join a child process", "KeyboardInterrupt")


def _config(folder: Path, port: int, recorder: Recorder, sink_type: str = "http") -> Path:
    config = folder / "connector.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {"port": port, "auth": {"header": "X-2X-Token", "tokens": [TOKEN]}},
                "store": {"url": f"sqlite:///{folder / 'stop.db'}"},
                "serve": {"workers": 2},
                "sinks": {
                    "rec": {
                        "type": sink_type,
                        "url": recorder.url,
                        "mapping": str(default_mapping_path("hubspot")),
                        "headers": {"Authorization": f"Bearer {recorder.token}"},
                    }
                },
                "worker": {"poll_interval_s": 0.05},
            }
        )
    )
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
        answer = requests.post(
            f"http://127.0.0.1:{port}/webhooks/2x/post-call",
            json=sample_payload(1),
            headers={"X-2X-Token": TOKEN},
            timeout=10,
        )
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
        from tests.support.settings import make_settings

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


def _run(command: list[str], config: Path) -> subprocess.CompletedProcess[str]:
    """`connector COMMAND --config CONFIG` run to its end (serve only ends when it refuses to start)."""
    return subprocess.run(
        [*processes.CONNECTOR, *command, "--config", str(config)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_validate_and_serve_refuse_an_unknown_sink_type(tmp_path: Path, recorder: Recorder) -> None:
    port = free_port()
    config = _config(tmp_path, port, recorder, sink_type="hubspt")
    for command in (["validate", "--offline"], ["serve"]):
        done = _run(command, config)
        assert done.returncode == 1, (command, done.stderr)
        assert (
            "sinks.rec.type: no sink type 'hubspt' is installed; installed: http, hubspot, salesforce" in done.stderr
        ), done.stderr
        assert "Traceback" not in done.stderr
        assert f"{config}: 1 problem(s)" in done.stderr  # the file, not "<config>"
    assert not (tmp_path / "stop.db").exists()  # serve refused before even opening the store


def test_validate_and_serve_refuse_a_salesforce_ca_file_that_is_gone(tmp_path: Path) -> None:
    """What a stopped sandbox leaves: its config names the CA file the sandbox removed. validate ended in a
    traceback, and serve accepted webhooks whose every Salesforce delivery failed for a day."""
    port = free_port()
    gone = tmp_path / "sf-emulator" / "ca.pem"
    config = tmp_path / "connector.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {"port": port, "auth": {"header": "X-2X-Token", "tokens": [TOKEN]}},
                "store": {"url": f"sqlite:///{tmp_path / 'stop.db'}"},
                "sinks": {
                    "salesforce": {
                        "type": "salesforce",
                        "instance_url": "https://127.0.0.1:1",
                        "auth": {"session_id": "00D-session"},
                        "ca_bundle": str(gone),
                    }
                },
            }
        )
    )
    for command in (["validate"], ["validate", "--offline"], ["serve"]):
        done = _run(command, config)
        assert done.returncode == 1, (command, done.stderr)
        assert f"sinks.salesforce.ca_bundle: no such file: {gone}" in done.stderr, (command, done.stderr)
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "stop.db").exists()


def test_serve_prints_one_start_up_block_and_one_line_per_stop_stage(tmp_path: Path, recorder: Recorder) -> None:
    """stdout: the block, once (not one line per gunicorn worker); stderr: "draining", "stopped", nothing else."""
    port = free_port()
    config = _config(tmp_path, port, recorder)
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        server = subprocess.Popen(
            [*processes.CONNECTOR, "serve", "--config", str(config)],
            cwd=tmp_path,
            start_new_session=True,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        processes.wait_ready(server, port, err)
        processes.wait_until(lambda: "Stop with Ctrl-C" in out.read_text(), 10, "the start-up block")
    finally:
        code = processes.stop(server, signal.SIGINT)
    assert code == 0
    block = out.read_text()
    assert block.count("listening on") == 1, block
    assert f"listening on http://127.0.0.1:{port} (2 receiver processes)" in block
    assert f"POST http://127.0.0.1:{port}/webhooks/2x/post-call  (token in header X-2X-Token)" in block
    assert f"Store       : sqlite:///{tmp_path / 'stop.db'}" in block
    assert "Sinks       : rec (http): ok" in block
    assert "Dashboard   : off: no password" in block
    assert "Worker      : embedded" in block
    assert TOKEN not in block  # the webhook token is never printed outside the sandbox
    said = [line for line in err.read_text().splitlines() if line.strip()]
    assert said == [
        "connector serve: draining: finishing requests in flight and the delivery in hand…",
        "connector serve: stopped",
    ], said


def test_serve_with_its_port_in_use_says_so_in_one_line(tmp_path: Path, recorder: Recorder) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _config(tmp_path, port, recorder)
        done = subprocess.run(
            [*processes.CONNECTOR, "serve", "--config", str(config)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: port {port} on 127.0.0.1 is already in use (another connector or program listens there): stop it, "
        "or choose another port with `receiver.port` in the config or `--port`"
    ], done.stderr
    assert not (tmp_path / "stop.db").exists()  # refused before the store was touched


def _read_only(folder: Path) -> list[str]:
    """A command prefix that runs with `folder` read-only: chmod for a normal user; root ignores file modes, so
    a private mount namespace with a read-only bind mount (util-linux `unshare`)."""
    import os
    import shutil

    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    if shutil.which("unshare") is None:
        pytest.skip("running as root without util-linux unshare: cannot make a directory read-only")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("running as root without permission to create a mount namespace")
    return [
        "unshare",
        "-m",
        "sh",
        "-c",
        f'mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} {folder} && exec "$@"',
        "sh",
    ]


def test_serve_with_a_read_only_store_directory_is_one_error_line(tmp_path: Path, recorder: Recorder) -> None:
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    config = _config(tmp_path, free_port(), recorder)
    document = yaml.safe_load(config.read_text())
    document["store"]["url"] = f"sqlite:///{store_dir / 'connector.db'}"
    config.write_text(yaml.safe_dump(document))
    prefix = _read_only(store_dir)
    done = subprocess.run(
        [*prefix, *processes.CONNECTOR, "serve", "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    store_dir.chmod(0o755)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: the store {store_dir / 'connector.db'} cannot be written (its directory or file is read-only): "
        f"make {store_dir} writable for this user, or point `store.url` in the config at a writable place"
    ], done.stderr


@pytest.mark.parametrize("problem", ["unreachable store", "unreadable mapping", "dashboard password is the token"])
def test_other_start_up_failures_are_an_error_line_without_a_traceback(
    tmp_path: Path, recorder: Recorder, problem: str
) -> None:
    config = _config(tmp_path, free_port(), recorder)
    document = yaml.safe_load(config.read_text())
    if problem == "unreachable store":
        document["store"]["url"] = "postgresql+psycopg://user:s3cret-pw@127.0.0.1:1/nowhere"
        expected = ("Error: cannot open the store postgresql+psycopg://user:***@127.0.0.1:1/nowhere (", "store.url")
    elif problem == "dashboard password is the token":
        document["dashboard"] = {"password": TOKEN}  # checked by each receiver process: a traceback per process
        expected = (f"Error: {config}: 1 problem(s)", "dashboard.password: must differ from the webhook token")
    else:
        (tmp_path / "mapping-dir").mkdir()  # a directory where the file should be: unreadable as a mapping
        document["sinks"]["rec"]["mapping"] = str(tmp_path / "mapping-dir")
        expected = (f"Error: {config}: 1 problem(s)", "sinks.rec.mapping")
    config.write_text(yaml.safe_dump(document))
    done = subprocess.run(
        [*processes.CONNECTOR, "serve", "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(expected[0]) and expected[1] in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "s3cret-pw" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.startswith("Error:")]) == 1
