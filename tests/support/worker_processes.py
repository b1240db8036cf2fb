"""Real `connector worker` processes aimed at a Recorder: their config, start and stop, a backlog to deliver, and
how many writes must land exactly once. Shared by the worker-process, crash-recovery and store-outage tests."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from connector.default_mappings import default_mapping_path
from connector.ledger import Ledger
from tests.support.delivery import ingest
from tests.support.recorder import Recorder
from tests.support.settings import TOKEN

WORKER = [sys.executable, "-m", "connector", "worker", "--config"]


def write_config(
    folder: Path, store_url: str, recorder: Recorder, *, worker: dict[str, object] | None = None, **sink: object
) -> Path:
    """A worker config with one `http` sink (`rec`) aimed at `recorder`; extra `sink` keys and `worker` keys
    override."""
    config = folder / "worker.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {"auth": {"tokens": [TOKEN]}},
                "store": {"url": store_url},
                "sinks": {
                    "rec": {
                        "type": "http",
                        "url": recorder.url,
                        "mapping": str(default_mapping_path("hubspot")),
                        "headers": {"Authorization": f"Bearer {recorder.token}"},
                        **sink,
                    }
                },
                "worker": {
                    "poll_interval_s": 0.05,
                    "lease_s": 5,
                    "batch_size": 10,
                    "retry": {"schedule_s": [0.5, 1, 1, 2], "jitter": 0.1, "quick_retries": 1, "quick_wait_s": 0.05},
                    **(worker or {}),
                },
                "logging": {"level": "WARNING"},
            }
        )
    )
    return config


def start_worker(config: Path, *options: str, **env: str) -> subprocess.Popen:
    """`connector worker --config CONFIG [OPTIONS]` in its own process group (stderr piped for the failure
    message)."""
    return subprocess.Popen(
        [*WORKER, str(config), *options],
        env={**os.environ, **env},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(process: subprocess.Popen, starting: str, timeout_s: float = 30) -> str:
    """The first stderr line of `process` that starts with `starting` (the lines before it are dropped)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in process.stderr:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None and lines.empty():
                break
            continue
        if line.startswith(starting):
            return line.rstrip("\n")
        seen.append(line)
    raise AssertionError(f"no line starting {starting!r} on stderr; exit {process.poll()}; saw: {''.join(seen)}")


def wait_delivered(ledger: Ledger, expected: int, timeout_s: float = 90) -> None:
    """Wait until `expected` deliveries to `rec` succeeded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = ledger.deliveries.counts()
        if counts.get(("rec", "succeeded"), 0) == expected:
            return
        time.sleep(0.2)
    raise AssertionError(f"not delivered in time: {ledger.deliveries.counts()}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group and wait for it to exit (a worker that hangs fails the test)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def ingest_many(ledger: Ledger, count: int, *, start: int = 10_000) -> list[str]:
    """`count` events for `rec` with varied outcomes and phones; their ids."""
    reasons = ["call_transferred", "schedule_call_back", "no_answer", "hung_up", "do_not_call"]
    return [
        ingest(
            ledger,
            start + i,
            end_reason=reasons[i % len(reasons)],
            record_phone_number=f"+1202{5550000 + (i % 97):07d}",
        )
        for i in range(count)
    ]


def expected_keys(ledger: Ledger, ids: list[str]) -> int:
    """Writes that must happen exactly once: every action of every plan that reached the endpoint
    (not the skipped ones, nor contacts answered from the shared contact cache)."""
    total = 0
    for event_id in ids:
        for delivery in ledger.deliveries_for(event_id):
            total += sum(
                1
                for e in ledger.deliveries.journal(delivery["id"]).values()
                if e.status == "succeeded" and (e.result or {}).get("detail", {}).get("resolved_by") != "contact_cache"
            )
    return total
