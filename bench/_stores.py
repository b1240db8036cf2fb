"""The stores bench/ingest.py compares on: SQLite at synchronous=FULL or NORMAL, or PostgreSQL.

Each run gets fresh stores: SQLite files in the run's directory, or new PostgreSQL databases
created on the admin URL (trust auth on loopback) and dropped afterwards. Both servers of one
comparison get the same kind of store with the same durability settings.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
SQLITE_BUSY_TIMEOUT_MS = 10_000
"""The connector's default (connector.defaults.SQLITE_BUSY_TIMEOUT_MS); bare_app uses the same."""


@dataclass(frozen=True)
class StoreKind:
    """One durability setting both servers run with."""

    name: str
    """`full`, `normal` or `postgresql`."""
    pg_admin: str = DEFAULT_PG_ADMIN

    @property
    def label(self) -> str:
        if self.name == "postgresql":
            return "PostgreSQL (synchronous_commit as the server's default)"
        return (
            f"SQLite {sqlite3.sqlite_version} WAL synchronous={self.name.upper()} busy_timeout={SQLITE_BUSY_TIMEOUT_MS}"
        )

    @property
    def is_pg(self) -> bool:
        return self.name == "postgresql"


class Store:
    """A fresh store for one server: where it is, how to point each server at it, how many rows it holds."""

    def __init__(self, kind: StoreKind, workdir: Path, stem: str) -> None:
        self.kind = kind
        self._sqlite_path = workdir / f"{stem}.db"
        self._pg_name = f"ingest_bench_{stem}_{os.getpid()}"
        if kind.is_pg:
            _pg_admin(kind.pg_admin, f'DROP DATABASE IF EXISTS "{self._pg_name}"')
            _pg_admin(kind.pg_admin, f'CREATE DATABASE "{self._pg_name}"')

    @property
    def pg_conninfo(self) -> str:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params = conninfo_to_dict(self.kind.pg_admin)
        params["dbname"] = self._pg_name
        return make_conninfo(**params)

    @property
    def sqlite_path(self) -> Path:
        return self._sqlite_path

    @property
    def connector_url(self) -> str:
        """The connector's `store.url` for this PostgreSQL database."""
        from sqlalchemy.engine import make_url

        url = make_url(self.kind.pg_admin).set(drivername="postgresql+psycopg", database=self._pg_name)
        return url.render_as_string(hide_password=False)

    def connector_store_yaml(self) -> str:
        """The `store:` section of the connector's config."""
        if self.kind.is_pg:
            return f'store: {{url: "{self.connector_url}"}}\n'
        return (
            f'store: {{url: "sqlite:///{self._sqlite_path.name}", sqlite_synchronous: {self.kind.name.upper()}, '
            f"sqlite_busy_timeout_ms: {SQLITE_BUSY_TIMEOUT_MS}}}\n"
        )

    def count(self, table: str) -> int:
        """Rows in `table` (after the server stopped)."""
        if self.kind.is_pg:
            import psycopg

            with psycopg.connect(self.pg_conninfo) as connection:
                return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        connection = sqlite3.connect(f"file:{self._sqlite_path}?mode=ro", uri=True)
        try:
            return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            connection.close()

    def drop(self) -> None:
        """Drop a PostgreSQL database (SQLite files go with the temporary directory)."""
        if self.kind.is_pg:
            _pg_admin(self.kind.pg_admin, f'DROP DATABASE IF EXISTS "{self._pg_name}" WITH (FORCE)')


def _pg_admin(conninfo: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(statement)


def pg_reachable(conninfo: str) -> str | None:
    """None when the admin URL answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(conninfo, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - reported to the user, the run goes on without PostgreSQL
        return f"{exc.__class__.__name__}: {exc}".splitlines()[0]
    return None
