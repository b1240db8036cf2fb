"""The receivers' queue in front of SQLite's write lock: one holder at a time across processes and threads,
released when its holder dies, its own descriptor per forked process, and never in the way of a write."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.context import BaseContext
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from connector.ledger import IngestStatus, Ledger
from connector.ledger.write_queue import SUFFIX, WriteQueue, queue_for
from connector.payload import parse_webhook
from connector.receiver.ingest import content_hash
from connector.sample import sample_payload
from tests.support.settings import make_settings

WAIT_S = 10.0


def _hold(database: str, held: Event, release: Event) -> None:
    with WriteQueue(database).turn():
        held.set()
        release.wait(WAIT_S)


def _hold_forever(database: str, held: Event) -> None:
    with WriteQueue(database).turn():
        held.set()
        time.sleep(WAIT_S * 6)


def _taken_in_thread(queue: WriteQueue) -> tuple[threading.Thread, threading.Event]:
    taken = threading.Event()

    def take() -> None:
        with queue.turn():
            taken.set()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread, taken


@pytest.fixture
def spawn() -> BaseContext:
    return multiprocessing.get_context("spawn")  # a fresh interpreter: nothing inherited from pytest's process


def test_another_process_waits_for_the_turn_and_gets_it_at_release(tmp_path: Path, spawn: BaseContext) -> None:
    database = str(tmp_path / "connector.db")
    held, release = spawn.Event(), spawn.Event()
    holder = spawn.Process(target=_hold, args=(database, held, release))
    holder.start()
    try:
        assert held.wait(WAIT_S), "the holder never got its turn"
        thread, taken = _taken_in_thread(WriteQueue(database))
        assert not taken.wait(0.5), "a second process got the turn while the first held it"
        release.set()
        assert taken.wait(WAIT_S), "the turn was not handed on at release"
        thread.join(WAIT_S)
    finally:
        release.set()
        holder.join(WAIT_S)
    assert Path(database + SUFFIX).exists()


def test_a_holder_killed_mid_turn_does_not_block_the_others(tmp_path: Path, spawn: BaseContext) -> None:
    database = str(tmp_path / "connector.db")
    held = spawn.Event()
    holder = spawn.Process(target=_hold_forever, args=(database, held))
    holder.start()
    try:
        assert held.wait(WAIT_S)
        thread, taken = _taken_in_thread(WriteQueue(database))
        assert not taken.wait(0.3)
        os.kill(holder.pid, signal.SIGKILL)
        assert taken.wait(WAIT_S), "the kernel did not release a dead holder's turn"
        thread.join(WAIT_S)
    finally:
        holder.kill()
        holder.join(WAIT_S)


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    queue = WriteQueue(tmp_path / "connector.db")
    inside, overlaps = [0], []
    lock = threading.Lock()

    def writer() -> None:
        for _ in range(50):
            with queue.turn():
                with lock:
                    inside[0] += 1
                    overlaps.append(inside[0])
                time.sleep(0.0005)
                with lock:
                    inside[0] -= 1

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert len(overlaps) == 200
    assert max(overlaps) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is what gunicorn does to its receivers")
def test_a_forked_child_queues_on_its_own_descriptor(tmp_path: Path) -> None:
    """An flock belongs to an open file: a child using its parent's descriptor would share the parent's turn."""
    queue = WriteQueue(tmp_path / "connector.db")
    with queue.turn():
        pass  # the parent has opened its descriptor
    read_end, write_end = os.pipe()
    with queue.turn():
        pid = os.fork()
        if pid == 0:  # the child: it must wait until the parent's turn ends
            os.close(read_end)
            started = time.monotonic()
            with queue.turn():
                waited = time.monotonic() - started
            os.write(write_end, f"{waited:.3f}".encode())
            os._exit(0)
        os.close(write_end)
        time.sleep(0.5)
    waited_s = float(os.read(read_end, 64).decode())
    os.close(read_end)
    os.waitpid(pid, 0)
    assert waited_s >= 0.4, f"the child took the turn while its parent held it (waited {waited_s} s)"


def test_an_unwritable_place_for_the_lock_file_only_skips_the_queue(tmp_path: Path) -> None:
    queue = WriteQueue(tmp_path / "missing-folder" / "connector.db")
    with queue.turn():
        pass  # no lock file could be made: the write goes on and SQLite reports what is wrong with its path


def test_in_memory_databases_have_no_queue() -> None:
    assert queue_for(":memory:") is None
    assert queue_for("") is None
    assert queue_for(None) is None


def test_receivers_in_several_processes_store_every_event(tmp_path: Path, spawn: BaseContext) -> None:
    """The end to end path: four processes post at once through the queue, every event lands exactly once."""
    url = f"sqlite:///{tmp_path / 'connector.db'}"
    Ledger.open(make_settings(url).store).dispose()  # migrated once, like `serve` before it forks
    with spawn.Pool(4) as pool:
        statuses = pool.starmap(_post_many, [(url, f"p{i}", 40) for i in range(4)])
    assert [s for batch in statuses for s in batch] == [str(IngestStatus.ACCEPTED)] * 160
    ledger = Ledger.open(make_settings(url).store, migrate_schema=False)
    try:
        assert ledger.count_events() == 160
    finally:
        ledger.dispose()


def _post_many(url: str, prefix: str, count: int) -> list[str]:
    ledger = Ledger.open(make_settings(url).store, migrate_schema=False)
    try:
        out = []
        for n in range(count):
            document = sample_payload(f"{prefix}-{n}")
            event = parse_webhook(document, default_region="US")
            result = ledger.record_event(
                event, body=b"{}", content_type="application/json", content_hash=content_hash(document), sinks=["s"]
            )
            out.append(str(result.status))  # compared with IngestStatus.ACCEPTED's value by the caller
        return out
    finally:
        ledger.dispose()
