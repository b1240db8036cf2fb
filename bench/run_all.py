"""Every benchmark in one command: `python bench/run_all.py [--quick]`.

Runs ingest (also with a 40-turn transcript; the receiver's CPU and instructions per webhook in process),
planning, the health probes, a receiver commit's latency, HubSpot and Salesforce calls per event, delivery
(batched backlogs, HubSpot's limit, do-not-call behind a backlog, recovery after kill -9, the single-event path),
the distinct-contact backlog on both CRMs, memory and retention (purging old calls beside incoming webhooks), one
after the other (they would disturb each other if run together), and prints each one's own table. `--quick`
shortens the long ones for a smoke run; the README's figures come from the full run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from _common import machine

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="Smaller runs (figures not for the README).")
    args = parser.parse_args()
    runs = [
        ["ingest.py"] + (["--duration", "4"] if args.quick else []),
        ["ingest_profile.py", "--no-profile", "--steps", "--synchronous", "NORMAL"]
        + (["--requests", "600"] if args.quick else []),
        ["ingest.py", "--stores", "normal", "--turns", "40"] + (["--duration", "4"] if args.quick else []),
        ["ingest_instructions.py"] + (["--posts", "50"] if args.quick else []),
        ["ingest_instructions.py", "--turns", "40"] + (["--posts", "50"] if args.quick else []),
        ["planning.py"] + (["--events", "500"] if args.quick else []),
        ["probes.py"] + (["--calls", "100"] if args.quick else []),
        ["commit_latency.py"] + (["--events", "1500"] if args.quick else []),
        ["pg_commit.py"] + (["--blocks", "6"] if args.quick else []),
        ["hubspot_calls.py"],
        ["salesforce_calls.py"],
        ["delivery.py"] + (["--quick"] if args.quick else []),
        ["delivery.py", "--distinct", "hubspot,salesforce" + ("@500" if args.quick else "")],
        ["memory.py"] + (["--events", "5000", "--deliver", "1000"] if args.quick else ["--deliver", "10000"]),
        ["retention.py"] + (["--events", "2000"] if args.quick else []),
    ]
    info = machine()
    print(f"# benchmarks ({info['date_utc']}, {info['cpu']}, {info['cores']} cores, Python {info['python']})\n")
    failed = 0
    for script, *options in runs:
        started = time.monotonic()
        print(f"## {script} {' '.join(options)}".rstrip(), flush=True)
        result = subprocess.run([sys.executable, str(HERE / script), *options], stdout=subprocess.PIPE, text=True)
        print(result.stdout.rstrip())
        print(f"(exit {result.returncode}, {time.monotonic() - started:.0f} s)\n", flush=True)
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
