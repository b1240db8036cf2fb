"""One health model on every surface (connector.sink_health): a mapping broken under a running worker shows on
/readyz, `connector status`, the dashboard overview and /metrics with FILE:LINE and the error, is logged once per
change (not at every 2 s check), and clears on all four when the file is fixed. Plus the other states' commands
and the attempt numbering across a replay."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import connector.engine.worker as worker_module
from connector.cli import main
from connector.default_mappings import default_mapping_path
from connector.engine.worker import Worker
from connector.ledger import Ledger
from connector.ledger._clock import utcnow
from connector.sink_health import assess
from tests.support.dashboard import basic, dashboard_app
from tests.support.delivery import drain, engine_settings
from tests.support.ledger import truncate_all
from tests.support.recorder import Recorder
from tests.support.settings import TOKEN


def _broken(text: str) -> str:
    """The mapping with an unknown end_reason on a known line: a semantic error the loader pins to that line."""
    document = yaml.safe_load(text)
    document["outcomes"][0]["when"] = {"end_reason": "no_such_reason"}
    return yaml.safe_dump(document, sort_keys=False)


def _save(path: Path, text: str) -> None:
    """Replace the file in one step: a running worker's check must not catch it half written (truncated, then
    filled), which it would rightly report as a second, different breakage."""
    staged = path.with_suffix(".saving")
    staged.write_text(text)
    os.replace(staged, path)


@pytest.fixture
def setup(tmp_path: Path, store_url: str, recorder: Recorder) -> Iterator[tuple]:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(default_mapping_path("hubspot").read_text())
    settings = engine_settings(store_url, recorder.url, mapping=str(mapping))
    config = tmp_path / "connector.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {"auth": {"tokens": [TOKEN]}},
                "store": {"url": store_url},
                "sinks": {"rec": {"type": "http", "url": recorder.url, "mapping": str(mapping)}},
            }
        )
    )
    ledger = Ledger.open(settings.store)
    truncate_all(ledger)
    yield settings, ledger, mapping, config
    ledger.dispose()


def _surfaces(app, ledger: Ledger, config: Path) -> dict[str, str]:
    client = app.test_client()
    readyz = client.get("/readyz")
    status = CliRunner().invoke(main, ["status", "--config", str(config)])
    assert status.exit_code == 0, status.output
    return {
        "readyz": readyz.get_data(as_text=True),
        "readyz_code": str(readyz.status_code),
        "status": status.output,
        "dashboard": client.get("/dashboard/", headers=basic()).get_data(as_text=True),
        "metrics": client.get("/metrics").get_data(as_text=True),
    }


def test_a_mapping_broken_under_a_running_worker_shows_everywhere_once_and_clears(
    setup: tuple, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings, ledger, mapping, config = setup
    monkeypatch.setattr(worker_module, "MAPPING_CHECK_S", 0.05)  # many checks while broken: still one log line
    worker = Worker(settings, ledger=Ledger.open(settings.store))
    worker.open()
    running = threading.Thread(target=worker.run_forever, daemon=True)
    running.start()
    app = dashboard_app(settings, ledger)
    try:
        before = _surfaces(app, ledger, config)
        assert 'connector_sink_state{sink="rec",state="ok"} 1.0' in before["metrics"]
        assert "broken" not in before["status"] and "broken_mapping" not in before["readyz"]

        caplog.set_level(logging.INFO, logger="connector.engine.worker")
        good = mapping.read_text()
        _save(mapping, _broken(good))
        _wait(lambda: ledger.sinks.status("rec").mapping_error, "the worker to record the broken mapping")
        worker.stop_requested.wait(0.5)  # ten more checks of the same broken file
        where = f"{mapping}:"
        shown = _surfaces(app, ledger, config)
        assert shown["readyz_code"] == "200"  # the previous mapping still delivers: a warning, not "not ready"
        assert "broken_mapping" in shown["readyz"] and where in shown["readyz"]
        assert "no_such_reason" in shown["readyz"]
        assert "broken mapping" in shown["status"] and where in shown["status"] and "no_such_reason" in shown["status"]
        assert "fix: connector validate --config" in shown["status"]
        assert "broken-mapping" in shown["dashboard"] and where in shown["dashboard"]
        assert "no_such_reason" in shown["dashboard"]
        assert 'connector_sink_state{sink="rec",state="broken_mapping"} 1.0' in shown["metrics"]
        assert 'connector_sink_state{sink="rec",state="ok"} 0.0' in shown["metrics"]
        logged = [r for r in caplog.records if "does not load" in r.getMessage()]
        assert len(logged) == 1, [r.getMessage() for r in logged]
        assert where in logged[0].getMessage()

        _save(mapping, good)
        _wait(lambda: not ledger.sinks.status("rec").mapping_error, "the worker to clear the error")
        after = _surfaces(app, ledger, config)
        assert "broken_mapping" not in after["readyz"] and "broken" not in after["status"]
        assert "broken-mapping" not in after["dashboard"]
        assert 'connector_sink_state{sink="rec",state="broken_mapping"} 0.0' in after["metrics"]
        assert 'connector_sink_state{sink="rec",state="ok"} 1.0' in after["metrics"]
        assert any("loads again" in r.getMessage() for r in caplog.records)
    finally:
        worker.stop_requested.set()
        running.join(10)
        worker.ledger.dispose()


def test_a_broken_file_then_another_broken_version_is_logged_again(
    setup: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    settings, ledger, mapping, _config = setup
    worker = Worker(settings, ledger=ledger)
    worker.open()
    caplog.set_level(logging.INFO, logger="connector.engine.worker")
    good = mapping.read_text()
    mapping.write_text(_broken(good))
    for _ in range(3):
        worker._reload_changed_mappings()
    mapping.write_text(_broken(good) + "\nunknown_key: 1\n")
    worker._reload_changed_mappings()
    worker._reload_changed_mappings()
    assert len([r for r in caplog.records if "does not load" in r.getMessage()]) == 2
    assert "unknown_key" in (ledger.sinks.status("rec").mapping_error or "")
    worker.close()


def test_states_carry_the_command_that_fixes_them(setup: tuple) -> None:
    settings, ledger, _mapping, config = setup
    from datetime import timedelta

    from connector.hints import remember_config

    remember_config(config)
    ledger.sinks.pause("rec", "credentials rejected: 401 expired", probe_in_s=60)
    ledger.sinks.block_until("rec", utcnow() + timedelta(minutes=5))
    ledger.sinks.note_missing("rec", {("contacts", "twox_x"): "PROPERTY_DOESNT_EXIST"}, "e1")
    health = assess(ledger, settings)
    sink = health.sinks["rec"]
    assert [c.state for c in sink.conditions] == ["paused", "rate_limited", "missing_fields"]
    assert sink.state == "paused"
    commands = {c.state: c.command for c in sink.conditions}
    assert commands["paused"] == f"connector validate --config {config}"
    assert commands["rate_limited"] is None  # it passes by itself
    assert commands["missing_fields"] == f"connector crm-setup --config {config} --sink rec"
    assert health.engine.state == "dead" and health.engine.command == f"connector serve --config {config}"
    assert not health.delivering
    ledger.sinks.resume("rec")
    ledger.sinks.pause("rec", "the CRM lacks fields contacts.twox_dnc: run `...`", probe_in_s=60)
    assert (
        assess(ledger, settings).sinks["rec"].conditions[0].command
        == f"connector crm-setup --config {config} --sink rec"
    )
    ledger.sinks.heartbeat("w1")
    assert assess(ledger, settings).engine.state == "ok"


def test_a_worker_that_runs_but_cannot_write_its_heartbeat_is_not_told_to_be_started(setup: tuple) -> None:
    """A full disk: the worker ran, its heartbeat aged, and status said "alive: 0 … fix: connector serve"."""
    from datetime import timedelta

    from sqlalchemy import update

    from connector.ledger.schema import workers

    settings, ledger, _mapping, config = setup
    ledger.sinks.heartbeat("stuck")  # this process: its pid runs
    with ledger.engine.begin() as connection:
        connection.execute(update(workers).values(heartbeat_at=utcnow() - timedelta(seconds=40)))
    engine = assess(ledger, settings).engine
    assert engine.state == "dead" and engine.command is None
    assert f"a delivery worker runs here (pid {os.getpid()}) but has not written its heartbeat" in engine.reason
    status = CliRunner().invoke(main, ["status", "--config", str(config)])
    assert "the store may not take writes" in status.output and "fix: connector serve" not in status.output
    readyz = dashboard_app(settings, ledger).test_client().get("/readyz").get_json()
    assert "runs here" in readyz["checks"]["worker"] and "fix" not in readyz
    with ledger.engine.begin() as connection:  # its process gone: then it is dead, and starting one is the fix
        connection.execute(update(workers).values(pid=_dead_pid()))
    assert assess(ledger, settings).engine.command is not None


def _dead_pid() -> int:
    import subprocess

    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


def test_attempts_are_numbered_across_a_replay(setup: tuple, recorder: Recorder) -> None:
    settings, ledger, mapping, config = setup
    from connector.ops.replay import replay_event
    from tests.support.delivery import ingest

    event_id = ingest(ledger, 1)
    recorder.fail_next(1, status=400)  # a permanent refusal: dead after one attempt
    worker = Worker(settings, ledger=ledger)
    worker.open()
    drain(worker)
    delivery = ledger.deliveries_for(event_id)[0]
    assert delivery["status"] == "dead"
    replay_event(ledger, settings, event_id)
    drain(worker)
    worker.close()
    delivery = ledger.deliveries_for(event_id)[0]
    assert delivery["status"] == "succeeded"
    numbers = [a["number"] for a in ledger.deliveries.attempts_for(delivery["id"])]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 2, numbers


def _wait(predicate, what: str, timeout_s: float = 20) -> None:
    from tests.support.processes import wait_until

    wait_until(predicate, timeout_s, what, every_s=0.05)
