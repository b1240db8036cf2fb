"""A bare Flask webhook endpoint: the floor the connector's ingest path is measured against.

It does the minimum an at-least-once receiver must do, with the connector's durability settings:
check the token in constant time, store the raw body in one committed transaction, answer 202.
No parsing, no validation, no logging.

Like the connector, each worker process keeps one long-lived connection, opened after the fork
on first use (the connector's SQLite engine is a QueuePool; opening a SQLite connection per
request would charge the floor with the pragmas and the WAL checkpoint that closing the last
connection runs, work the connector does not do). On SQLite the connection gets the connector's
pragmas: WAL, synchronous as configured, busy_timeout 10000, foreign_keys on, autocommit with an
explicit BEGIN IMMEDIATE. With BENCH_BARE_QUEUE=1 its SQLite commits also queue for the write lock
the way the connector's receivers do (connector.ledger.write_queue), to show what that queue alone
is worth (`python bench/ingest.py --bare-queue`). On PostgreSQL: INSERT then COMMIT, with the server's default
synchronous_commit, as the connector does.

    BENCH_BARE_DB=/tmp/bare.db BENCH_BARE_TOKEN=secret gunicorn -w 5 'bare_app:create_app()'
    BENCH_BARE_PG=postgresql://postgres@127.0.0.1/bench BENCH_BARE_TOKEN=secret gunicorn -w 5 'bare_app:create_app()'
"""

from __future__ import annotations

import hmac
import os
import sqlite3
from contextlib import nullcontext
from typing import Any

from flask import Flask, Response, jsonify, request

from connector.ledger.write_queue import WriteQueue

DB_ENV = "BENCH_BARE_DB"
PG_ENV = "BENCH_BARE_PG"
SYNCHRONOUS_ENV = "BENCH_BARE_SYNCHRONOUS"
TOKEN_ENV = "BENCH_BARE_TOKEN"
PATH_ENV = "BENCH_BARE_PATH"
QUEUE_ENV = "BENCH_BARE_QUEUE"
DEFAULT_PATH = "/webhooks/2x/post-call"
BUSY_TIMEOUT_MS = 10_000
SCHEMA = "CREATE TABLE IF NOT EXISTS bodies (id INTEGER PRIMARY KEY, received_at REAL NOT NULL, body BLOB NOT NULL)"
PG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS bodies (id BIGSERIAL PRIMARY KEY, received_at TIMESTAMPTZ NOT NULL, "
    "body BYTEA NOT NULL)"
)


def connect(db_path: str, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection with the same pragmas as the connector's SQLite engine (autocommit, explicit BEGIN)."""
    connection = sqlite3.connect(db_path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute(f"PRAGMA synchronous = {synchronous}")
    connection.execute("PRAGMA foreign_keys = ON")
    return connection


def init_db(db_path: str) -> None:
    """Create the SQLite table (idempotent); call once before the workers start."""
    connection = connect(db_path)
    try:
        connection.execute(SCHEMA)
    finally:
        connection.close()


def init_pg(conninfo: str) -> None:
    """Create the PostgreSQL table (idempotent); call once before the workers start."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(PG_SCHEMA)


class _SqliteStore:
    """One connection per worker process, opened lazily (after gunicorn forks)."""

    def __init__(self, db_path: str, synchronous: str, queued: bool) -> None:
        self._path, self._synchronous = db_path, synchronous
        self._connection: sqlite3.Connection | None = None
        self._queue = WriteQueue(db_path) if queued else None

    def insert(self, body: bytes) -> None:
        with self._queue.turn() if self._queue is not None else nullcontext():
            self._insert(body)

    def _insert(self, body: bytes) -> None:
        if self._connection is None:
            self._connection = connect(self._path, self._synchronous)
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute("INSERT INTO bodies (received_at, body) VALUES (strftime('%s','now'), ?)", (body,))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise


class _PgStore:
    """One psycopg connection per worker process, opened lazily; one transaction per insert."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._connection: Any = None

    def insert(self, body: bytes) -> None:
        import psycopg

        if self._connection is None:
            self._connection = psycopg.connect(self._conninfo)
        with self._connection.transaction():
            self._connection.execute("INSERT INTO bodies (received_at, body) VALUES (now(), %s)", (body,))


def create_app() -> Flask:
    """Build the app from $BENCH_BARE_DB (SQLite) or $BENCH_BARE_PG, $BENCH_BARE_TOKEN, optional path/synchronous."""
    token = os.environ[TOKEN_ENV].encode("utf-8")
    store: _SqliteStore | _PgStore
    if os.environ.get(PG_ENV):
        init_pg(os.environ[PG_ENV])
        store = _PgStore(os.environ[PG_ENV])
    else:
        db_path = os.environ[DB_ENV]
        init_db(db_path)
        store = _SqliteStore(db_path, os.environ.get(SYNCHRONOUS_ENV, "FULL"), os.environ.get(QUEUE_ENV) == "1")
    app = Flask("bare")

    @app.post(os.environ.get(PATH_ENV, DEFAULT_PATH))
    def post_call() -> tuple[Response, int]:
        presented = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(presented, token):
            return jsonify({"error": "unauthorized"}), 401
        store.insert(request.get_data(cache=False))
        return jsonify({"status": "accepted"}), 202

    @app.get("/readyz")
    def readyz() -> Response:
        return jsonify({"status": "ready"})

    return app
