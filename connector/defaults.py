"""Named defaults in one place, each with the reason it has this value."""

from __future__ import annotations

RECEIVER_HOST = "127.0.0.1"
"""Loopback by default: exposing the receiver is a deliberate act (reverse proxy, TLS)."""

RECEIVER_PORT = 8080

RECEIVER_PATH = "/webhooks/2x/post-call"

MAX_BODY_BYTES = 2_000_000
"""A long call's transcript is tens of kilobytes; 2 MB leaves room without letting a sender exhaust memory."""

AUTH_HEADER = "Authorization"

STORE_URL = "sqlite:///connector.db"
"""Embedded default: a SQLite file in the working directory, WAL mode."""

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a writer waits for SQLite's single write lock before failing (several gunicorn workers write)."""

SQLITE_SYNCHRONOUS = "FULL"
"""FULL fsyncs the WAL on every commit: an acknowledged webhook survives a power loss, not only a crash."""

PHONE_DEFAULT_REGION = "US"

SERVE_WORKERS = 5
"""gunicorn sync workers for the receiver: 2 x cores + 1 on the 2-core reference machine."""

SERVE_TIMEOUT_S = 30

MAX_EVENT_ID_CHARS = 512
"""Longest accepted event id. It is a b-tree primary key, and PostgreSQL refuses index entries over
2,704 bytes (512 characters of 4-byte UTF-8 is 2,048): a longer id is refused (422 + quarantine) on
every backend, rather than stored on SQLite and refused with a store error on PostgreSQL."""
