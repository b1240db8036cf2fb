"""Planning cost per event: the default mapping of a CRM planned for the batched backlog's mix of events, in process.

    python bench/planning.py [--crm hubspot|salesforce] [--events 3000] [--repeat 3] [--turns N] [--profile]

Events are those bench/_delivery_batch.py inserts (the 2X sample, a pool of phone numbers, three end reasons),
parsed from their stored JSON as the batch runner does; prints the best of `--repeat` runs in µs per event.
`--turns N` gives each a transcript of N turns instead of the sample's 4 (a real call has dozens).
`--profile` prints cProfile's top functions of one run instead: where the planner's time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _load  # noqa: E402
from _delivery_post import phone  # noqa: E402

from connector.default_mappings import default_mapping_path  # noqa: E402
from connector.mapping.loader import load_mapping  # noqa: E402
from connector.mapping.planner import plan_event  # noqa: E402
from connector.payload import CallEvent, parse_webhook  # noqa: E402

REASONS = ["hung_up", "no_answer", "call_transferred"]


def stored_events(count: int, turns: int | None = None) -> list[str]:
    """The backlog's events as the ledger stores them (normalized JSON)."""
    stored = []
    for i in range(count):
        payload = _load.document(500_000 + i, turns)
        payload["call"]["end_reason"] = REASONS[i % len(REASONS)]
        payload["record_phone_number"] = phone(i)
        stored.append(parse_webhook(payload).model_dump_json())
    return stored


def plan_all(crm: str, stored: list[str]) -> float:
    """Seconds to parse and plan every stored event, as the batch runner does."""
    mapping = load_mapping(default_mapping_path(crm))
    call_time = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)
    started = time.perf_counter()
    for document in stored:
        plan_event(CallEvent.model_validate_json(document), mapping, sink=crm, call_time=call_time)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crm", default="hubspot", choices=["hubspot", "salesforce"])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--turns", type=int, default=None, help="transcript turns per event (default: the sample's 4)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    stored = stored_events(args.events, args.turns)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(plan_all, args.crm, stored)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return
    best = min(plan_all(args.crm, stored) for _ in range(args.repeat))
    print(
        f"{args.crm}: {best / args.events * 1e6:.0f} µs per event planned ({args.events} events, "
        f"{args.turns if args.turns is not None else 4} transcript turns, best of {args.repeat})"
    )


if __name__ == "__main__":
    main()
