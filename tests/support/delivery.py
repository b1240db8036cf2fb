"""Helpers shared by the delivery-engine tests: settings with an `http` sink aimed at a Recorder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from connector.config import Settings, parse_settings
from connector.default_mappings import default_mapping_path
from connector.engine.worker import Worker
from connector.ledger import Ledger
from connector.payload import parse_webhook
from connector.receiver.ingest import content_hash
from connector.sample import sample_payload
from tests.support.settings import TOKEN


def engine_settings(
    store_url: str,
    recorder_url: str,
    *,
    token: str = "recorder-token",
    mapping: str | None = None,
    rate_limit: dict[str, Any] | None = None,
    retry: dict[str, Any] | None = None,
    **worker: Any,
) -> Settings:
    """Settings with one `http` sink (`rec`) aimed at `recorder_url`, fast retries; `worker` keys override."""
    sink: dict[str, Any] = {
        "type": "http",
        "url": recorder_url,
        "headers": {"Authorization": f"Bearer {token}"},
        "mapping": mapping or str(default_mapping_path("hubspot")),
    }
    if rate_limit:
        sink["rate_limit"] = rate_limit
    document = {
        "receiver": {"auth": {"tokens": [TOKEN]}},
        "store": {"url": store_url},
        "sinks": {"rec": sink},
        "worker": {
            "poll_interval_s": 0.05,
            "auth_probe_s": 1,
            "lease_s": 10,
            "retry": retry or {"schedule_s": [0.2, 0.2, 0.2], "jitter": 0, "quick_retries": 1, "quick_wait_s": 0.01},
            **worker,
        },
    }
    return parse_settings(document, source="<test>", base_dir=Path("."), environ={})


def ingest(ledger: Ledger, event_id: int, *, sinks: tuple[str, ...] = ("rec",), **overrides: Any) -> str:
    """Record the sample event `event_id` for `sinks` as the receiver would; its id."""
    document = sample_payload(event_id, **overrides)
    event = parse_webhook(document)
    ledger.record_event(
        event,
        body=json.dumps(document).encode(),
        content_type="application/json",
        content_hash=content_hash(document),
        sinks=list(sinks),
    )
    return event.id


@contextmanager
def worker_on(settings: Settings) -> Iterator[tuple[Ledger, Worker]]:
    """A ledger and an opened worker for `settings`, closed afterwards."""
    ledger = Ledger.open(settings.store)
    worker = Worker(settings, ledger=ledger)
    worker.open()
    try:
        yield ledger, worker
    finally:
        worker.close()
        ledger.dispose()


def drain(worker: Worker, rounds: int = 200) -> int:
    """Run the worker until a round finds nothing due (and nothing is scheduled soon)."""
    total = 0
    idle = 0
    for _ in range(rounds):
        done = worker.run_once()
        total += done
        idle = idle + 1 if done == 0 else 0
        if idle >= 3:
            break
        if done == 0:
            import time

            time.sleep(0.1)
    return total


def statuses(ledger: Ledger, event_id: str) -> list[str]:
    """The status of each delivery of one event."""
    return [d["status"] for d in ledger.deliveries_for(event_id)]


def journal(ledger: Ledger, event_id: str) -> dict[str, Any]:
    """The result each action of the event's (only) delivery recorded, by action key."""
    [delivery] = ledger.deliveries_for(event_id)
    return {key: entry.result for key, entry in ledger.deliveries.journal(delivery["id"]).items()}
