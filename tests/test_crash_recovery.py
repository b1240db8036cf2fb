"""Crash recovery in seconds: a dead worker's claims return at once (heartbeats, same-host pid
check) instead of after `lease_s`; a live but slow worker is never declared dead; a worker whose
claims were released stops writing them; `serve` killed with SIGKILL twice mid-backlog and its
embedded worker killed alone both deliver every acknowledged call exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import yaml
from sqlalchemy import update

from connector.default_mappings import default_mapping_path
from connector.engine.worker import DEAD_AFTER_S, Worker
from connector.errors import LeaseLost
from connector.ledger import Ledger
from connector.ledger._clock import utcnow
from connector.ledger.schema import ActionStatus, DeliveryStatus, workers
from connector.sample import sample_payload
from tests.support import processes
from tests.support.delivery import engine_settings, ingest
from tests.support.ledger import truncate_all
from tests.support.net import free_port
from tests.support.recorder import Recorder
from tests.support.settings import TOKEN, make_settings
from tests.support.worker_processes import expected_keys, ingest_many, start_worker, stop, wait_delivered, write_config


def _dead_pid() -> int:
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


def _claim_as(ledger: Ledger, worker_id: str, *, pid: int, host_key: str | None, heartbeat_age_s: float) -> int:
    """Record a worker row as another process would, and let it claim everything due."""
    ledger.sinks.heartbeat(worker_id)
    with ledger.engine.begin() as connection:
        values = {"pid": pid, "heartbeat_at": utcnow() - timedelta(seconds=heartbeat_age_s)}
        if host_key is not None:
            values["host_key"] = host_key
        connection.execute(update(workers).where(workers.c.worker_id == worker_id).values(values))
    return len(ledger.deliveries.claim(worker_id, ["rec"], limit=50, lease_s=600))


def test_claims_of_a_dead_process_on_this_host_return_at_once(ledger: Ledger, recorder: Recorder) -> None:
    settings = engine_settings(str(ledger.engine.url.render_as_string(hide_password=False)), recorder.url)
    for i in range(3):
        ingest(ledger, 31_000 + i, record_phone_number=f"+1202555{i:04d}")
    from connector.ledger.liveness import host_key

    assert _claim_as(ledger, "crashed", pid=_dead_pid(), host_key=host_key(), heartbeat_age_s=0) == 3
    worker = Worker(settings, ledger=ledger, worker_id="survivor")
    worker.open()
    try:
        assert worker.recover_dead_workers() == 3  # no waiting for the 600 s lease, nor for a stale heartbeat
        assert ledger.deliveries.counts() == {("rec", "pending"): 3}
        assert "declared dead" in ledger.sinks.recent_exits(within_s=60)[0]["exit_reason"]
    finally:
        worker.close()


def test_a_silent_worker_elsewhere_is_dead_after_a_few_beats_but_not_right_after_an_outage(
    ledger: Ledger, recorder: Recorder
) -> None:
    settings = engine_settings(str(ledger.engine.url.render_as_string(hide_password=False)), recorder.url)
    ingest(ledger, 32_000, record_phone_number="+12025550100")
    ingest(ledger, 32_001, record_phone_number="+12025550101")
    assert _claim_as(ledger, "remote-live", pid=os.getpid(), host_key="another-host", heartbeat_age_s=1) == 2
    assert _claim_as(ledger, "remote-silent", pid=1, host_key="another-host", heartbeat_age_s=DEAD_AFTER_S + 5) == 0
    # remote-silent holds nothing yet; give it remote-live's claims to make the point per worker
    ledger.deliveries.release_claims_of(["remote-live"])
    assert _claim_as(ledger, "remote-silent", pid=1, host_key="another-host", heartbeat_age_s=DEAD_AFTER_S + 5) == 2
    worker = Worker(settings, ledger=ledger, worker_id="judge")
    worker.open()
    try:
        # Just back from its own outage (or just started): everyone's heartbeat may look old; wait.
        assert worker.recover_dead_workers() == 0
        worker._store_ok_since = time.monotonic() - DEAD_AFTER_S - 1  # noqa: SLF001 - back for a while now
        assert worker.recover_dead_workers() == 2
        _claim_as(ledger, "remote-live", pid=os.getpid(), host_key="another-host", heartbeat_age_s=1)
        assert worker.recover_dead_workers() == 0  # a recent heartbeat is alive, whatever its pid says
    finally:
        worker.close()


def test_a_worker_on_this_host_whose_process_is_gone_is_not_live_though_its_heartbeat_is_fresh(
    ledger: Ledger,
) -> None:
    """/readyz, `status` and the dashboard count live workers: one killed a moment ago must not count."""
    from connector.ledger.liveness import host_key

    truncate_all(ledger)
    for worker_id, pid, host in (
        ("killed-here", _dead_pid(), host_key()),
        ("running-here", os.getpid(), host_key()),
        ("elsewhere", _dead_pid(), "another-host"),  # its pid means nothing here: the heartbeat decides
    ):
        _claim_as(ledger, worker_id, pid=pid, host_key=host, heartbeat_age_s=0)
    assert sorted(w["worker_id"] for w in ledger.sinks.live_workers(within_s=10)) == ["elsewhere", "running-here"]


def test_a_worker_whose_claims_were_released_stops_writing_them(ledger: Ledger) -> None:
    ingest(ledger, 33_000)
    [claimed] = ledger.deliveries.claim("slowpoke", ["rec"], limit=1, lease_s=60)
    attempt = ledger.deliveries.start_attempt(claimed.id, 1, "slowpoke")
    ledger.deliveries.journal_mark(claimed.id, "a", "create_activity", ActionStatus.IN_FLIGHT, owner="slowpoke")
    assert ledger.deliveries.release_claims_of(["slowpoke"]) == 1
    with pytest.raises(LeaseLost):  # no further CRM call is started for it
        ledger.deliveries.journal_mark(claimed.id, "b", "update_contact", ActionStatus.IN_FLIGHT, owner="slowpoke")
    assert not ledger.deliveries.finish(
        claimed.id, attempt, "slowpoke", status=DeliveryStatus.SUCCEEDED, outcome="succeeded"
    )
    assert ledger.deliveries.counts() == {("rec", "pending"): 1}
    assert ledger.deliveries.attempts_for(claimed.id)[-1]["outcome"] == "lease_lost"


def test_renewing_leases_mid_batch_does_not_call_finished_deliveries_lost(
    ledger: Ledger, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """The heartbeat thread renews the leases in hand while a batch runs: deliveries the batch has already
    finished are no longer leased, and must not be reported as "released by another worker"."""
    settings = engine_settings(
        str(ledger.engine.url.render_as_string(hide_password=False)), recorder.url, batch_size=20
    )
    for i in range(20):
        ingest(ledger, 34_000 + i, record_phone_number=f"+1202555{i:04d}")
    recorder.slow_s = 0.01
    worker = Worker(settings, ledger=ledger, worker_id="renewer")
    worker.open()
    renewals = 0
    try:
        with ThreadPoolExecutor(1) as pool, caplog.at_level("WARNING", logger="connector"):
            batch = pool.submit(worker.run_once)
            while not batch.done():
                worker._renew_held()  # noqa: SLF001 - what the heartbeat thread runs, here every few ms
                renewals += 1
                time.sleep(0.003)
            assert batch.result() == 20
    finally:
        worker.close()
    assert renewals > 20
    assert ledger.deliveries.counts() == {("rec", "succeeded"): 20}
    assert not [r.getMessage() for r in caplog.records if "released by another worker" in r.getMessage()]


def test_a_claim_another_worker_took_is_reported_when_two_renewals_miss_it(
    ledger: Ledger, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """The other side of the test above: a claim this worker still holds but no longer leases (another worker took
    it) is reported, by the second renewal that misses it (the first may only have raced the claim's finish)."""
    settings = engine_settings(str(ledger.engine.url.render_as_string(hide_password=False)), recorder.url)
    ingest(ledger, 35_000)
    [taken] = ledger.deliveries.claim("the-other-worker", ["rec"], limit=1, lease_s=60)
    worker = Worker(settings, ledger=ledger, worker_id="renewer")
    worker._held.add(taken.id)  # noqa: SLF001 - as if this worker had claimed it before being declared dead
    try:
        with caplog.at_level("WARNING", logger="connector"):
            worker._renew_held()  # noqa: SLF001
            first = [r for r in caplog.records if "released by another worker" in r.getMessage()]
            worker._renew_held()  # noqa: SLF001
            second = [r for r in caplog.records if "released by another worker" in r.getMessage()]
    finally:
        worker.close()
    assert (len(first), len(second)) == (0, 1)


def test_an_unexpected_error_in_the_heartbeat_thread_does_not_end_the_heartbeat(
    ledger: Ledger, recorder: Recorder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The thread that heartbeats ended on anything but a StoreError (a bug once did it: a TypeError): the worker
    went on delivering while looking dead to every other worker and to /readyz."""
    import connector.engine.worker as worker_module

    monkeypatch.setattr(worker_module, "HEARTBEAT_S", 0.05)
    settings = engine_settings(str(ledger.engine.url.render_as_string(hide_password=False)), recorder.url)
    worker = Worker(settings, ledger=ledger, worker_id="beating")
    worker.open()
    failures = iter([RuntimeError("a bug"), RuntimeError("a bug")])

    def heartbeat_failing_twice(worker_id: str) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        type(ledger.sinks).heartbeat(ledger.sinks, worker_id)

    monkeypatch.setattr(ledger.sinks, "heartbeat", heartbeat_failing_twice)
    truncate_all(ledger)  # no heartbeat so far
    runner = threading.Thread(target=worker.run_forever)
    with caplog.at_level("ERROR", logger="connector"):
        runner.start()
        try:
            processes.wait_until(lambda: ledger.sinks.live_workers(within_s=5), 5, "a heartbeat after the failures")
        finally:
            worker.stop_requested.set()
            runner.join(10)
    said = [r for r in caplog.records if "heartbeat or lease renewal failed unexpectedly" in r.getMessage()]
    assert len(said) == 1 and said[0].exc_info is not None  # once, with its traceback, not every beat


@pytest.mark.slow
def test_a_live_but_slow_worker_is_never_declared_dead(tmp_path: Path, store_url: str, recorder: Recorder) -> None:
    """CRM calls longer than DEAD_AFTER_S (two in a row): the heartbeat thread keeps the worker alive, so a
    second worker never takes its delivery over and nothing is written twice."""
    ledger = Ledger.open(make_settings(store_url).store)
    truncate_all(ledger)
    ids = ingest_many(ledger, 2)
    recorder.slow_s = DEAD_AFTER_S + 4
    recorder.slow_requests = 2  # every request slow took 85 s per backend and showed nothing more
    config = write_config(tmp_path, store_url, recorder)
    slow = start_worker(config)
    try:
        processes.wait_until(lambda: ledger.deliveries.counts().get(("rec", "leased"), 0) >= 1, 30, "a claim")
        other = start_worker(config)
        try:
            wait_delivered(ledger, len(ids), timeout_s=120)
        finally:
            stop(other)
    finally:
        stop(slow)
    assert recorder.duplicates() == {}
    assert len(recorder.writes) == expected_keys(ledger, ids)
    outcomes = [
        a["outcome"] for e in ids for d in ledger.deliveries_for(e) for a in ledger.deliveries.attempts_for(d["id"])
    ]
    assert "lease_lost" not in outcomes
    assert not any("declared dead" in (w["exit_reason"] or "") for w in ledger.sinks.recent_exits(within_s=600))
    ledger.dispose()


def _serve_config(folder: Path, store_url: str, recorder: Recorder, port: int) -> Path:
    config = folder / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {"port": port, "auth": {"header": "X-2X-Token", "tokens": [TOKEN]}},
                "store": {"url": store_url},
                "serve": {"workers": 2},
                "sinks": {
                    "rec": {
                        "type": "http",
                        "url": recorder.url,
                        "mapping": str(default_mapping_path("hubspot")),
                        "headers": {"Authorization": f"Bearer {recorder.token}"},
                    }
                },
                "worker": {
                    "poll_interval_s": 0.05,
                    "lease_s": 60,
                    "batch_size": 5,
                },  # the default lease: never waited out
                "logging": {"level": "WARNING"},
            }
        )
    )
    return config


def _post(port: int, i: int) -> str | None:
    try:
        answer = requests.post(
            f"http://127.0.0.1:{port}/webhooks/2x/post-call",
            headers={"X-2X-Token": TOKEN},
            json=sample_payload(700_000 + i, record_phone_number=f"+1202555{i:04d}"),
            timeout=10,
        )
    except requests.RequestException:
        return None
    return answer.json()["id"] if answer.status_code == 202 else None


def _succeeded(ledger: Ledger, ids: list[str]) -> int:
    return sum(1 for e in ids for d in ledger.deliveries_for(e) if d["status"] == "succeeded")


@pytest.mark.slow
def test_serve_killed_twice_mid_backlog_delivers_everything_once_within_seconds(
    tmp_path: Path, store_url: str, recorder: Recorder
) -> None:
    ledger = Ledger.open(make_settings(store_url).store)
    truncate_all(ledger)
    port = free_port()
    config = _serve_config(tmp_path, store_url, recorder, port)
    log = tmp_path / "serve.log"
    recorder.slow_s = 0.05  # a backlog builds up: the worker is slower than 2X
    acknowledged: list[str] = []
    server = processes.start(["serve", "--config", str(config)], tmp_path, log)
    processes.wait_ready(server, port, log)
    with ThreadPoolExecutor(4) as pool:
        acknowledged += [i for i in pool.map(lambda i: _post(port, i), range(64)) if i]
    assert len(acknowledged) == 64
    for _round in range(2):
        before = len(recorder.writes)
        processes.wait_until(  # kill while it holds claims, not between two batches
            lambda before=before: (
                len(recorder.writes) >= before + 15 and ledger.deliveries.counts().get(("rec", "leased"), 0)
            ),
            60,
            "deliveries in progress",
        )
        os.killpg(server.pid, signal.SIGKILL)  # receiver, master and embedded worker, mid-CRM-call
        server.wait(10)
        assert ledger.deliveries.counts().get(("rec", "leased"), 0) >= 1, "it died holding claims"
        server = processes.start(["serve", "--config", str(config)], tmp_path, log)
        restarted = time.monotonic()
        processes.wait_ready(server, port, log)
    try:
        processes.wait_until(lambda: _succeeded(ledger, acknowledged) == len(acknowledged), 60, "the backlog")
        took = time.monotonic() - restarted
    finally:
        processes.stop(server)
    print(f"backlog done {took:.1f} s after the second restart (lease_s is 60 s)")
    assert took < 30
    assert recorder.duplicates() == {}
    assert {f"2x-{e}:activity" for e in acknowledged} <= recorder.keys()
    ledger.dispose()


def _children(pid: int) -> list[int]:
    """The pids of a process's children (Linux /proc)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


@pytest.mark.slow
def test_serve_restarts_at_once_when_only_its_master_was_killed(tmp_path: Path, recorder: Recorder) -> None:
    """`kill -9` of the master alone (not its process group): its receivers and its worker follow it within
    seconds, so the port is free and an immediate restart serves and delivers."""
    url = f"sqlite:///{tmp_path / 'master.db'}"
    port = free_port()
    config = _serve_config(tmp_path, url, recorder, port)
    log = tmp_path / "serve.log"
    ledger = Ledger.open(make_settings(url).store)
    server = processes.start(["serve", "--config", str(config)], tmp_path, log)
    try:
        processes.wait_ready(server, port, log)
        children = processes.wait_until(lambda: len(_children(server.pid)) == 3 and _children(server.pid), 20, "3")
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        killed = time.monotonic()
        gone: dict[int, float] = {}

        def all_gone() -> bool:
            gone.update({pid: time.monotonic() - killed for pid in children if pid not in gone and not _alive(pid)})
            return len(gone) == len(children)

        processes.wait_until(all_gone, 5, "the master's children to exit", every_s=0.02)
        print("children gone after the master:", ", ".join(f"{s:.2f} s" for s in sorted(gone.values())))
    finally:
        processes.stop(server)  # the process group: nothing is left behind if the test failed
    with processes.serving(["serve", "--config", str(config)], tmp_path, port, log):
        ids = [i for i in (_post(port, 900 + n) for n in range(5)) if i]
        processes.wait_until(lambda: _succeeded(ledger, ids) == 5, 30, "delivery after the restart")
    assert recorder.duplicates() == {}
    ledger.dispose()


def _alive(pid: int) -> bool:
    """Running, not exited (a zombie waits for its new parent to reap it: it has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.slow
def test_the_embedded_worker_killed_alone_is_back_within_seconds(tmp_path: Path, recorder: Recorder) -> None:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    port = free_port()
    config = _serve_config(tmp_path, url, recorder, port)
    log = tmp_path / "serve.log"
    ledger = Ledger.open(make_settings(url).store)
    with processes.serving(["serve", "--config", str(config)], tmp_path, port, log):
        [first] = ledger.sinks.live_workers(within_s=10)
        os.kill(first["pid"], signal.SIGKILL)
        killed = time.monotonic()
        second = processes.wait_until(
            lambda: [w for w in ledger.sinks.live_workers(within_s=10) if w["pid"] != first["pid"]],
            20,
            "a new embedded worker",
        )
        back = time.monotonic() - killed
        ready = processes.wait_until(
            lambda: (r := processes.readyz(port)) and r["status_code"] == 200 and r, 20, "ready again"
        )
        ids = [i for i in (_post(port, 500 + n) for n in range(10)) if i]
        processes.wait_until(lambda: _succeeded(ledger, ids) == 10, 30, "delivery after the restart")
        status = subprocess.run(
            [*processes.CONNECTOR, "status", "--json", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        text = subprocess.run(
            [*processes.CONNECTOR, "status", "--config", str(config)], capture_output=True, text=True, timeout=60
        )
    print(f"embedded worker back {back:.1f} s after kill -9")
    assert len(second) == 1 and back < 10
    assert "SIGKILL" in ready["checks"]["worker_last_exit"] or "not available" in ready["checks"]["worker_last_exit"]
    assert "worker_exits" in status.stdout and "restarted after" in status.stdout
    assert "last exit:" in text.stdout and "restarted after" in text.stdout
    assert recorder.duplicates() == {}
    assert "Traceback" not in log.read_text(errors="replace")
    ledger.dispose()
