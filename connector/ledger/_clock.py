"""The ledger's notion of now: aware UTC, in one place so every table agrees."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
