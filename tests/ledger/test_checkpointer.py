"""The receivers' commits leave WAL checkpoints to a background thread (connector/ledger/checkpointer.py).

Checked on a real SQLite file through the ledger's own write path: a commit no longer checkpoints inside
itself, the thread keeps the WAL short under sustained writes (the backstop never has to act), one pass
lets SQLite restart the WAL, every process runs its own thread, and failures are logged, not fatal.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from connector.config import StoreSettings
from connector.ledger import Ledger
from connector.ledger.checkpointer import BACKSTOP_FRAMES, THRESHOLD_FRAMES, Checkpointer
from connector.ledger.write_queue import WriteQueue
from connector.payload import parse_webhook
from connector.receiver.ingest import content_hash
from connector.sample import sample_payload
from tests.support.forking import fork_queue, run_forked

PAGE_SIZE = 4096


@pytest.fixture
def store(tmp_path: Path) -> StoreSettings:
    return StoreSettings(url=f"sqlite:///{tmp_path / 'ledger.db'}", sqlite_synchronous="NORMAL")


@pytest.fixture
def ledger(store: StoreSettings) -> Iterator[Ledger]:
    opened = Ledger.open(store)
    yield opened
    opened.dispose()


def _record(ledger: Ledger, prefix: str, count: int) -> None:
    for index in range(count):
        document = sample_payload(f"{prefix}-{index}")
        event = parse_webhook(document)
        ledger.record_event(
            event, body=b"{}", content_type="application/json", content_hash=content_hash(document), sinks=["s"]
        )


def _checkpointer(ledger: Ledger) -> Checkpointer:
    checkpointer = ledger._events.checkpointer
    assert checkpointer is not None
    return checkpointer


def _wal_frames(database: Path) -> int:
    """The WAL's length in pages, read without copying anything (a checkpoint that cannot start).

    `PRAGMA wal_checkpoint` would checkpoint; instead the WAL file's size since its header tells the
    length of a WAL that was never restarted (what these tests need: 32-byte header, 24-byte frame headers)."""
    size = (Path(f"{database}-wal")).stat().st_size
    return max(0, (size - 32) // (PAGE_SIZE + 24))


def test_a_receiver_commit_never_checkpoints_below_the_backstop(ledger: Ledger, store: StoreSettings) -> None:
    database = Path(store.url.removeprefix("sqlite:///"))
    checkpointer = _checkpointer(ledger)
    checkpointer.close()  # no thread: only what the commits themselves do is left
    _record(ledger, "inline", 250)  # about 11 pages per event: well past SQLite's automatic 1,000 pages
    frames = _wal_frames(database)
    assert THRESHOLD_FRAMES < frames < BACKSTOP_FRAMES

    assert checkpointer.checkpoint() >= THRESHOLD_FRAMES  # one pass, in this thread
    with sqlite3.connect(database) as connection:
        busy, log_frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert (busy, log_frames, copied) == (0, frames, frames)  # the pass left nothing to copy
    _record(ledger, "after", 1)
    with sqlite3.connect(database) as connection:
        _busy, log_frames, _copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert log_frames < 50  # the next commit started the WAL over from its beginning


def test_the_thread_keeps_the_wal_short_under_sustained_writes(ledger: Ledger, store: StoreSettings) -> None:
    database = Path(store.url.removeprefix("sqlite:///"))
    _record(ledger, "burst", 2500)  # ~27,000 pages written back to back
    # Without the thread the receivers' connections would checkpoint only at the backstop, so the WAL file
    # (which never shrinks) would have reached BACKSTOP_FRAMES pages; the thread restarts it long before.
    assert _wal_frames(database) < BACKSTOP_FRAMES // 2
    assert ledger.count_events() == 2500


def test_each_process_runs_its_own_thread(ledger: Ledger) -> None:
    _record(ledger, "parent", 1)
    checkpointer = _checkpointer(ledger)
    parent_thread = checkpointer._thread
    assert parent_thread is not None and parent_thread.is_alive()

    results = fork_queue()

    def child() -> None:
        _record(ledger, "child", 5)
        thread = checkpointer._thread
        results.put((thread is not None and thread.is_alive(), thread is not parent_thread))

    assert run_forked(child) == 0, "the child hung or failed"
    assert results.get(timeout=5) == (True, True)
    assert parent_thread.is_alive()  # the child's start did not disturb the parent's


def test_dispose_stops_the_thread(store: StoreSettings) -> None:
    ledger = Ledger.open(store)
    _record(ledger, "stop", 1)
    thread = _checkpointer(ledger)._thread
    assert thread is not None and thread.is_alive()
    ledger.dispose()
    assert not thread.is_alive()


def test_a_failing_checkpoint_is_logged_once_and_the_thread_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "not-a-database"
    folder.mkdir()  # SQLite cannot open a directory: every pass fails
    engine = create_engine(f"sqlite:///{folder}")
    checkpointer = Checkpointer(engine, WriteQueue(tmp_path / "queue.db"), interval_s=0.01)
    caplog.set_level(logging.WARNING, logger="connector.ledger.checkpointer")
    try:
        for _ in range(3):
            checkpointer.committed()
            time.sleep(0.05)
        deadline = time.monotonic() + 5
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.01)
        thread = checkpointer._thread
        assert thread is not None and thread.is_alive()
    finally:
        checkpointer.close()
        engine.dispose()
    failures = [r for r in caplog.records if "WAL checkpoint failed" in r.getMessage()]
    assert len(failures) == 1
