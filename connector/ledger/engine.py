"""Builds the SQLAlchemy engine for the configured store, with the SQLite settings that make it safe.

SQLite: WAL (readers never block the writer), a busy timeout (several gunicorn workers share one
write lock), `synchronous` from the config, foreign keys on, and transactions that begin with
`BEGIN IMMEDIATE` when they will write (execution option `WRITE_OPTION`), so a writer takes the
lock up front instead of failing half-way with "database is locked" when two deferred
transactions both try to upgrade; read-only transactions stay deferred and never block writers.
"""

from __future__ import annotations

import os
import time
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import Pool, QueuePool

from connector.config import StoreSettings

WRITE_OPTION = "connector_writes"
"""Execution option marking a connection that will write; SQLite then begins IMMEDIATE."""


def writer(engine: Engine) -> Engine:
    """The same engine, for transactions that write (IMMEDIATE on SQLite, unchanged elsewhere)."""
    return engine.execution_options(**{WRITE_OPTION: True})


def absent_sqlite_file(store: StoreSettings) -> bool:
    """True for a SQLite store whose file does not exist yet: opening it would create an empty database (commands
    that only read the store, like crm-setup, must not leave one behind)."""
    from sqlalchemy.engine import make_url

    if make_url(store.url).get_backend_name() != "sqlite":
        return False
    file = sqlite_file(store)
    return file is None or not file.is_file()


def make_engine(store: StoreSettings) -> Engine:
    """Create an engine for `store.url`; build one per process (a forked child gets a fresh pool, see below)."""
    if store.url.startswith("sqlite"):
        engine = _sqlite_engine(store)
    else:
        engine = create_engine(store.url, pool_size=5, max_overflow=5)
        _ping_when_idle(engine)
    _ENGINES.add(engine)
    return engine


_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
_INHERITED_POOLS: list[Pool] = []
"""Pools a forked child inherited: kept referenced so that they are never closed, not even by garbage collection."""


def _after_fork_in_child() -> None:
    """A forked child starts every engine it inherited on a new, empty pool.

    `connector serve` builds each worker's engine after the fork, but an app built before it
    (`gunicorn --preload "connector.app:create_app()"`, a test forking a process) hands its children the
    parent's pooled connections. Used from two processes, a SQLite connection can corrupt the database
    ("Do not open an SQLite database connection, then fork(), then try to use that database connection in
    the child process", https://www.sqlite.org/howtocorrupt.html §2.6) and a PostgreSQL one interleaves two
    conversations on one socket. The parent's pool lock may also have been held by another of its threads
    (the WAL checkpointer) at the fork: the child would wait for it forever. `Engine.dispose(close=False)` is
    SQLAlchemy's documented remedy ("Using Connection Pools with Multiprocessing or os.fork()"): a new pool,
    the old one not touched. The old one is kept referenced, because closing a connection (as its garbage
    collection would) is itself an action on the parent's database: SQLite may try to checkpoint and remove
    the WAL when what it thinks is the last connection closes."""
    for engine in list(_ENGINES):
        _INHERITED_POOLS.append(engine.pool)
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)


PING_AFTER_IDLE_S = 1.0
"""A pooled connection unused for longer is pinged before it is handed out; one used more recently is not."""


def _ping_when_idle(engine: Engine) -> None:
    """`pool_pre_ping`, but only for connections idle more than PING_AFTER_IDLE_S.

    Under a backlog a worker checks out a connection a dozen times per batch, milliseconds apart; pinging each
    time was a round trip per transaction. A connection that worked a second ago and broke since (the server
    restarted in that second) fails its statement instead: the pool is invalidated and the caller gets the
    StoreError any outage gives, which it already handles (the worker backs off and retries)."""

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["connector_idle_since"] = time.monotonic()  # a new connection needs no ping either

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("connector_idle_since")
        if since is not None and time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure: the pool replaces the connection and retries
            raise DisconnectionError(f"store connection failed its ping: {exc!r}") from exc


PRIVATE_FILE_MODE = 0o600
"""A new SQLite store is readable by its owner only: it holds every call's phone number, names and transcript."""


def sqlite_file(store: StoreSettings) -> Path | None:
    """The file of a SQLite store (None: another database, in memory, or a `file:` URI SQLite interprets)."""
    from sqlalchemy.engine import make_url

    url = make_url(store.url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:" or "uri" in url.query:
        return None
    return Path(url.database)


def _create_private(file: Path) -> None:
    """Create the store's file owner-only before SQLite does (SQLite would use 0644 under the usual umask, letting
    every local user read the transcripts). SQLite gives the WAL, its -shm index and a rollback journal the
    database file's permissions (os_unix.c, findCreateFileMode and unixOpenSharedMemory), so they follow. An empty
    file is an empty database to SQLite. An existing file keeps the mode its operator chose (`connector validate`
    and `serve` warn when others can read it)."""
    try:
        os.close(os.open(file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE))
    except OSError:  # it exists (another process was first), or its directory is missing: SQLite reports the latter
        return


def _sqlite_engine(store: StoreSettings) -> Engine:
    # A small pool of long-lived connections per process: opening a connection runs the pragmas
    # below, and closing the last one forces a WAL checkpoint, which together cost more than the
    # insert itself. A forked child starts on a new pool (_after_fork_in_child), so connections never
    # cross processes.
    engine = create_engine(
        store.url,
        poolclass=QueuePool,
        pool_size=4,
        max_overflow=8,
        pool_pre_ping=False,
        connect_args={"check_same_thread": False},
    )
    busy_ms = store.sqlite_busy_timeout_ms
    synchronous = store.sqlite_synchronous
    file = sqlite_file(store)

    @event.listens_for(engine, "do_connect")
    def _before_connect(*_args: Any) -> None:
        if file is not None and not file.exists():  # at the first connection, as SQLite would: engines stay lazy
            _create_private(file)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
