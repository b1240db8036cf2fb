"""Figures of one delivery run, from the stand-in's records, the poster's acks and the ledger.

* an event is delivered when the ledger says its delivery succeeded; its completion time is the
  stand-in's arrival time of its last action's (first) write;
* lag = completion − the time its POST's 202 was read (both `time.time()`, same host);
* the backlog is acked-but-not-completed events; req/s and the budget share count the requests
  the stand-in accepted while that backlog was non-empty.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field
from typing import Any

from _load import percentile  # bench/ is sys.path[0]
from sqlalchemy import text

from connector.ledger import Ledger


@dataclass
class RunFigures:
    """One configuration's row of the table (None where it could not be measured)."""

    name: str
    backend: str
    workers: int
    events: int
    rate: int
    window_s: float
    posted: int = 0
    post_s: float = 0.0
    delivered: int = 0
    events_per_s: float | None = None
    lag_p50_s: float | None = None
    lag_p99_s: float | None = None
    lag_max_s: float | None = None
    req_per_s: float | None = None
    budget_used: float | None = None
    backlog_s: float | None = None
    requests: int = 0
    max_in_window: int = 0
    rejected_429: int = 0
    dead: int = 0
    duplicates: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    attempt_outcomes: dict[str, int] = field(default_factory=dict)
    post_errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    timed_out: bool = False
    worker_cpu_s: float | None = None
    """CPU seconds all workers used from start to the end of the backlog."""
    loadavg: tuple[float, float, float] | None = None
    """Host load average (1, 5, 15 min) when the backlog was drained: others' tests run here too."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def completions(writes: dict[str, list[float]], succeeded: set[str], acks: dict[int, float]) -> dict[int, float]:
    """event id → time of its last write, for acked events whose delivery the ledger says succeeded."""
    last: dict[int, float] = {}
    for key, times in writes.items():
        prefix = key.split(":", 1)[0]
        if not prefix.startswith("2x-"):
            continue
        try:
            event_id = int(prefix[3:])
        except ValueError:
            continue
        last[event_id] = max(last.get(event_id, 0.0), times[0])
    return {e: t for e, t in last.items() if e in acks and str(e) in succeeded}


def busy_intervals(acks: dict[int, float], done: dict[int, float]) -> list[tuple[float, float]]:
    """Intervals in which some acked event was not yet completed."""
    moves = sorted([(t, 1) for t in acks.values()] + [(t, -1) for e, t in done.items() if e in acks])
    intervals: list[tuple[float, float]] = []
    depth, opened = 0, 0.0
    for at, step in moves:
        if depth == 0 and step > 0:
            opened = at
        depth += step
        if depth == 0:
            intervals.append((opened, at))
    if depth > 0 and moves:
        intervals.append((opened, moves[-1][0]))
    return intervals


def max_in_window(times: list[float], window_s: float) -> int:
    """The most accepted requests in any sliding window of window_s."""
    ordered, best, start = sorted(times), 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def ledger_state(ledger: Ledger) -> tuple[dict[str, int], dict[str, int], set[str]]:
    """(delivery statuses, attempt outcomes, ids of events whose every delivery succeeded)."""
    statuses = {status: n for (_sink, status), n in ledger.deliveries.counts().items()}
    with ledger.engine.connect() as conn:
        outcomes = {
            str(r[0]): int(r[1]) for r in conn.execute(text("SELECT outcome, count(*) FROM attempts GROUP BY outcome"))
        }
        succeeded = {
            str(r[0])
            for r in conn.execute(
                text(
                    "SELECT event_id FROM deliveries GROUP BY event_id HAVING min(status) = 'succeeded' "
                    "AND max(status) = 'succeeded'"
                )
            )
        }
    return statuses, outcomes, succeeded


def dead_reasons(ledger: Ledger, limit: int = 5) -> list[str]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT event_id, status, dead_reason, last_error FROM deliveries "
                "WHERE status IN ('dead', 'held') LIMIT :n"
            ),
            {"n": limit},
        )
        return [f"event {r[0]} {r[1]}: {r[2] or r[3]}" for r in rows]


def figures(fig: RunFigures, stats: dict[str, Any], acks: dict[int, float], ledger: Ledger) -> RunFigures:
    """Fill `fig` from the stand-in's stats, the acks and the ledger."""
    statuses, outcomes, succeeded = ledger_state(ledger)
    fig.statuses, fig.attempt_outcomes = statuses, outcomes
    fig.dead = statuses.get("dead", 0)
    if fig.dead or statuses.get("held"):
        fig.problems.extend(dead_reasons(ledger))
    writes: dict[str, list[float]] = stats["writes"]
    fig.duplicates = sum(1 for times in writes.values() if len(times) > 1)
    accepted: list[float] = sorted(stats["accepted"])
    fig.requests, fig.rejected_429 = len(accepted), len(stats["rejected"])
    fig.max_in_window = max_in_window(accepted, fig.window_s)
    done = completions(writes, succeeded, acks)
    fig.delivered = len(done)
    if not done:
        return fig
    lags = [done[e] - acks[e] for e in done]
    fig.lag_p50_s, fig.lag_p99_s, fig.lag_max_s = percentile(lags, 50), percentile(lags, 99), max(lags)
    fig.events_per_s = len(done) / max(max(done.values()) - min(acks.values()), 1e-9)
    intervals = busy_intervals(acks, done)
    span = sum(b - a for a, b in intervals)
    in_backlog = sum(bisect.bisect_right(accepted, b) - bisect.bisect_left(accepted, a) for a, b in intervals)
    fig.backlog_s = span
    if span > 0:
        fig.req_per_s = in_backlog / span
        fig.budget_used = fig.req_per_s / (fig.rate / fig.window_s)
    return fig
