"""A bare Flask webhook endpoint: the floor the connector's ingest path is measured against.

It does the minimum an at-least-once receiver must do, with the connector's durability settings:
check the token in constant time, store the raw body in SQLite (WAL, synchronous=FULL,
busy_timeout 10000, BEGIN IMMEDIATE, one connection per request like the connector's NullPool),
answer 202. No parsing, no validation, no logging.

    BENCH_BARE_DB=/tmp/bare.db BENCH_BARE_TOKEN=secret gunicorn -w 5 'bare_app:create_app()'
"""

from __future__ import annotations

import hmac
import os
import sqlite3

from flask import Flask, Response, jsonify, request

DB_ENV = "BENCH_BARE_DB"
TOKEN_ENV = "BENCH_BARE_TOKEN"
PATH_ENV = "BENCH_BARE_PATH"
DEFAULT_PATH = "/webhooks/2x/post-call"
BUSY_TIMEOUT_MS = 10_000
SCHEMA = "CREATE TABLE IF NOT EXISTS bodies (id INTEGER PRIMARY KEY, received_at REAL NOT NULL, body BLOB NOT NULL)"


def connect(db_path: str) -> sqlite3.Connection:
    """A connection with the same pragmas as the connector's SQLite engine (autocommit, explicit BEGIN)."""
    connection = sqlite3.connect(db_path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    return connection


def init_db(db_path: str) -> None:
    """Create the table (idempotent); call once before the workers start."""
    connection = connect(db_path)
    try:
        connection.execute(SCHEMA)
    finally:
        connection.close()


def create_app() -> Flask:
    """Build the app from $BENCH_BARE_DB, $BENCH_BARE_TOKEN and (optionally) $BENCH_BARE_PATH."""
    db_path = os.environ[DB_ENV]
    token = os.environ[TOKEN_ENV].encode("utf-8")
    init_db(db_path)
    app = Flask("bare")

    @app.post(os.environ.get(PATH_ENV, DEFAULT_PATH))
    def post_call() -> tuple[Response, int]:
        presented = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(presented, token):
            return jsonify({"error": "unauthorized"}), 401
        body = request.get_data(cache=False)
        connection = connect(db_path)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO bodies (received_at, body) VALUES (strftime('%s','now'), ?)", (body,))
            connection.execute("COMMIT")
        finally:
            connection.close()
        return jsonify({"status": "accepted"}), 202

    @app.get("/readyz")
    def readyz() -> Response:
        return jsonify({"status": "ready"})

    return app
