"""A receiver's commit latency, in process: where SQLite's WAL checkpoints land.

Records events through the ledger's own write path (`Ledger.record_event`, as the receiver calls it) on a
fresh SQLite file, back to back in one process, and prints the wall time per commit: p50, p99, p99.9, max,
how many took over 3 ms, and the WAL file's largest size (it never shrinks while open).
`--inline-checkpoints` restores SQLite's default (each connection checkpoints inside the commit that takes
the WAL past 1,000 pages, no checkpointer thread) to show what `connector/ledger/checkpointer.py` changed.

    python bench/commit_latency.py [--events 4000] [--synchronous NORMAL|FULL] [--inline-checkpoints] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from connector.config import StoreSettings
from connector.ledger import Ledger, event_writer
from connector.payload import parse_webhook
from connector.receiver.ingest import content_hash
from connector.sample import sample_payload

WARM_UP = 500
SLOW_S = 0.003


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--synchronous", choices=("NORMAL", "FULL"), default="NORMAL")
    parser.add_argument("--inline-checkpoints", action="store_true", help="SQLite's default: no checkpointer")
    parser.add_argument("--dir", default=None, help="where the temporary store goes (default: the system temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="commit-latency-", dir=args.dir) as tmp:
        database = Path(tmp) / "connector.db"
        if args.inline_checkpoints:
            event_writer.BACKSTOP_FRAMES = 1000  # type: ignore[misc]  # SQLite's own wal_autocheckpoint default
        ledger = Ledger.open(StoreSettings(url=f"sqlite:///{database}", sqlite_synchronous=args.synchronous))
        if args.inline_checkpoints and ledger._events.checkpointer is not None:
            ledger._events.checkpointer.close()
        documents = [sample_payload(f"latency-{i}") for i in range(args.events)]
        prepared = [(parse_webhook(d), json.dumps(d).encode(), content_hash(d)) for d in documents]
        spent: list[float] = []
        for event, body, digest in prepared:
            started = time.perf_counter()
            ledger.record_event(event, body=body, content_type="application/json", content_hash=digest, sinks=["s"])
            spent.append(time.perf_counter() - started)
        # before dispose: SQLite deletes the WAL when the last connection closes
        wal_bytes = os.path.getsize(f"{database}-wal") if os.path.exists(f"{database}-wal") else 0
        ledger.dispose()
    measured = sorted(spent[WARM_UP:])
    count = len(measured)

    def ms(fraction: float) -> str:
        return f"{measured[min(count - 1, int(count * fraction))] * 1e3:.2f}"

    mode = "inline checkpoints (SQLite's default)" if args.inline_checkpoints else "checkpointer thread"
    print(
        f"commit latency, SQLite synchronous={args.synchronous}, {mode}, {count} commits after {WARM_UP} warm-up: "
        f"p50 {ms(0.5)} ms, p99 {ms(0.99)} ms, p99.9 {ms(0.999)} ms, max {measured[-1] * 1e3:.2f} ms, "
        f"mean {statistics.fmean(measured) * 1e3:.2f} ms; {sum(s > SLOW_S for s in measured)} over "
        f"{SLOW_S * 1e3:.0f} ms; WAL file {wal_bytes / 1e6:.1f} MB at its largest"
    )
    print(f"command: python bench/commit_latency.py {' '.join(sys.argv[1:])}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
