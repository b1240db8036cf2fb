"""Delivery benchmark: webhook POST → CRM write, end to end, single-event path and batched path.

Batched (bench/_delivery_batch.py; the real HubSpot sink, hubspot-api-client and the HubSpot emulator):

* a backlog of `--batch-events` (10,000) events of known contacts, no rate limit: events/s and store commits per
  event with 1 worker on SQLite, 1 on PostgreSQL, 3 on PostgreSQL (`--batch-configs sqlite1,pg1,pg3`);
* at HubSpot's limit (190 requests / 10 s), a `--hs-backlog` (20,000) backlog drained by `--hs-workers` (3)
  workers on PostgreSQL: the drain rate as a share of the batched ceiling (950 events/s), 429s, duplicates;
* do-not-call behind a `--dnc-backlog` (10,000) backlog at HubSpot's limit: 202 → delivered (goal < 5 s);
* recovery: `kill -9` of `connector serve` → first delivery of a claim its embedded worker held (goal ≤ 10 s).

`--quick` shrinks them all for a smoke run of a few minutes; the README quotes the full run.

Single-event path (the rest of this docstring): against a rate-limited CRM stand-in.

For each configuration it starts the real `connector serve` (gunicorn receiver, no embedded
worker), N `connector worker` processes and a loopback CRM stand-in (bench/_delivery_crm.py) that
enforces R requests per W seconds with 429 + Retry-After; posts `--events` webhooks as fast as the
receiver takes them, so a backlog forms, and measures delivered events/s, lag (last CRM write −
202) p50/p99, CRM requests/s and the share of the rate budget used while the backlog was
non-empty, 429s, and dead deliveries (from the ledger). Then a do-not-call event is posted behind
a backlog of 10,000 events and timed from its 202 to its contact update at the stand-in.

    python bench/delivery.py [--quick] [--batch-configs sqlite1,pg1,pg3] [--batch-events 10000]
                             [--hs-backlog 20000] [--hs-workers 3] [--recovery-backlog 3000] [--skip-batched]
                             [--events 3000] [--rate 400] [--window 1] [--configs pg1]
                             [--dnc-backlog 10000] [--skip-dnc] [--timeout S] [--json [FILE]] [--keep]

`--configs` runs of the single-event path (pgN, sqliteN, and `hs190`: 190 per 10 s through the stand-in, `--hs-events`
events) default to `pg1`, the reference the batched figures compare with. A benchmark script that prints figures,
not a test; exit status 1 when a run saw problems (dead deliveries, 429s, non-202 answers, crashes, timeouts).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench/_delivery_* helpers

import _delivery_batch as batched
from _common import machine  # noqa: E402
from _delivery_measure import RunFigures
from _delivery_runs import note, run_throughput

REQUESTS_PER_EVENT = 3.3
DNC_GOAL_S = 5.0
RECOVERY_GOAL_S = 10.0
HS_RATE, HS_WINDOW_S = 190, 10.0
"""HubSpot's burst limit for private apps on Professional (190 requests per 10 s)."""


def plan_configs(args: argparse.Namespace) -> list[RunFigures]:
    planned = []
    for name in [c.strip() for c in args.configs.split(",") if c.strip()]:
        if name == "hs190":
            planned.append(RunFigures(name, "postgresql", 1, args.hs_events, 190, 10.0))
        elif match := re.fullmatch(r"(pg|sqlite)(\d+)", name):
            backend = "postgresql" if match[1] == "pg" else "sqlite"
            planned.append(RunFigures(name, backend, int(match[2]), args.events, args.rate, args.window))
        else:
            raise SystemExit(f"unknown configuration {name!r}: use pgN, sqliteN or hs190")
    return planned


def timeout_for(fig: RunFigures, override: float | None) -> float:
    """A hard bound: three times the time the budget alone needs, plus start-up, at least 5 minutes."""
    if override:
        return override
    budget_s = fig.events * REQUESTS_PER_EVENT / (0.95 * fig.rate / fig.window_s)
    return max(300.0, 3 * budget_s + 60)


def fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def table(figs: list[RunFigures]) -> str:
    head = [
        "config",
        "events",
        "workers",
        "backend",
        "limit",
        "events/s",
        "lag p50 s",
        "lag p99 s",
        "req/s",
        "budget %",
        "429s",
        "dead",
    ]
    rows = [head] + [
        [
            f.name + (" (timeout)" if f.timed_out else ""),
            f"{f.delivered}/{f.events}",
            str(f.workers),
            f.backend,
            f"{f.rate}/{f.window_s:g}s",
            fmt(f.events_per_s, ".1f"),
            fmt(f.lag_p50_s, ".2f"),
            fmt(f.lag_p99_s, ".2f"),
            fmt(f.req_per_s, ".1f"),
            fmt(None if f.budget_used is None else 100 * f.budget_used, ".1f"),
            str(f.rejected_429),
            str(f.dead),
        ]
        for f in figs
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def cpu_share(fig: RunFigures) -> str:
    """The workers' CPU use as a share of one core per worker over the backlog."""
    if fig.worker_cpu_s is None or not fig.backlog_s:
        return ""
    return f" ({100 * fig.worker_cpu_s / (fig.backlog_s * fig.workers):.0f}% of a core each over the backlog)"


def details(fig: RunFigures) -> list[str]:
    lines = [
        (
            f"  {fig.name}: {fig.posted} of {fig.events} acknowledged in {fig.post_s:.1f} s "
            f"({fig.posted / max(fig.post_s, 1e-9):.0f}/s); backlog non-empty {fmt(fig.backlog_s, '.1f')} s; "
            f"{fig.requests} CRM requests, most in any {fig.window_s:g} s window {fig.max_in_window} "
            f"(limit {fig.rate}); lag max {fmt(fig.lag_max_s, '.2f')} s; keys written twice {fig.duplicates}; "
            f"deliveries {fig.statuses}; attempts {fig.attempt_outcomes}; workers used "
            f"{fmt(fig.worker_cpu_s, '.0f')} CPU-s{cpu_share(fig)}; host load average at the end "
            f"{fmt(fig.loadavg[0] if fig.loadavg else None, '.1f')}"
        )
    ]
    lines += [f"    post error: {e}" for e in fig.post_errors]
    lines += [f"    PROBLEM: {p}" for p in fig.problems]
    return lines


def dnc_line(dnc: dict[str, Any]) -> str:
    head = (
        f"do-not-call behind {dnc['backlog']:,} events (1 worker, postgresql, batched HubSpot sink, "
        f"{dnc['rate']}/{dnc['window_s']:g}s): "
    )
    if dnc.get("dnc_s") is None:
        return head + "NOT MEASURED " + "; ".join(dnc["problems"])
    verdict = "OK" if dnc["dnc_s"] < DNC_GOAL_S else "OVER GOAL"
    lone = ", ".join(f"{s:.2f}" for s in dnc.get("lone_s") or [])
    text = (
        f"lone calls to an idle worker (same setup, before the backlog): 202 → delivery succeeded in {lone} s\n"
        f"{head}202 → delivery succeeded in {dnc['dnc_s']:.2f} s (goal < {DNC_GOAL_S:g} s: {verdict}); "
        f"{dnc['delivered_before']} delivered before it, {dnc['backlog_left']:,} still queued, "
        f"{dnc['answered_429']} 429s; backlog inserted in {dnc['insert_s']:.1f} s"
    )
    return text + "".join(f"\n    PROBLEM: {p}" for p in dnc["problems"])


def recovery_line(rec: dict[str, Any]) -> str:
    head = (
        f"recovery (connector serve + 1 worker, postgresql, {HS_RATE}/{HS_WINDOW_S:g}s, {rec['backlog']:,} backlog): "
    )
    if rec.get("recovery_s") is None:
        return head + "NOT MEASURED " + "; ".join(rec["problems"])
    verdict = "OK" if rec["recovery_s"] <= RECOVERY_GOAL_S else "OVER GOAL"
    return (
        f"{head}kill -9 of serve → first delivery of one of the {rec['held']} claims its worker held in "
        f"{rec['recovery_s']:.2f} s (goal ≤ {RECOVERY_GOAL_S:g} s: {verdict})"
        + "".join(f"\n    PROBLEM: {p}" for p in rec["problems"])
    )


def plan_batched(args: argparse.Namespace) -> list[batched.BacklogFigures]:
    planned = []
    for name in [c.strip() for c in args.batch_configs.split(",") if c.strip()]:
        match = re.fullmatch(r"(pg|sqlite)(\d+)", name)
        if not match:
            raise SystemExit(f"unknown batched configuration {name!r}: use pgN or sqliteN")
        backend = "postgresql" if match[1] == "pg" else "sqlite"
        planned.append(batched.BacklogFigures(f"backlog-{name}", backend, int(match[2]), args.batch_events, None, 1.0))
    if args.hs_backlog:
        planned.append(
            batched.BacklogFigures(
                f"hubspot-limit-pg{args.hs_workers}",
                "postgresql",
                args.hs_workers,
                args.hs_backlog,
                HS_RATE,
                HS_WINDOW_S,
            )
        )
    return planned


def _interrupt(_signum: int, _frame: object) -> None:
    """Ctrl-C or SIGTERM: unwind once, so every process is stopped and every database dropped
    (further signals are ignored: the clean-up is bounded and must not be cut short)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (not README figures)")
    parser.add_argument("--batch-configs", default="sqlite1,pg1,pg3", help="batched backlog runs: pgN, sqliteN")
    parser.add_argument("--batch-events", type=int, default=10_000, help="events per batched backlog run")
    parser.add_argument("--hs-backlog", type=int, default=20_000, help="backlog drained at HubSpot's limit (0: skip)")
    parser.add_argument("--hs-workers", type=int, default=3, help="workers of the run at HubSpot's limit")
    parser.add_argument("--recovery-backlog", type=int, default=3000, help="backlog of the recovery run (0: skip)")
    parser.add_argument("--skip-batched", action="store_true", help="only the single-event path runs")
    parser.add_argument("--events", type=int, default=3000, help="events per throughput run")
    parser.add_argument("--rate", type=int, default=400, help="CRM limit: requests per window")
    parser.add_argument("--window", type=float, default=1.0, help="CRM limit: window in seconds")
    parser.add_argument("--configs", default="pg1", help="single-event path runs: comma list of pgN, sqliteN, hs190")
    parser.add_argument("--hs-events", type=int, default=300, help="events of the hs190 saturation check")
    parser.add_argument("--dnc-backlog", type=int, default=10_000)
    parser.add_argument("--dnc-rate", type=int, default=None, help="limit of the DNC run (default: --rate)")
    parser.add_argument("--dnc-window", type=float, default=None, help="window of the DNC run (default: --window)")
    parser.add_argument("--skip-dnc", action="store_true")
    parser.add_argument("--timeout", type=float, default=None, help="hard timeout per configuration, seconds")
    parser.add_argument(
        "--json",
        nargs="?",
        const="delivery-bench.json",
        default=None,
        metavar="FILE",
        help="also write the figures as JSON (default file: delivery-bench.json)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (configs, process logs)")
    parser.add_argument(
        "--distinct",
        metavar="CRMS[@EVENTS]",
        default=None,
        help="instead: the distinct-contact backlog run (bench/_delivery_distinct.py; run it directly "
        "for more options), e.g. hubspot,salesforce or hubspot@500",
    )
    args = parser.parse_args()
    if args.distinct:
        from _delivery_distinct import main as distinct

        crms, _, events = args.distinct.partition("@")
        return distinct(["--crms", crms, *(["--events", events] if events else [])])
    if args.quick:
        args.batch_events, args.hs_backlog, args.dnc_backlog = 2000, 4000, 2000
        args.recovery_backlog, args.events = 1000, 600
    planned = plan_configs(args)
    planned_batched = [] if args.skip_batched else plan_batched(args)
    info = machine()
    run_tag = f"{os.getpid()}_{os.urandom(3).hex()}"
    workdir = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background, where SIGINT is ignored
    signal.signal(signal.SIGTERM, _interrupt)
    done: list[RunFigures] = []
    done_batched: list[batched.BacklogFigures] = []
    dnc: dict[str, Any] | None = None
    recovery: dict[str, Any] | None = None
    interrupted = False
    try:
        for fig in planned:
            limit = timeout_for(fig, args.timeout)
            note(
                f"{fig.name}: {fig.workers} worker(s) on {fig.backend}, {fig.events} events, "
                f"limit {fig.rate}/{fig.window_s:g}s, hard timeout {limit:.0f} s"
            )
            try:
                run_throughput(fig, workdir / fig.name, run_tag, limit)
            except Exception as exc:  # noqa: BLE001 - report it in the table and go on
                fig.problems.append(f"run failed: {exc.__class__.__name__}: {exc}")
            done.append(fig)
        for bfig in planned_batched:
            note(
                f"{bfig.name}: {bfig.workers} worker(s) on {bfig.backend}, {bfig.events} events, "
                f"limit {'none' if bfig.rate is None else f'{bfig.rate}/{bfig.window_s:g}s'}"
            )
            try:
                batched.run_backlog(bfig, workdir / bfig.name, run_tag, args.timeout or 900.0)
            except Exception as exc:  # noqa: BLE001 - report it and go on
                bfig.problems.append(f"run failed: {exc.__class__.__name__}: {exc}")
            done_batched.append(bfig)
        if not args.skip_dnc:
            note(f"dnc: 1 worker on postgresql behind {args.dnc_backlog} events at {HS_RATE}/{HS_WINDOW_S:g}s")
            dnc = batched.run_dnc(
                workdir / "dnc",
                run_tag,
                args.dnc_backlog,
                args.dnc_rate or HS_RATE,
                args.dnc_window or HS_WINDOW_S,
                args.timeout or 300.0,
            )
        if args.recovery_backlog and not args.skip_batched:
            note(f"recovery: kill -9 of connector serve behind {args.recovery_backlog} events")
            recovery = batched.run_recovery(
                workdir / "recovery", run_tag, args.recovery_backlog, HS_RATE, HS_WINDOW_S, args.timeout or 300.0
            )
    except KeyboardInterrupt:
        interrupted = True
        note("interrupted: every process was stopped and every database dropped")
    problems = any(f.problems or f.dead or f.rejected_429 or f.timed_out or f.post_errors for f in done)
    problems = problems or bool(dnc and (dnc["problems"] or dnc.get("dnc_s") is None))
    problems = problems or any(f.problems or f.duplicates or f.lost or f.rate_limited_attempts for f in done_batched)
    problems = problems or bool(recovery and (recovery["problems"] or recovery.get("recovery_s") is None))
    print(f"machine: {info['cpu']}, {info['cores']} cores; {info['date_utc']}; Python {info['python']}")
    print(f"command: {info['command']}")
    print(
        "lag = last CRM write of the event − its 202; budget % = CRM req/s while the backlog was non-empty ÷ (R/W);"
        " shared host, figures are noisy"
    )
    if done_batched:
        print("batched path (HubSpot sink and emulator, known contacts, worker.batch_size 100):")
        print(batched.backlog_table(done_batched))
    if dnc is not None:
        print(dnc_line(dnc))
    if recovery is not None:
        print(recovery_line(recovery))
    if planned:
        print("single-event path (http sink, CRM stand-in):")
        print(table(done) if done else "(no configuration finished)")
    for fig in done:
        print("\n".join(details(fig)))
    if args.json:
        output = {
            "machine": info,
            "runs": [f.as_dict() for f in done],
            "batched": [f.as_dict() for f in done_batched],
            "dnc": dnc,
            "recovery": recovery,
            "interrupted": interrupted,
        }
        Path(args.json).write_text(json.dumps(output, indent=2))
        print(f"JSON written to {args.json}")
    if args.keep or problems:
        print(f"process logs and configs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 130 if interrupted else (1 if problems else 0)


if __name__ == "__main__":
    sys.exit(main())
