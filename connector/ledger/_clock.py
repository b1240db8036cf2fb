"""The ledger's notion of now: aware UTC, in one place so every table agrees."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
