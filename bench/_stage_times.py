"""CPU time per stage of a delivery worker, for bench/_counting_worker.py (`BENCH_STAGES=FILE`).

Wraps the batch runner's stages, the planner, the store's bulk reads and writes and the HubSpot sink's batch call
with a counter of the main thread's CPU time (`time.thread_time`: waiting for the database or the CRM is not
counted) and of its wall time (their difference is the waiting). The totals go to FILE as JSON at exit; `python bench/_stage_times.py FILE… --events N` prints them per
event. Stages nest (run_many holds the others), so the column does not add up; `worker.run_once` is the whole loop.
Each wrapped call costs about a microsecond more.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STAGES = [
    ("connector.engine.worker", "Worker", "run_once"),
    ("connector.engine.batch", "BatchingRunner", "run_many"),
    ("connector.engine.batch", "BatchingRunner", "_start_all"),
    ("connector.engine.batch", "BatchingRunner", "_plan_from"),
    ("connector.mapping.planner", None, "plan_event"),
    ("connector.engine.batch", "BatchingRunner", "_read_contact_cache"),
    ("connector.engine.batch", "BatchingRunner", "_resolve_group"),
    ("connector.engine.batch", "BatchingRunner", "_read_written"),
    ("connector.engine.batch", "BatchingRunner", "_runnable"),
    ("connector.engine.batch", "BatchingRunner", "_send"),
    ("connector.engine.batch", "BatchingRunner", "_in_flight"),
    ("connector.engine.batch", "BatchingRunner", "_flush"),
    ("connector.engine.single", "DeliveryRunner", "_prepare"),
    ("connector.engine.single", "DeliveryRunner", "_mark"),
    ("connector.sinks.hubspot.sink", "HubSpotSink", "execute_batch"),
    ("connector.ledger.deliveries", "DeliveryStore", "claim"),
    ("connector.ledger.bulk", "BulkStore", "events"),
    ("connector.ledger.bulk", "BulkStore", "start"),
    ("connector.ledger.bulk", "BulkStore", "journals"),
    ("connector.ledger.bulk", "BulkStore", "written"),
    ("connector.ledger.bulk", "BulkStore", "write"),
    ("connector.ledger.sinkstate", "SinkStateStore", "take_tokens"),
]

_totals: dict[str, list[float]] = {}


def _timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    main = threading.main_thread()

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is not main:
            return function(*args, **kwargs)
        started = time.thread_time()
        started_wall = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            entry = _totals.setdefault(name, [0.0, 0, 0.0])
            entry[0] += time.thread_time() - started
            entry[1] += 1
            entry[2] += time.perf_counter() - started_wall

    return wrapper


def install() -> None:
    """Wrap every stage (before the worker starts: modules that imported a function by name keep the original)."""
    for module_name, owner_name, attribute in STAGES:
        module = importlib.import_module(module_name)
        owner = getattr(module, owner_name) if owner_name else module
        name = f"{owner_name}.{attribute}" if owner_name else attribute
        original = getattr(owner, attribute)
        setattr(owner, attribute, _timed(name, original))
        if owner_name is None:  # a function: rebind it where the connector imported it by name
            for other in ("connector.engine.batch", "connector.engine.single"):
                imported = importlib.import_module(other)
                if getattr(imported, attribute, None) is original:
                    setattr(imported, attribute, getattr(owner, attribute))


def dump(path: Path) -> None:
    path.write_text(json.dumps({"stages": _totals, "process_cpu_s": time.process_time()}))


def main() -> None:
    parser = argparse.ArgumentParser(description="print stage CPU per event from BENCH_STAGES files")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--events", type=int, required=True, help="events the workers delivered together")
    args = parser.parse_args()
    merged: dict[str, list[float]] = {}
    process = 0.0
    for path in args.files:
        data = json.loads(path.read_text())
        process += data["process_cpu_s"]
        for name, (seconds, calls, *wall) in data["stages"].items():
            entry = merged.setdefault(name, [0.0, 0, 0.0])
            entry[0] += seconds
            entry[1] += calls
            entry[2] += wall[0] if wall else 0.0
    print(f"worker processes' CPU: {1e6 * process / args.events:.0f} µs per event (start-up included)")
    print(f"  {'stage':40s} {'CPU':>7s}    {'wall':>7s}  (µs per event; wall − CPU is waiting)  calls")
    for name, (seconds, calls, wall) in sorted(merged.items(), key=lambda item: -item[1][0]):
        per_event = 1e6 / args.events
        print(f"  {name:40s} {seconds * per_event:7.1f}    {wall * per_event:7.1f}  {int(calls):7d}")


if __name__ == "__main__":
    main()
