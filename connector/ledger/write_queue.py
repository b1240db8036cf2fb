"""A queue in front of SQLite's write lock for the receivers' commits: waiters wake when it is free.

Why: SQLite has one writer at a time, and a connection that finds the write lock taken waits in its
busy handler, which *sleeps* 1, 2, 5, 10, 15, 20, 25 … ms between tries (sqliteDefaultBusyCallback in
SQLite's main.c). A receiver's commit holds the lock for well under a millisecond, so under a burst
each webhook that collides sleeps past the moment the lock came free, and the CPU idles while
requests queue (`python bench/ingest.py --stores full` shows it; the README quotes the figures).
Taking an exclusive `flock` on a file beside the database first makes the kernel queue the receivers
and wake the next one as soon as the previous commit ends. (filelock, which guards migrations, polls
a non-blocking lock between sleeps: the very wait this avoids.)

The queue only orders; SQLite's lock still guards the data, so nothing depends on it for
correctness: a writer that does not use it (the delivery worker, the dashboard) is settled by
SQLite as before. The kernel drops a dead process's `flock`, so a receiver killed mid-commit cannot
block the others. A holder waits at most its busy timeout for SQLite's own lock, which bounds how
long the queue can stand still. Threads of one process queue on a thread lock first (an `flock` is
held per open file, which the threads share).
"""

from __future__ import annotations

import fcntl
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

SUFFIX = ".write.lock"

_QUEUES: weakref.WeakSet[WriteQueue] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A child starts with one thread: locks a parent's thread held at the fork would never be released."""
    for queue in list(_QUEUES):
        queue._close()  # the child's copy of the descriptor; the parent's keeps its own lock state
        queue._thread_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class WriteQueue:
    """Exclusive, kernel-queued turns at writing one SQLite database, across processes and threads."""

    def __init__(self, database: str | os.PathLike[str]) -> None:
        self.path = Path(f"{os.fspath(database)}{SUFFIX}")
        self._opened = False
        self._fd: int | None = None
        self._thread_lock = threading.Lock()
        _QUEUES.add(self)

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the queue's head for the block; a file that cannot be opened only skips the queueing."""
        with self._thread_lock:
            fd = self._descriptor()
            if fd is None:
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _descriptor(self) -> int | None:
        """This process's own open file (opened on first use, and again after a fork: a descriptor inherited
        through fork would share its lock with the parent's). Called under the thread lock."""
        if not self._opened:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                self._fd = None  # e.g. a read-only directory: SQLite will say what is wrong on the write
            self._opened = True
        return self._fd

    def close(self) -> None:
        with self._thread_lock:
            self._close()

    def __del__(self) -> None:  # a ledger dropped without dispose() must not leak its descriptor
        self._close()

    def _close(self) -> None:
        if self._fd is not None:
            with suppress(OSError):
                os.close(self._fd)
        self._fd, self._opened = None, False


def queue_for(database: str | None) -> WriteQueue | None:
    """The queue of a SQLite database file; None for an in-memory one (no other process can write it)."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return WriteQueue(database)
