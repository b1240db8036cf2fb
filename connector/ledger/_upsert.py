"""Many rows upserted in one statement: `INSERT … ON CONFLICT (key) DO UPDATE` from arrays on PostgreSQL.

The batch runner upserts a hundred journal rows or contact fields per transaction. Sent as an executemany, that is
a hundred statements the server runs one by one; on PostgreSQL it is one `INSERT … SELECT * FROM unnest(:a, :b, …)`
with one array per column, whose text never changes (psycopg prepares it, the server plans it once). SQLite runs
in the process: there an executemany of the same upsert is already cheap. Statements are built once per table and
backend and reused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    binders = _binders(connection, table, columns)
    arrays = {
        name: [bind(row[name]) for row in rows] if bind else [row[name] for row in rows]
        for name, bind in zip(columns, binders, strict=True)
    }
    connection.execute(statement, arrays)


def _build(
    connection: Connection, table: Table, columns: tuple[str, ...], key: Sequence[str], update: Sequence[str]
) -> Executable:
    if connection.dialect.name != "postgresql":
        statement = sqlite.insert(table)
        return statement.on_conflict_do_update(
            index_elements=[table.c[k] for k in key], set_={c: statement.excluded[c] for c in update}
        )
    arrays = ", ".join(
        f"CAST(:{name} AS {table.c[name].type.compile(dialect=connection.dialect)}[])" for name in columns
    )
    quoted = [connection.dialect.identifier_preparer.quote(name) for name in columns]
    assignments = ", ".join(
        f"{q} = excluded.{q}" for name, q in zip(columns, quoted, strict=True) if name in set(update)
    )
    conflict = ", ".join(connection.dialect.identifier_preparer.quote(k) for k in key)
    return text(
        f"INSERT INTO {table.name} ({', '.join(quoted)}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({conflict}) DO UPDATE SET {assignments}"
    )


def _binders(connection: Connection, table: Table, columns: tuple[str, ...]) -> list[Callable[[Any], Any] | None]:
    """Each column type's bind processing (e.g. UTCDateTime refusing naive datetimes), applied to the array items
    since a text statement's parameters bypass it."""
    return [table.c[name].type._cached_bind_processor(connection.dialect) for name in columns]


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
    columns. One `UPDATE … FROM unnest(…)` on PostgreSQL, an executemany elsewhere; returns rows changed (-1: unknown).
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
    binders = _binders(connection, table, columns)
    arrays = {
        f"b_{name}": [bind(row[name]) for row in rows] if bind else [row[name] for row in rows]
        for name, bind in zip(columns, binders, strict=True)
    }
    return int(connection.execute(statement, arrays | params).rowcount)


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
    arrays = ", ".join(f"CAST(:b_{c} AS {table.c[c].type.compile(dialect=connection.dialect)}[])" for c in columns)
    names = ", ".join(quote(c) for c in columns)
    sets = [f"{quote(c)} = v.{quote(c)}" for c in columns if c != key]
    if decrement:
        sets.append(f"{quote(decrement)} = t.{quote(decrement)} - 1")
    conditions = [f"t.{quote(key)} = v.{quote(key)}", *(f"t.{quote(f)} = :w_{f}" for f in fixed)]
    return text(
        f"UPDATE {table.name} AS t SET {', '.join(sets)} FROM unnest({arrays}) AS v({names}) "
        f"WHERE {' AND '.join(conditions)}"
    )
