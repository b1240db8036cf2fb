"""Many rows upserted in one statement: `INSERT … ON CONFLICT (key) DO UPDATE` from one JSON document on PostgreSQL.

The batch runner upserts a hundred journal rows or contact fields per transaction. Sent as an executemany, that is
a hundred statements the server runs one by one; on PostgreSQL it is one `INSERT … SELECT … FROM
json_to_recordset(:rows)` whose text never changes (psycopg prepares it, the server plans it once). The rows travel
as one JSON text because the stdlib encoder writes it in C: the earlier one-array-per-column form spent a sixth of
the worker's CPU in psycopg's Python array dumper (py-spy, bench/delivery.py pg1). SQLite runs in the process:
there an executemany of the same upsert is already cheap. Statements are built once per table and backend.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Executable, Table, TextClause, bindparam, text
from sqlalchemy import update as sa_update
from sqlalchemy.dialects import sqlite

_BUILT: dict[tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], Any] = {}


def upsert_many(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]], key: Sequence[str], update: Sequence[str]
) -> None:
    """Insert `rows` (dicts with the same columns) into `table`; a row whose `key` columns exist gets its `update`
    columns overwritten. Rows must not repeat a key (PostgreSQL refuses to update one row twice)."""
    if not rows:
        return
    columns = tuple(rows[0])
    dialect = connection.dialect.name
    built_key = (dialect, table.name, columns, tuple(key), tuple(update))
    statement = _BUILT.get(built_key)
    if statement is None:
        statement = _BUILT[built_key] = _build(connection, table, columns, key, update)
    if dialect != "postgresql":
        connection.execute(statement, list(rows))
        return
    assert isinstance(statement, TextClause)
    connection.execute(statement, {"rows": _json_rows(connection, table, columns, rows)})


def _build(
    connection: Connection, table: Table, columns: tuple[str, ...], key: Sequence[str], update: Sequence[str]
) -> Executable:
    if connection.dialect.name != "postgresql":
        statement = sqlite.insert(table)
        return statement.on_conflict_do_update(
            index_elements=[table.c[k] for k in key], set_={c: statement.excluded[c] for c in update}
        )
    quoted = [connection.dialect.identifier_preparer.quote(name) for name in columns]
    assignments = ", ".join(
        f"{q} = excluded.{q}" for name, q in zip(columns, quoted, strict=True) if name in set(update)
    )
    conflict = ", ".join(connection.dialect.identifier_preparer.quote(k) for k in key)
    names = ", ".join(quoted)
    return text(
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {_recordset(connection, table, columns)} "
        f"ON CONFLICT ({conflict}) DO UPDATE SET {assignments}"
    )


def _recordset(connection: Connection, table: Table, columns: tuple[str, ...]) -> str:
    """`json_to_recordset(:rows) AS v(col type, …)`: the JSON rows as a relation typed like the table's columns."""
    quote = connection.dialect.identifier_preparer.quote
    typed = ", ".join(f"{quote(c)} {table.c[c].type.compile(dialect=connection.dialect)}" for c in columns)
    return f"json_to_recordset(CAST(:rows AS json)) AS v({typed})"


def _json_rows(connection: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[dict[str, Any]]) -> str:
    """The rows as one JSON text, each value through its column type's bind processing first (UTCDateTime refuses
    naive datetimes and converts to UTC), since a text statement's parameters bypass it. A batch's rows mostly
    share their timestamps (one `now`), so each distinct value is processed once."""
    binders = [(name, table.c[name].type._cached_bind_processor(connection.dialect)) for name in columns]
    bound: list[tuple[str, Callable[[Any], Any]]] = [(name, bind) for name, bind in binders if bind is not None]
    if bound:
        done: dict[tuple[str, Any], Any] = {}

        def prepared(name: str, bind: Callable[[Any], Any], value: Any) -> Any:
            key = (name, value)
            if key not in done:
                processed = bind(value)
                done[key] = processed.isoformat() if isinstance(processed, datetime) else processed
            return done[key]

        rows = [row | {name: prepared(name, bind, row[name]) for name, bind in bound} for row in rows]
    return json.dumps(rows, separators=(",", ":"), ensure_ascii=False)


def update_many(
    connection: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: str,
    *,
    where: dict[str, Any] | None = None,
    decrement: str | None = None,
) -> int:
    """Set each row's columns on the row of `table` whose `key` column equals the row's `key`; only where the
    `where` columns equal these values, and with `decrement` (a column) lowered by one when given. Rows share their
    columns. One `UPDATE … FROM json_to_recordset(…)` on PostgreSQL, an executemany elsewhere; returns rows changed (-1: unknown).
    """
    if not rows:
        return 0
    columns = tuple(rows[0])
    fixed = dict(where or {})
    dialect = connection.dialect.name
    built_key = (dialect, table.name, columns, (key,), (*sorted(fixed), decrement or ""))
    statement = _BUILT.get(built_key)
    if statement is None:
        statement = _BUILT[built_key] = _build_update(connection, table, columns, key, sorted(fixed), decrement)
    params = {f"w_{name}": value for name, value in fixed.items()}
    if dialect != "postgresql":
        return int(connection.execute(statement, [{f"b_{k}": v for k, v in r.items()} | params for r in rows]).rowcount)
    rows_json = _json_rows(connection, table, columns, rows)
    return int(connection.execute(statement, {"rows": rows_json} | params).rowcount)


def _build_update(
    connection: Connection, table: Table, columns: tuple[str, ...], key: str, fixed: list[str], decrement: str | None
) -> Executable:
    quote = connection.dialect.identifier_preparer.quote
    if connection.dialect.name != "postgresql":
        values: dict[str, Any] = {c: bindparam(f"b_{c}") for c in columns if c != key}
        if decrement:
            values[decrement] = table.c[decrement] - 1
        conditions = [table.c[key] == bindparam(f"b_{key}"), *(table.c[f] == bindparam(f"w_{f}") for f in fixed)]
        return sa_update(table).where(*conditions).values(values)
    sets = [f"{quote(c)} = v.{quote(c)}" for c in columns if c != key]
    if decrement:
        sets.append(f"{quote(decrement)} = t.{quote(decrement)} - 1")
    conditions = [f"t.{quote(key)} = v.{quote(key)}", *(f"t.{quote(f)} = :w_{f}" for f in fixed)]
    return text(
        f"UPDATE {table.name} AS t SET {', '.join(sets)} FROM {_recordset(connection, table, columns)} "
        f"WHERE {' AND '.join(conditions)}"
    )
