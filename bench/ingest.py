"""Ingest benchmark: the real `connector serve` against a bare Flask endpoint, same server, same load.

Both run on gunicorn sync workers (same count) on a free loopback port, with the same durable
work per request: one committed transaction on a store with the same settings, compared once per
store kind: SQLite WAL synchronous=FULL, SQLite WAL synchronous=NORMAL (both busy_timeout 10 s,
BEGIN IMMEDIATE, one long-lived connection per worker) and, with `--stores ...,postgresql`, a
local PostgreSQL (a fresh database per server, dropped afterwards). Each server is driven in turn,
with the same body, by (a) a closed loop of C clients for D seconds (max throughput) and (b) an
open loop at a fixed rate for D seconds (ack latency from the scheduled start). After each run
the 202s a server answered are checked against the rows it stored. "server CPU ms per request" is
the CPU time of the server's processes (master and workers) during the closed loop divided by the
requests it answered: on a shared host it is steadier than req/s, and on 2 cores, where the load
generator shares the CPU, it is what bounds the closed-loop throughput.

    python bench/ingest.py [--stores full,normal[,postgresql]] [--duration 10] [--concurrency 16]
                           [--rate 200] [--workers 5] [--pg-admin URL] [--bare-queue] [--turns N] [--json]
                           [--dir D]

On SQLite the connector's receivers queue for the write lock in the kernel (connector.ledger.write_queue)
instead of sleeping in SQLite's busy handler; the bare endpoint does not, as the issue defines it (token
check, insert). `--bare-queue` gives the bare endpoint the same queue, to show what the queue alone is worth.

A benchmark script that prints figures, not a test. Exit status 1 when non-202 answers or a count
mismatch appear, 2 when a server fails to start or dies (its stderr is printed). Other processes'
CPU use during each run is measured and flagged: on a shared host the figures are only indicative.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shlex
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import _load  # bench/ is sys.path[0] when run as `python bench/ingest.py`
from _common import cpu_model
from _servers import (
    HOST,
    PATH,
    TIMEOUT_S,
    TOKEN,
    ForeignCpu,
    Server,
    host_busy,
    server_cpu_s,
    start_bare,
    start_connector,
)
from _stores import DEFAULT_PG_ADMIN, Store, StoreKind, pg_reachable

WARMUP_S = 1.0
OPEN_LOOP_THREADS = 32
"""Senders per load process in the open loop: the most requests one process keeps in flight."""


@dataclass
class TargetResult:
    """Everything measured against one server."""

    name: str
    max_rps: float = 0.0
    closed: _load.Outcome = field(default_factory=_load.Outcome)
    fixed: _load.Outcome = field(default_factory=_load.Outcome)
    accepted_total: int = 0
    rows: int = -1
    stderr_lines: int = 0
    stderr_problems: list[str] = field(default_factory=list)
    foreign_cpu: float | None = None
    cpu_ms_per_request: float | None = None
    """The server's own CPU time (all its processes) per answered request in the closed loop."""


def drive(
    pool: Pool,
    target: _load.Target,
    prefix: str,
    procs: int,
    duration_s: float,
    *,
    clients: int = 0,
    rate: float | None = None,
) -> _load.Outcome:
    """One load phase spread over `procs` processes: `clients` in a closed loop, or `rate` req/s open."""
    start_at = time.monotonic() + 0.3
    if rate is None:
        shares = [clients // procs + (i < clients % procs) for i in range(procs)]
        jobs: list[tuple[Any, ...]] = [
            (target, f"{prefix}-p{i}", n, start_at, duration_s) for i, n in enumerate(shares) if n
        ]
        work: Any = _load.closed_loop
    else:
        jobs = [
            (target, f"{prefix}-p{i}", OPEN_LOOP_THREADS, start_at, duration_s, rate, i, procs) for i in range(procs)
        ]
        work = _load.open_loop
    parts = pool.starmap_async(work, jobs).get(timeout=duration_s + 3 * TIMEOUT_S)
    total = _load.Outcome()
    for part in parts:
        total.merge(part)
    return total


def run_target(
    server: Server, store: Store, table: str, pool: Pool, procs: int, args: argparse.Namespace
) -> TargetResult:
    """Warm up, measure max throughput, then the fixed rate; stop the server and count stored rows."""
    result = TargetResult(server.name)
    target = _load.Target(HOST, server.port, PATH, TOKEN, args.turns)
    run = f"{server.name}-{os.getpid()}-{int(time.time())}"
    meter = ForeignCpu(server.proc.pid)
    try:
        server.wait_ready()
        meter.start()
        warm = drive(pool, target, f"{run}-w", procs, WARMUP_S, clients=procs)
        cpu_before = server_cpu_s(server.proc.pid)
        result.closed = drive(pool, target, f"{run}-c", procs, args.duration, clients=args.concurrency)
        cpu_after = server_cpu_s(server.proc.pid)
        answered = sum(result.closed.statuses.values())
        if cpu_before is not None and cpu_after is not None and answered:
            result.cpu_ms_per_request = (cpu_after - cpu_before) * 1000 / answered
        result.max_rps = result.closed.in_window / args.duration
        time.sleep(1.0)
        result.fixed = drive(pool, target, f"{run}-o", procs, args.duration, rate=args.rate)
        if not server.alive():
            raise RuntimeError(f"{server.name} died during the run:\n{server.stderr()}")
        result.accepted_total = warm.accepted + result.closed.accepted + result.fixed.accepted
        result.closed.error_samples[:0] = warm.error_samples
        for status, count in warm.statuses.items():
            if status != "202":
                result.closed.statuses[f"{status} (warm-up)"] = count
        meter.stop()
        result.foreign_cpu = meter.share
    finally:
        server.close()
    log = server.stderr_path.read_text(errors="replace").splitlines()
    result.stderr_lines = len(log)
    markers = ("WARNING", "ERROR", "CRITICAL", "Traceback")
    result.stderr_problems = [line for line in log if any(marker in line for marker in markers)]
    result.rows = store.count(table)
    return result


def ms(values: list[float], pct: float) -> float | None:
    return round(_load.percentile(values, pct) * 1000, 1) if values else None


def summary(r: TargetResult) -> dict[str, Any]:
    lat = r.fixed.latencies_s
    return {
        "max_rps": round(r.max_rps, 1),
        "max_errors": r.closed.errors,
        "max_statuses": r.closed.statuses,
        "closed_p50_ms": ms(r.closed.latencies_s, 50),
        "cpu_ms_per_request": None if r.cpu_ms_per_request is None else round(r.cpu_ms_per_request, 2),
        "fixed_sent": len(lat),
        "p50_ms": ms(lat, 50),
        "p95_ms": ms(lat, 95),
        "p99_ms": ms(lat, 99),
        "max_ms": ms(lat, 100),
        "late_starts": r.fixed.late,
        "not_sent": r.fixed.not_sent,
        "fixed_errors": r.fixed.errors,
        "fixed_statuses": r.fixed.statuses,
        "accepted_total": r.accepted_total,
        "rows_stored": r.rows,
        "stderr_lines": r.stderr_lines,
        "stderr_problem_lines": len(r.stderr_problems),
        "other_processes_cpu_pct": None if r.foreign_cpu is None else round(r.foreign_cpu * 100, 1),
    }


def report(results: dict[str, TargetResult], args: argparse.Namespace, header: str) -> tuple[bool, dict[str, Any]]:
    """Print the table, the checks and any errors seen; return True when everything is clean."""
    c, b = summary(results["connector"]), summary(results["bare"])

    def row(label: str, key: str, ratio: bool = True) -> str:
        cv, bv = c[key], b[key]
        ratio_text = f"{cv / bv:.2f}" if ratio and cv is not None and bv else ""
        return f"{label:<28}{cv if cv is not None else '-':>10}{bv if bv is not None else '-':>14}{ratio_text:>10}"

    rate, late_ms = f"@{args.rate:g} req/s", int(_load.LATE_THRESHOLD_S * 1000)
    print(header)
    bare_label = "bare+queue" if args.bare_queue else "bare flask"
    print(f"{'':<28}{'connector':>10}{bare_label:>14}{'ratio':>10}")
    print(row(f"max req/s (C={args.concurrency}, {args.duration:g} s)", "max_rps"))
    print(row("  p50 ms, closed loop", "closed_p50_ms"))
    print(row("  server CPU ms per request", "cpu_ms_per_request"))
    print(row("  errors", "max_errors", ratio=False))
    for pct in ("p50", "p95", "p99"):
        print(row(f"{pct} ms {rate}", f"{pct}_ms"))
    print(row(f"max ms {rate}", "max_ms"))
    print(row("  requests completed", "fixed_sent", ratio=False))
    print(row(f"  late starts (>{late_ms} ms)", "late_starts", ratio=False))
    print(row("  errors", "fixed_errors", ratio=False))
    print(row("other processes' CPU, % host", "other_processes_cpu_pct", ratio=False))
    ok = True
    for name, s, table in (("connector", c, "events"), ("bare", b, "bodies")):
        match = s["accepted_total"] == s["rows_stored"]
        ok &= match and s["max_errors"] == 0 and s["fixed_errors"] == 0 and s["not_sent"] == 0
        if (s["other_processes_cpu_pct"] or 0) > 10:
            print(
                f"WARNING: other processes used {s['other_processes_cpu_pct']}% of the host's CPU during the "
                f"{name} run; its figures are disturbed"
            )
        print(
            f"check {name}: 202 answers {s['accepted_total']} (incl. warm-up) vs rows in {table} "
            f"{s['rows_stored']}: {'OK' if match else 'MISMATCH'}"
        )
    for name, r in results.items():
        problems = r.closed.error_samples + r.fixed.error_samples
        if problems or r.fixed.not_sent:
            print(
                f"\n{name}: non-202 answers {r.closed.statuses | r.fixed.statuses}, not sent {r.fixed.not_sent}; "
                f"samples:\n  " + "\n  ".join(problems)
            )
        if r.stderr_problems:
            print(f"\n{name} stderr ({r.stderr_lines} lines, {len(r.stderr_problems)} warning/error lines), first 40:")
            print("\n".join("  " + line for line in r.stderr_problems[:40]))
    return ok, {"header": header, "connector": c, "bare": b, "ok": ok}


def command() -> str:
    return shlex.join(["python", *sys.argv])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stores",
        default="full,normal",
        help="comma-separated store kinds to compare on: full, normal (SQLite synchronous=...), "
        "postgresql (default full,normal)",
    )
    parser.add_argument(
        "--pg-admin",
        default=DEFAULT_PG_ADMIN,
        help=f"PostgreSQL server the bench may create and drop databases on (default {DEFAULT_PG_ADMIN})",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load phase (default 10)")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients (default 16)")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop requests per second (default 200)")
    parser.add_argument("--workers", type=int, default=5, help="gunicorn sync workers for both servers (default 5)")
    parser.add_argument(
        "--bare-queue",
        action="store_true",
        help="the bare endpoint's SQLite commits queue for the write lock like the connector's (what the queue alone is worth)",
    )
    parser.add_argument(
        "--turns",
        type=int,
        default=None,
        help="transcript turns per body (default: the 2X sample's 4; a real call has dozens)",
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--dir", default=None, help="where the temporary stores go (default: the system temp dir)")
    args = parser.parse_args()
    if args.duration <= 0 or args.duration > 600 or args.concurrency < 1 or args.rate <= 0 or args.workers < 1:
        parser.error("need 0 < duration <= 600, concurrency >= 1, rate > 0, workers >= 1")
    if args.turns is not None and not 0 <= args.turns <= 1000:
        parser.error("--turns takes 0 to 1000")
    kinds = [k.strip().lower() for k in args.stores.split(",") if k.strip()]
    unknown = sorted(set(kinds) - {"full", "normal", "postgresql"})
    if unknown or not kinds:
        parser.error(f"--stores takes full, normal and/or postgresql, not {', '.join(unknown) or 'nothing'}")
    args.store_kinds = [StoreKind(k, args.pg_admin) for k in dict.fromkeys(kinds)]
    return args


def main() -> int:
    try:
        return run(parse_args())
    except KeyboardInterrupt:
        print("interrupted; servers and load processes stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:  # a server failed to start or died: show what it said
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """Compare both targets on each store kind in turn, print a report per kind; 0 when all clean."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks on SIGTERM too
    procs = max(1, min(os.cpu_count() or 1, 4))
    machine = (
        f"{datetime.now(UTC):%Y-%m-%dT%H:%MZ}, {cpu_model()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, gunicorn {version('gunicorn')} {args.workers} sync workers, "
        f"{procs} load processes on the same host"
    )
    body = json.dumps(_load.document("x" * 36, args.turns), separators=(",", ":"))
    turns = f"{args.turns} transcript turns" if args.turns is not None else "the sample's 4 transcript turns"
    machine += f"\nbody about {len(body):,} bytes, {turns}"
    busy = host_busy()
    if busy is not None:
        machine += f"\nhost CPU busy before start: {busy:.0%}"
        if busy > 0.10:
            machine += "  WARNING: other processes are using the CPU; figures are not comparable to an idle host"
    documents: list[dict[str, Any]] = []
    all_ok = True
    with (
        tempfile.TemporaryDirectory(prefix="ingest-bench-", dir=args.dir) as tmp,
        multiprocessing.get_context("spawn").Pool(procs) as pool,
    ):
        for kind in args.store_kinds:
            if kind.is_pg and (why := pg_reachable(kind.pg_admin)) is not None:
                print(f"\nPostgreSQL comparison skipped: {kind.pg_admin} not reachable ({why})")
                all_ok = False
                continue
            results: dict[str, TargetResult] = {}
            for name, start, table in (("connector", start_connector, "events"), ("bare", start_bare, "bodies")):
                workdir = Path(tmp) / kind.name / name
                workdir.mkdir(parents=True)
                print(f"running {name} on {kind.label} ...", file=sys.stderr, flush=True)
                store = Store(kind, workdir, name)
                try:
                    server = (
                        start_bare(workdir, args.workers, store, queued=args.bare_queue)
                        if name == "bare"
                        else start(workdir, args.workers, store)
                    )
                    results[name] = run_target(server, store, table, pool, procs, args)
                finally:
                    store.drop()
            print()
            ok, document = report(results, args, f"ingest benchmark on {kind.label}  ({machine})")
            all_ok &= ok
            documents.append({"store": kind.name, **document})
    print(f"\ncommand: {command()}")
    if args.json:
        print(
            json.dumps(
                {
                    "command": command(),
                    "options": {k: v for k, v in vars(args).items() if k != "store_kinds"},
                    "runs": documents,
                    "ok": all_ok,
                },
                indent=2,
            )
        )
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
