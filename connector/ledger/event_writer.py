"""The receiver's commit: one event row and its delivery rows in one transaction, at the DBAPI level.

Why not `Connection.execute`: on this path, once per webhook, SQLAlchemy's per-execution machinery
(connection and transaction objects, the "begin" event issuing BEGIN IMMEDIATE through a full
execution context, the compiled-cache lookup, result objects) cost about 95 µs of CPU per event
against about 65 µs for the whole insert at the DBAPI level (measured with SQLite
synchronous=NORMAL; `python bench/ingest_profile.py` shows the receiver's profile). On SQLite that
work also runs while the write lock is held, so it lengthens every other worker's wait.

On PostgreSQL the event and its deliveries go as one statement in autocommit (the event's INSERT in a WITH
clause): one round trip instead of five, which `python bench/pg_commit.py` measured at 0.98 → 0.60 ms per event,
420 → 194 µs of the receiver's CPU and 410 → 290 µs of the server's.

SQLAlchemy still does the rest: the SQL is compiled once from the `events` and `deliveries`
tables for the engine's dialect, values go through each column type's own bind processor (so a
datetime is stored exactly as `Connection.execute` would store it), the connection comes from
the engine's pool (its pragmas, pre-ping and reset-on-return unchanged), and driver errors are
wrapped into SQLAlchemy's exception classes (`IntegrityError` for a taken id, `DataError`,
`OperationalError` …), a dropped connection being invalidated as SQLAlchemy does; they then leave
`write` as StoreError, like every ledger failure, except `IntegrityError` (the id is taken).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

from sqlalchemy import Engine, Table
from sqlalchemy.exc import DBAPIError

from connector.ledger._errors import guard_public_methods, translating
from connector.ledger.checkpointer import BACKSTOP_FRAMES, Checkpointer
from connector.ledger.schema import deliveries, events
from connector.ledger.write_queue import WriteQueue, queue_for


class _Insert:
    """An INSERT of some columns of a table, compiled once for one dialect, with its bind processors."""

    def __init__(self, table: Table, columns: Sequence[str], engine: Engine) -> None:
        dialect = engine.dialect
        compiled = table.insert().compile(dialect=dialect, column_keys=list(columns), for_executemany=True)
        self.sql: str = compiled.string
        self.positional: bool = bool(compiled.positional)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ()) if self.positional else tuple(columns)
        needed = set(compiled.construct_params(dict.fromkeys(columns)))
        if needed != set(columns):  # e.g. a column default the compiler would fill in: not on this path
            raise ValueError(f"INSERT INTO {table.name} needs {sorted(needed)}, given {sorted(columns)}")
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for name in columns:
            processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor

    def parameters(self, row: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        processors = self.processors
        values = {name: (processors[name](row[name]) if name in processors else row[name]) for name in self.names}
        return tuple(values[name] for name in self.names) if self.positional else values


@guard_public_methods
class EventWriter:
    """Inserts an event and its deliveries in one committed transaction (BEGIN IMMEDIATE on SQLite)."""

    def __init__(self, engine: Engine, event_columns: Sequence[str], delivery_columns: Sequence[str]) -> None:
        self._engine = engine
        self._dialect = engine.dialect
        self._immediate = engine.dialect.name == "sqlite"
        self._queue: WriteQueue | None = queue_for(engine.url.database) if self._immediate else None
        self.checkpointer = Checkpointer(engine, self._queue) if self._queue is not None else None
        self._event = _Insert(events, event_columns, engine)
        self._delivery = _Insert(deliveries, delivery_columns, engine)
        self._one_statement = engine.dialect.name == "postgresql" and not self._event.positional
        self._combined: dict[tuple[int, str, str], str] = {}

    def write(self, event_row: dict[str, Any], delivery_rows: list[dict[str, Any]]) -> None:
        """Commit both inserts or neither; IntegrityError for a taken id, StoreError for any other failure."""
        with translating("store the event"):
            self._write(event_row, delivery_rows)

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        if self._queue is not None:
            self._queue.close()

    def _write(self, event_row: dict[str, Any], delivery_rows: list[dict[str, Any]]) -> None:
        # Values are prepared before the transaction: on SQLite nothing but the inserts runs under the write lock.
        event_values = self._event.parameters(event_row)
        delivery_values = [self._delivery.parameters(row) for row in delivery_rows]
        # SQLite: wait in the kernel's queue, not in SQLite's sleeping busy handler
        with self._queue.turn() if self._queue is not None else nullcontext():
            self._commit(event_values, delivery_values)
        if self.checkpointer is not None:
            self.checkpointer.committed()  # the WAL is copied back from a thread, never inside this commit

    def _commit(self, event_values: Any, delivery_values: list[Any]) -> None:
        connection: Any = None
        cursor: Any = None
        statement: str | None = None
        try:
            connection = self._engine.raw_connection()  # from the pool (pre-ping included), like engine.begin()
            cursor = connection.cursor()
            if self.checkpointer is not None and not connection.info.get(_CHECKPOINTS_DEFERRED):
                # per connection, once: its commits no longer checkpoint (the checkpointer does), short of the backstop
                cursor.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_FRAMES}")
                connection.info[_CHECKPOINTS_DEFERRED] = True
            if self._one_statement:
                statement = self._combined_sql(len(delivery_values))
                self._commit_one_statement(connection, cursor, statement, event_values, delivery_values)
                return
            if self._immediate:
                statement = "BEGIN IMMEDIATE"  # take the write lock up front (see connector.ledger.engine)
                cursor.execute(statement)
            statement = self._event.sql
            cursor.execute(statement, event_values)
            if delivery_values:
                statement = self._delivery.sql
                cursor.executemany(statement, delivery_values)
            statement = "COMMIT"
            connection.commit()
        except Exception as exc:
            wrapped = self._wrapped(exc, connection, cursor, statement)
            if wrapped is exc:
                raise
            raise wrapped from exc
        finally:
            if cursor is not None:
                _quietly(cursor.close)
            if connection is not None:
                connection.close()  # back to the pool, which rolls back anything left open

    def _combined_sql(self, deliveries_count: int) -> str:
        """PostgreSQL: the event and its deliveries as one statement, the event's INSERT in a WITH clause.

        PostgreSQL runs a data-modifying WITH clause whether or not the rest reads it, and checks the deliveries'
        foreign key at the end of the statement, when the event row exists. Each delivery row gets its own
        parameter names (`d0_sink`, `d1_sink` …) and keeps the casts SQLAlchemy compiled."""
        key = (deliveries_count, self._event.sql, self._delivery.sql)  # str hashes are cached: an O(1) key
        sql = self._combined.get(key)
        if sql is None:
            if deliveries_count == 0:
                sql = self._event.sql
            else:
                head, _, row = self._delivery.sql.partition(" VALUES ")
                rows = ", ".join(_PARAMETER.sub(rf"%(d{i}_\1)s", row) for i in range(deliveries_count))
                sql = f"WITH inserted_event AS ({self._event.sql} RETURNING 1) {head} VALUES {rows}"
            self._combined[key] = sql
        return sql

    @staticmethod
    def _commit_one_statement(
        connection: Any, cursor: Any, statement: str, event_values: Any, delivery_values: list[Any]
    ) -> None:
        """One round trip to PostgreSQL instead of five (BEGIN, two INSERTs, their sync, COMMIT): the statement
        runs in autocommit, as its own transaction, and commits as durably as COMMIT does (synchronous_commit
        applies alike). A failure leaves nothing behind: the statement is atomic."""
        parameters = dict(event_values)
        for i, row in enumerate(delivery_values):
            parameters.update({f"d{i}_{name}": value for name, value in row.items()})
        dbapi_connection = connection.dbapi_connection
        dbapi_connection.autocommit = True  # the pool hands out idle connections: no transaction is open
        try:
            cursor.execute(statement, parameters)
        finally:
            _quietly(lambda: setattr(dbapi_connection, "autocommit", False))  # as the pool expects it back

    def _wrapped(self, exc: Exception, connection: Any, cursor: Any, statement: str | None) -> Exception:
        """Roll back and wrap a driver error the way `Connection.execute` does; other errors pass unchanged.

        `connection` is None when the pool could not even connect (the store is down).
        """
        dialect = self._dialect
        dbapi_error = dialect.loaded_dbapi.Error
        dbapi_connection = connection.dbapi_connection if connection is not None else None
        disconnect = isinstance(exc, dbapi_error) and dialect.is_disconnect(exc, dbapi_connection, cursor)
        if connection is not None:
            if disconnect:
                connection.invalidate(exc)  # the pool replaces it, as after a failed Connection.execute
            else:
                _quietly(connection.rollback)
        if not isinstance(exc, dbapi_error):
            return exc
        # hide_parameters: the values are a caller's payload (phones, names); never put them in an error text
        return DBAPIError.instance(
            statement, None, exc, dbapi_error, hide_parameters=True, connection_invalidated=disconnect, dialect=dialect
        )


_PARAMETER = re.compile(r"%\((\w+)\)s")
"""A named parameter of psycopg's pyformat style, as SQLAlchemy compiles them."""

_CHECKPOINTS_DEFERRED = "connector_checkpoints_deferred"
"""Connection info key: this pooled SQLite connection leaves checkpoints to the checkpointer."""


def _quietly(action: Callable[[], Any]) -> None:
    """Run a clean-up step whose failure must not hide the error being raised."""
    try:
        action()
    except Exception:  # noqa: BLE001,S110 - the original error is what the caller needs to see
        pass
