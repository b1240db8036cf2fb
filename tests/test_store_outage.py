"""Store outages: every ledger module raises StoreError, /readyz probes a real write, and workers
(standalone and embedded) ride through a real PostgreSQL restart and a locked SQLite file, delivering
every acknowledged call exactly once. The PostgreSQL server here is the test's own (initdb on a
free port), so the shared server other tests use is never stopped."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import yaml

from connector.default_mappings import default_mapping_path
from connector.errors import StoreDataError, StoreError
from connector.ledger import Ledger
from connector.sample import sample_payload
from tests.support import pg_instance, processes
from tests.support.delivery import ingest
from tests.support.net import free_port
from tests.support.recorder import Recorder
from tests.support.settings import TOKEN, make_settings
from tests.support.worker_processes import expected_keys, ingest_many, start_worker, stop, wait_delivered, write_config

pytestmark = pytest.mark.slow


@pytest.fixture
def private_pg() -> Iterator[pg_instance.PrivatePostgres]:
    reason = pg_instance.available()
    if reason:
        pytest.skip(f"no private PostgreSQL server: {reason}")
    server = pg_instance.PrivatePostgres()
    server.init()
    server.wait_ready()
    yield server
    server.destroy()


def test_every_ledger_module_raises_store_error_while_postgresql_is_down_and_recovers(
    private_pg: pg_instance.PrivatePostgres,
) -> None:
    ledger = Ledger.open(make_settings(private_pg.url).store)
    event_id = ingest(ledger, 4242)
    private_pg.stop()
    calls = {
        "record_event": lambda: ingest(ledger, 4243),
        "get_event": lambda: ledger.get_event(event_id),
        "probe": lambda: ledger.probe("test"),
        "claim": lambda: ledger.deliveries.claim("w", ["rec"], limit=5, lease_s=30),
        "sweep": ledger.deliveries.sweep_expired,
        "counts": ledger.deliveries.counts,
        "heartbeat": lambda: ledger.sinks.heartbeat("w"),
        "sink status": lambda: ledger.sinks.status("rec"),
        "token bucket": lambda: ledger.sinks.take_tokens("rec", 1, capacity=10, per_second=1),
    }
    for name, call in calls.items():
        with pytest.raises(StoreError) as raised:
            call()
        assert not isinstance(raised.value, StoreDataError), name  # an outage, not the data's fault
    private_pg.start()
    # The pool's pre-ping replaces the connections the restart killed: the first call works.
    assert ledger.get_event(event_id) is not None
    ledger.probe("test")
    assert len(ledger.deliveries.claim("w", ["rec"], limit=5, lease_s=30)) == 1
    ledger.dispose()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Another process holds the SQLite file's write lock for the block."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_readyz_probes_a_write_so_a_locked_sqlite_store_is_not_ready(tmp_path: Path) -> None:
    from connector.app import create_app

    path = tmp_path / "locked.db"
    settings = make_settings(f"sqlite:///{path}", store={"url": f"sqlite:///{path}", "sqlite_busy_timeout_ms": 200})
    ledger = Ledger.open(settings.store)
    app = create_app(settings, ledger=ledger).test_client()
    assert app.get("/readyz").status_code == 200
    with _locked(path):
        ledger.ping()  # SELECT 1 still passes (WAL readers are never blocked): the old probe said "ok"
        answer = app.get("/readyz")
        assert answer.status_code == 503
        assert "cannot take a write" in answer.get_json()["checks"]["store"]
        with pytest.raises(StoreError):
            ledger.deliveries.claim("w", ["rec"], limit=1, lease_s=30)
    assert app.get("/readyz").status_code == 200
    ledger.dispose()


def test_readyz_answers_within_a_probes_patience_while_sqlite_is_locked(tmp_path: Path) -> None:
    """A load balancer's probe times out in a few seconds: /readyz waited the store's whole busy timeout (10 s)."""
    from connector.app import create_app
    from connector.ledger.store import PROBE_WAIT_MS

    path = tmp_path / "locked.db"
    settings = make_settings(f"sqlite:///{path}", store={"url": f"sqlite:///{path}"})  # busy timeout 10 s
    ledger = Ledger.open(settings.store)
    app = create_app(settings, ledger=ledger).test_client()
    assert app.get("/readyz").status_code == 200
    with _locked(path):
        started = time.monotonic()
        answer = app.get("/readyz")
        took = time.monotonic() - started
    assert answer.status_code == 503
    assert answer.get_json()["checks"]["store"] == "store cannot take a write: OperationalError: database is locked"
    assert PROBE_WAIT_MS / 1000 - 0.1 < took < PROBE_WAIT_MS / 1000 + 1.5
    assert app.get("/readyz").status_code == 200
    with ledger.engine.connect() as connection:  # every pooled connection still waits the store's own timeout
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == settings.store.sqlite_busy_timeout_ms
    ledger.dispose()


def test_standalone_worker_rides_through_a_postgresql_restart(
    tmp_path: Path, recorder: Recorder, private_pg: pg_instance.PrivatePostgres
) -> None:
    ledger = Ledger.open(make_settings(private_pg.url).store)
    ids = ingest_many(ledger, 80)
    ledger.dispose()
    recorder.slow_s = 0.03
    worker = start_worker(write_config(tmp_path, private_pg.url, recorder))
    try:
        processes.wait_until(lambda: len(recorder.writes) >= 20, 60, "the first deliveries")
        private_pg.restart(down_s=3.0)  # SIGTERM to every backend, as `pg_ctl restart` does
        ledger = Ledger.open(make_settings(private_pg.url).store)
        wait_delivered(ledger, len(ids))
        assert worker.poll() is None, "the worker exited during the outage"
    finally:
        stop(worker)
    errors = worker.stderr.read()
    assert "Traceback" not in errors, errors
    assert "store unavailable" in errors  # said once, without a traceback
    assert errors.count("store unavailable") <= 2, errors
    assert recorder.duplicates() == {}
    assert len(recorder.writes) == expected_keys(ledger, ids)
    ledger.dispose()


def test_standalone_worker_rides_through_a_locked_sqlite_store(tmp_path: Path, recorder: Recorder) -> None:
    path = tmp_path / "worker.db"
    url = f"sqlite:///{path}"
    ledger = Ledger.open(make_settings(url).store)
    ids = ingest_many(ledger, 40)
    config = write_config(tmp_path, url, recorder)
    document = yaml.safe_load(config.read_text())
    document["store"]["sqlite_busy_timeout_ms"] = 300
    config.write_text(yaml.safe_dump(document))
    recorder.slow_s = 0.03
    worker = start_worker(config)
    try:
        processes.wait_until(lambda: len(recorder.writes) >= 10, 60, "the first deliveries")
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        time.sleep(4)
        holder.execute("ROLLBACK")
        holder.close()
        wait_delivered(ledger, len(ids))
        assert worker.poll() is None
    finally:
        stop(worker)
    errors = worker.stderr.read()
    assert "Traceback" not in errors, errors
    assert recorder.duplicates() == {}
    assert len(recorder.writes) == expected_keys(ledger, ids)
    ledger.dispose()


def test_serve_rides_through_a_postgresql_restart(
    tmp_path: Path, recorder: Recorder, private_pg: pg_instance.PrivatePostgres
) -> None:
    """The receiver answers 503 + Retry-After while the store is down and 202 again right after;
    the embedded worker stays up (no restart) and delivers every acknowledged call exactly once."""
    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {"port": port, "auth": {"header": "X-2X-Token", "tokens": [TOKEN]}},
                "store": {"url": private_pg.url},
                "serve": {"workers": 2},
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
    recorder.slow_s = 0.02
    acknowledged: list[str] = []
    answers: list[tuple[float, int, str | None]] = []
    sending = threading.Event()
    sending.set()

    def send(start: int) -> None:
        i = start
        while sending.is_set():
            try:
                answer = requests.post(
                    f"http://127.0.0.1:{port}/webhooks/2x/post-call",
                    timeout=15,
                    json=sample_payload(900_000 + i, record_phone_number=f"+1202555{i % 10_000:04d}"),
                    headers={"X-2X-Token": TOKEN},
                )
            except requests.RequestException:
                continue
            answers.append((time.monotonic(), answer.status_code, answer.headers.get("Retry-After")))
            if answer.status_code == 202:
                acknowledged.append(answer.json()["id"])
                i += 2
            time.sleep(0.02)

    log = tmp_path / "serve.log"
    with processes.serving(["serve", "--config", str(config)], tmp_path, port, log) as server:
        first_worker = processes.readyz(port)
        with ThreadPoolExecutor(2) as pool:
            senders = [pool.submit(send, n) for n in range(2)]
            processes.wait_until(lambda: len(acknowledged) >= 20 and len(recorder.writes) >= 10, 60, "traffic")
            private_pg.stop()
            down_at = time.monotonic()
            time.sleep(1.0)
            during = processes.readyz(port)
            time.sleep(2.0)
            starting_at = time.monotonic()
            private_pg.start()
            back_at = time.monotonic()
            processes.wait_until(lambda: any(t > back_at and s == 202 for t, s, _ in answers), 30, "a 202 after")
            time.sleep(1.0)
            sending.clear()
            for sender in senders:
                sender.result()
        ledger = Ledger.open(make_settings(private_pg.url).store, migrate_schema=False)
        processes.wait_until(
            lambda: all(d["status"] == "succeeded" for e in acknowledged for d in ledger.deliveries_for(e)),
            90,
            "every acknowledged call delivered",
        )
        after = processes.readyz(port)
        assert server.poll() is None
    outage = [(t, s, r) for t, s, r in answers if down_at + 0.5 < t < starting_at]
    assert outage and all(s == 503 and r for _, s, r in outage), outage[:5]
    first_202 = min(t for t, s, _ in answers if t > back_at and s == 202)
    print(f"first 202 {first_202 - back_at:.2f} s after PostgreSQL accepted connections again")
    assert first_202 - back_at < 3.0  # pre-ping: no stale pooled connections (measured well under 1 s)
    assert during is not None and during["status_code"] == 503 and during["checks"]["store"] != "ok"
    assert after is not None and after["status_code"] == 200
    assert "worker_last_exit" not in after["checks"], after  # the embedded worker never died
    assert first_worker is not None and first_worker["checks"]["worker"] == "1 alive"
    assert recorder.duplicates() == {}
    assert {f"2x-{e}:activity" for e in acknowledged} <= recorder.keys()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text
    # One line per receiver process when the outage starts and one when it ends, not one per 503.
    assert len(outage) > 4
    assert 1 <= text.count("store unavailable, webhooks are answered 503") <= 2
    assert 1 <= text.count("store available again after") <= 2
    ledger.dispose()


def test_the_receiver_logs_an_outage_once_not_each_refused_webhook(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from connector.app import create_app

    path = tmp_path / "locked.db"
    settings = make_settings(f"sqlite:///{path}", store={"url": f"sqlite:///{path}", "sqlite_busy_timeout_ms": 100})
    ledger = Ledger.open(settings.store)
    app = create_app(settings, ledger=ledger).test_client()

    def post(i: int) -> int:
        return app.post(
            "/webhooks/2x/post-call", json=sample_payload(5_000 + i), headers={"Authorization": TOKEN}
        ).status_code

    with _locked(path), caplog.at_level("WARNING", logger="connector"):
        assert [post(i) for i in range(5)] == [503] * 5
    with caplog.at_level("WARNING", logger="connector"):
        assert post(5) == 202
        assert post(6) == 202
    lines = [r.getMessage() for r in caplog.records if r.name == "connector.receiver.webhook"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("store unavailable, webhooks are answered 503 (2X retries them): ")
    assert lines[1].startswith("store available again after ") and "5 webhooks were answered 503" in lines[1]
    ledger.dispose()


def test_a_long_outage_is_recalled_with_the_count_of_refused_webhooks(caplog: pytest.LogCaptureFixture) -> None:
    from connector.receiver.outage import OutageLog

    outage = OutageLog(remind_every_s=0.05)
    with caplog.at_level("WARNING", logger="connector"):
        outage.stored()  # no outage: nothing to say
        for _ in range(3):
            outage.refused(StoreError("store unavailable while trying to store the event: OperationalError"))
        time.sleep(0.06)
        outage.refused(StoreError("store unavailable while trying to store the event: OperationalError"))
        outage.stored()
        outage.stored()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[1].startswith("store still unavailable after ") and ": 3 webhooks answered 503 in the last" in lines[1]
    assert "4 webhooks were answered 503 meanwhile" in lines[2]


def _read_only(server: pg_instance.PrivatePostgres, on: bool) -> None:
    """Make the whole server refuse writes (as a promoted-away primary or a full disk would)."""
    import sqlalchemy as sa

    admin = sa.create_engine(server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"ALTER SYSTEM SET default_transaction_read_only = {'on' if on else 'off'}"))
        connection.execute(sa.text("SELECT pg_reload_conf()"))
    admin.dispose()


def test_an_idle_worker_survives_a_quick_restart_and_a_read_only_server(
    tmp_path: Path, recorder: Recorder, private_pg: pg_instance.PrivatePostgres
) -> None:
    """The two cases users saw kill `connector worker`: a 0.24 s `pg_ctl restart` while it was idle,
    and a server that turned read-only (then /readyz said "store ok", since it only ran SELECT 1)."""
    from connector.app import create_app

    settings = make_settings(private_pg.url, sinks={})
    ledger = Ledger.open(settings.store)
    worker = start_worker(write_config(tmp_path, private_pg.url, recorder))
    try:
        processes.wait_until(lambda: ledger.sinks.live_workers(within_s=10), 30, "the worker's heartbeat")
        private_pg.restart(down_s=0.24)
        time.sleep(3)
        assert worker.poll() is None, "the idle worker exited on a quick restart"
        ids = ingest_many(ledger, 30)
        recorder.slow_s = 0.05
        processes.wait_until(lambda: len(recorder.writes) >= 10, 60, "deliveries")
        _read_only(private_pg, True)
        time.sleep(1)
        readyz = create_app(settings, ledger=ledger).test_client().get("/readyz")
        assert readyz.status_code == 503
        assert "cannot take a write" in readyz.get_json()["checks"]["store"]
        time.sleep(3)
        assert worker.poll() is None, "the worker exited on a read-only server"
        _read_only(private_pg, False)
        wait_delivered(ledger, len(ids))
    finally:
        stop(worker)
    errors = worker.stderr.read()
    assert "Traceback" not in errors, errors
    assert recorder.duplicates() == {}
    assert len(recorder.writes) == expected_keys(ledger, ids)
    ledger.dispose()
