"""Failed dashboard logins are throttled per client address: a lockout window after too many failures.

Why: HTTP Basic makes every request a login, so without a limit a password can be guessed at hundreds
of tries a second. After `max_failed_logins` failures within `login_lockout_s`, the address gets 429
with `Retry-After` — even for the right password — until the window has moved on.

The counting is the `limits` library's moving window. Its storage is Redis when the worker shares
rate budgets through Redis (`worker.redis_url`), so every gunicorn worker sees the same count;
otherwise each process counts for itself (the effective limit is then at most N × the setting for N
receiver processes, still a few dozen guesses per window instead of thousands).
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)

_NAMESPACE = "connector-dashboard-login"


class LoginThrottle:
    """Counts failed logins per client address and says when an address is locked out."""

    def __init__(self, max_failures: int, window_s: int, storage_uri: str = "memory://") -> None:
        self._limit = RateLimitItemPerSecond(max_failures, window_s, namespace=_NAMESPACE)
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def locked_for(self, client: str) -> int:
        """Seconds until `client` may try again; 0 when it may try now."""
        if self._limiter.test(self._limit, client):
            return 0
        reset_at, _ = self._limiter.get_window_stats(self._limit, client)
        return max(1, math.ceil(reset_at - time.time()))

    def failed(self, client: str) -> None:
        """Count one failed login (the password itself is never seen here, nor logged)."""
        self._limiter.hit(self._limit, client)
        log.warning("dashboard login failed", extra={"client": client})
