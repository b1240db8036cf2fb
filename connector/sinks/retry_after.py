"""The one ``Retry-After`` parser: every sink reads the header the same way (RFC 9110 §10.2.3).

The value is either a number of seconds or an HTTP date; anything else (or a date in the past) means "no
usable wait", which is None or 0.0 respectively, so the engine falls back to its own schedule.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


def parse_retry_after(value: str | bytes | float | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait, never negative; None when the header is absent or unreadable."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    if isinstance(value, (int, float)):
        return max(float(value), 0.0)
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds else None  # NaN is not a wait
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def retry_after_header(headers: Mapping[str, Any] | Any) -> float | None:
    """``Retry-After`` from a header mapping whatever its case (requests' and urllib3's are case-insensitive,
    a plain dict is not)."""
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    value = getter("Retry-After") if getter is not None else None
    if value is None and isinstance(headers, Mapping):
        value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    return parse_retry_after(value)
