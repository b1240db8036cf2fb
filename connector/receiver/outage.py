"""The receiver's log of a store outage: one line when it starts, one a minute while it lasts, one when it ends.

During an outage 2X keeps posting and every post gets a 503: a line per refused webhook (194 in a 20 s
PostgreSQL stop at 10 posts/s) buried the one that says what is wrong. Each receiver process keeps its own
tally; the worker logs the same outage once, from its side.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("connector.receiver.webhook")

REMIND_EVERY_S = 60.0
"""While the store stays down, a reminder with the count of refused webhooks this often."""


class OutageLog:
    """Counts the webhooks answered 503 because the store failed, and logs the outage, not each of them."""

    def __init__(self, remind_every_s: float = REMIND_EVERY_S) -> None:
        self._remind_every_s = remind_every_s
        self._lock = threading.Lock()
        self._since: float | None = None
        self._refused = 0
        self._refused_since_reminder = 0
        self._reminded_at = 0.0

    def refused(self, error: Exception) -> None:
        """A webhook was not stored: the first of an outage is an ERROR with the reason, then a reminder a minute."""
        now = time.monotonic()
        with self._lock:
            self._refused += 1
            self._refused_since_reminder += 1
            if self._since is None:
                self._since, self._reminded_at, self._refused_since_reminder = now, now, 0
                log.error("store unavailable, webhooks are answered 503 (2X retries them): %s", error)
            elif now - self._reminded_at >= self._remind_every_s:
                log.error(
                    "store still unavailable after %.0f s: %d webhooks answered 503 in the last %.0f s: %s",
                    now - self._since,
                    self._refused_since_reminder,
                    now - self._reminded_at,
                    error,
                )
                self._reminded_at, self._refused_since_reminder = now, 0

    def stored(self) -> None:
        """A webhook was stored: ends an outage under way with one line (nothing to do otherwise)."""
        if self._since is None:  # the hot path: one attribute read
            return
        with self._lock:
            if self._since is None:
                return
            log.warning(
                "store available again after %.1f s: %d webhooks were answered 503 meanwhile",
                time.monotonic() - self._since,
                self._refused,
            )
            self._since, self._refused, self._refused_since_reminder = None, 0, 0
