"""What the health model (connector/sink_health.py) costs a probe: latency of GET /readyz and GET /metrics.

Both read every sink's state, missing fields, live workers and recent exits from the ledger on each call. This
drives the real app in-process (Flask test client, no HTTP: the figure is the handler's own cost) on a SQLite
store with one sink and one live worker, and prints the median and p90 of each.

    python bench/probes.py [--calls 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from connector.app import create_app
from connector.config import parse_settings
from connector.default_mappings import default_mapping_path
from connector.ledger import Ledger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-probes-"))
    settings = parse_settings(
        {
            "receiver": {"auth": {"tokens": ["bench-probes-token-0123"]}},
            "store": {"url": f"sqlite:///{folder / 'probes.db'}"},
            "sinks": {
                "rec": {"type": "http", "url": "http://127.0.0.1:9", "mapping": str(default_mapping_path("hubspot"))}
            },
        },
        source="<bench>",
        base_dir=folder,
        environ={},
    )
    ledger = Ledger.open(settings.store)
    ledger.sinks.heartbeat("bench-worker")
    client = create_app(settings, ledger=ledger).test_client()
    for path in ("/readyz", "/metrics"):
        times = []
        for n in range(args.calls):
            if n % 50 == 0:
                ledger.sinks.heartbeat("bench-worker")  # stays live: /readyz answers 200 throughout
            started = time.perf_counter()
            answer = client.get(path)
            times.append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.get_data(as_text=True)
        times.sort()
        print(
            f"{path:9} {args.calls} calls: median {statistics.median(times) * 1000:.2f} ms, "
            f"p90 {times[int(len(times) * 0.9)] * 1000:.2f} ms"
        )
    ledger.dispose()


if __name__ == "__main__":
    main()
