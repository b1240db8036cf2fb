"""Writes whose outcome a sink does not know: sent, but the answer was lost (``OutcomeUnknown``).

Why a tracker: the engine's quick retry may send the same write again in this process without a journal lookup;
a key listed here makes the sink look the record up first (or take the one-at-a-time path) instead of writing a
duplicate. One model for every sink, thread-safe (batch workers share a sink), bounded: a key whose delivery never
comes back expires after ``ttl_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import urllib3
from cachetools import TTLCache

DEFAULT_TTL_S = 3600.0
"""An hour: far longer than any quick retry, short enough that a key whose delivery was abandoned goes away."""
DEFAULT_MAX_KEYS = 100_000


class UncertainWrites:
    """Idempotency keys of writes that may have been applied without us hearing back."""

    def __init__(self, *, ttl_s: float = DEFAULT_TTL_S, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self._since: TTLCache[str, float] = TTLCache(maxsize=max_keys, ttl=ttl_s, timer=time.monotonic)
        self._lock = threading.Lock()

    def mark(self, keys: Iterable[str]) -> None:
        """These writes may have been applied: look them up before writing them again."""
        now = time.monotonic()
        with self._lock:
            for key in keys:
                if key not in self._since:
                    self._since[key] = now

    def settle(self, keys: Iterable[str]) -> None:
        """These writes' outcome is known now (confirmed, or looked up and absent)."""
        with self._lock:
            for key in keys:
                self._since.pop(key, None)

    def since(self, key: str) -> float | None:
        """When (``time.monotonic()``) the key became uncertain, or None when it is not."""
        with self._lock:
            return self._since.get(key)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._since

    def keys(self) -> set[str]:
        """A snapshot of the uncertain keys."""
        with self._lock:
            return set(self._since)


def never_connected(exc: BaseException) -> bool:
    """Whether a failed request never reached the CRM (refused, no route, DNS, connect timeout), so it cannot
    have been applied; a read timeout or a dropped connection after that leaves the outcome unknown. requests wraps
    urllib3's MaxRetryError (whose ``reason`` says why); urllib3-based clients raise it directly."""
    never = (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
    for candidate in (exc, exc.args[0] if exc.args else None):
        if isinstance(candidate, never) or isinstance(getattr(candidate, "reason", None), never):
            return True
    return False
