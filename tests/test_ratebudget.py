"""The shared token bucket keeps every worker inside a CRM's request budget, in the ledger or in Redis."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from connector.engine.ratebudget import LedgerBucket, RateGate, RedisBucket
from connector.ledger import Ledger

REDIS_URL = os.environ.get("CONNECTOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def granted_in(gate_factory, seconds: float, threads: int = 4) -> int:
    """How many requests several threads (each with its own gate, like workers) got through."""
    count = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run() -> None:
        nonlocal count
        gate = gate_factory()
        while time.monotonic() < stop:
            gate.wait()
            if time.monotonic() < stop:
                with lock:
                    count += 1

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return count


def test_ledger_bucket_is_shared_and_stays_under_the_limit(ledger: Ledger) -> None:
    sink = f"s-{uuid.uuid4().hex[:6]}"
    granted = granted_in(lambda: RateGate(LedgerBucket(ledger, sink, requests=40, window_s=1.0), max_sleep_s=0.05), 2.0)
    # 40/s for 2 s: never more than the limit, and most of it used.
    assert 60 <= granted <= 76


def test_redis_bucket_is_shared_and_stays_under_the_limit() -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}; .ci/run starts it")
    sink = f"s-{uuid.uuid4().hex[:6]}"
    granted = granted_in(
        lambda: RateGate(RedisBucket(redis.Redis.from_url(REDIS_URL), sink, 100, 1.0), max_sleep_s=0.02), 2.0
    )
    assert 150 <= granted <= 190
