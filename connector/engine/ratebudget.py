"""Rate budgets shared by every worker of a store: a token bucket per sink, in the ledger or in Redis.

The bucket refills at 92 % of the CRM's rate with a burst of 3 % of its window, so that over any
window the CRM sees at most 95 % of its limit: a backlog runs close to the limit, with a margin
for network jitter bunching requests, and without 429s.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from connector.ledger import Ledger

_FILL = 0.92
_BURST = 0.03
_REDIS_SCRIPT = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local cap, rate, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1]) or cap
local ts = tonumber(data[2]) or t
tokens = math.min(cap, tokens + math.max(0, t - ts) * rate)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = (cost - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(t))
redis.call('EXPIRE', KEYS[1], 3600)
return tostring(wait)
"""


def bucket_shape(requests: int, window_s: float) -> tuple[float, float]:
    """(refill per second, capacity) of the bucket for a limit of `requests` per `window_s`."""
    return requests * _FILL / window_s, max(1.0, requests * _BURST)


class _Bucket(Protocol):
    def take(self, cost: float) -> float: ...


class RateGate:
    """Blocks the caller until the sink's shared budget allows `cost` more requests."""

    def __init__(self, bucket: _Bucket | None, *, max_sleep_s: float = 1.0) -> None:
        self._bucket = bucket
        self._max_sleep_s = max_sleep_s
        self.waited_s = 0.0
        """Total time spent waiting for budget (for status and metrics)."""

    def wait(self, cost: int = 1) -> None:
        if self._bucket is None:
            return
        while True:
            delay = self._bucket.take(float(cost))
            if delay <= 0:
                return
            pause = min(delay, self._max_sleep_s)
            self.waited_s += pause
            time.sleep(pause)


class LedgerBucket:
    """Token bucket in the ledger (one row per sink, locked per take)."""

    def __init__(self, ledger: Ledger, sink: str, requests: int, window_s: float) -> None:
        self._ledger, self._sink = ledger, sink
        self._rate, self._capacity = bucket_shape(requests, window_s)

    def take(self, cost: float) -> float:
        return self._ledger.sinks.take_tokens(self._sink, cost, capacity=self._capacity, per_second=self._rate)


class RedisBucket:
    """The same token bucket in Redis (a Lua script: atomic, clocked by the Redis server)."""

    def __init__(self, client: Any, sink: str, requests: int, window_s: float) -> None:
        self._script = client.register_script(_REDIS_SCRIPT)
        self._key = f"connector:rate:{sink}"
        self._rate, self._capacity = bucket_shape(requests, window_s)

    def take(self, cost: float) -> float:
        return float(self._script(keys=[self._key], args=[self._capacity, self._rate, cost]))


def make_gate(ledger: Ledger, sink: str, requests: int | None, window_s: float, redis_url: str | None) -> RateGate:
    """The gate for one sink: unlimited when the sink has no budget."""
    if not requests:
        return RateGate(None)
    if redis_url:
        import redis

        return RateGate(RedisBucket(redis.Redis.from_url(redis_url), sink, requests, window_s))
    return RateGate(LedgerBucket(ledger, sink, requests, window_s))
