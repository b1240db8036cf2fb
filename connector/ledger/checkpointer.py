"""Keeps a SQLite write-ahead log short from a background thread, so that no webhook's commit pays for a checkpoint.

Why: SQLite checkpoints automatically inside the commit that takes the WAL past 1,000 pages
(`wal_autocheckpoint`): it copies the WAL into the database file and syncs both. A receiver's commit
writes about 11 pages (an event row and its delivery, with their indexes), so every 90th webhook or so
paid for that copy while holding the write queue (`write_queue.py`), and every receiver queued behind
it waited as well: 13.5 ms at synchronous=NORMAL and 3.5 ms at FULL, against 0.4 and 0.6 ms for an
ordinary commit (measured in process on a 2-core AMD EPYC host). One webhook in 90 is the p99.

How: the receivers' connections keep automatic checkpoints only as a backstop, far out
(`BACKSTOP_FRAMES`). After each commit the event writer wakes this thread, which runs a PASSIVE
checkpoint: it copies what it can without waiting for readers or writers, and the writers go on
meanwhile; then it rests `INTERVAL_S`. Once the WAL holds `THRESHOLD_FRAMES` (SQLite's own default)
it catches up with a few more passes, then runs a last one inside a write-queue turn: with the
receivers held, it only has the few pages committed during the pass before to copy, and it leaves
the WAL fully copied, which is when SQLite lets the next commit start the WAL over from its beginning.
Checkpoints that always trail the writers would never let it, and the WAL would grow for as long as
webhooks keep coming.

The data never depends on this thread: a checkpoint moves committed pages, it decides nothing, and
SQLite makes one that is cut short (the process killed) harmless. If the thread stalls or fails, the
backstop bounds the WAL; a failure is logged once per process.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from sqlalchemy import Engine

from connector.ledger._errors import guard_public_methods
from connector.ledger.write_queue import WriteQueue

log = logging.getLogger(__name__)

INTERVAL_S = 0.05
"""Between passes that left the WAL short, the thread rests this long; commits meanwhile only wake it again."""

THRESHOLD_FRAMES = 1000
"""A WAL of this many pages gets the second pass that lets SQLite restart it (SQLite's default autocheckpoint)."""

MAX_CATCH_UP_PASSES = 5
CAUGHT_UP_S = 0.002
"""A pass this short left little behind: the next one, in a write-queue turn, holds the receivers about as long."""

BACKSTOP_FRAMES = 10_000
"""The receivers' connections still checkpoint by themselves past this (about 40 MB of WAL at 4 KiB pages)."""

STOP_WAIT_S = 5.0
"""How long `close` waits for a pass under way: it holds a pooled connection of the engine being disposed."""

_PASS_LOCK = threading.Lock()
"""Held by every checkpointer thread of this process during a pass, and by `os.fork` (through the hooks below).

A process forked while this thread was inside SQLite inherits SQLite's internal mutexes locked by a thread
that does not exist in the child: the child's first SQLite call (opening a connection) then waits forever.
The fork waits for the pass under way to end instead (a pass lasts milliseconds), as `logging` makes a fork
wait for its handlers' locks."""


def _renew_pass_lock_in_child() -> None:
    global _PASS_LOCK
    _PASS_LOCK = threading.Lock()


os.register_at_fork(
    before=lambda: _PASS_LOCK.acquire(),
    after_in_parent=lambda: _PASS_LOCK.release(),
    after_in_child=_renew_pass_lock_in_child,
)


@guard_public_methods
class Checkpointer:
    """One background thread per process that checkpoints a SQLite database's WAL on behalf of its writers."""

    def __init__(
        self,
        engine: Engine,
        queue: WriteQueue,
        *,
        interval_s: float = INTERVAL_S,
        threshold_frames: int = THRESHOLD_FRAMES,
    ) -> None:
        self._engine = engine
        self._queue = queue
        self._interval_s = interval_s
        self._threshold_frames = threshold_frames
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._failed_once = False

    def committed(self) -> None:
        """A writer committed: make sure this process's thread runs, and wake it."""
        if self._pid != os.getpid() and not self._stopping:
            self._start()
        self._wake.set()

    def close(self) -> None:
        """Stop the thread (letting a pass under way finish, up to STOP_WAIT_S)."""
        with self._lock:
            self._stopping = True
            thread = self._thread if self._pid == os.getpid() else None
            self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_WAIT_S)

    def checkpoint(self) -> int:
        """One pass, in the caller's thread; returns the WAL's length in pages before the second checkpoint, if any."""
        frames = self._passive()
        if frames < self._threshold_frames:
            return frames
        # Catch up beside the writers first: each pass copies (and, at synchronous=NORMAL, syncs) what was
        # committed during the one before, so passes shorten quickly while the writers go on. The turn is taken
        # once a pass was short: then only a few pages are left to copy with the receivers held.
        for _ in range(MAX_CATCH_UP_PASSES):
            started = time.monotonic()
            self._passive()
            if time.monotonic() - started < CAUGHT_UP_S:
                break
        with self._queue.turn():
            self._passive()
        return frames

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid() or self._stopping:
                return
            # A thread of the parent does not exist in a forked child: each process starts its own, with fresh
            # synchronization objects (a parent's could have been held at the fork).
            self._pid = os.getpid()
            self._wake = threading.Event()
            self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        wake = self._wake
        while True:
            wake.wait()
            if self._stopping:
                return
            wake.clear()
            try:
                with _PASS_LOCK:  # no fork while this thread is inside SQLite
                    restarted = self.checkpoint() >= self._threshold_frames
            except Exception as exc:  # noqa: BLE001 - never let the thread die: the next commit wakes it again
                restarted = False
                if not self._failed_once:
                    self._failed_once = True
                    log.warning("WAL checkpoint failed (SQLite's automatic checkpoint is the backstop): %s", exc)
            if not restarted:  # after a restart the next pass may come at once: the WAL grows as fast as before
                time.sleep(self._interval_s)

    def _passive(self) -> int:
        """PASSIVE: copy what no reader still needs, wait for nobody. Returns the WAL's length in pages."""
        connection = self._engine.raw_connection()  # the DBAPI connection: no BEGIN around the pragma
        try:
            _busy, log_frames, _copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            connection.close()
        return max(int(log_frames), 0)  # -1 when the database is not in WAL mode
