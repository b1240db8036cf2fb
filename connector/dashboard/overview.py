"""The overview page's data: each sink's health (paused, blocked, rate budget, backlog) and the workers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connector.config import Settings
from connector.dashboard import queries
from connector.dashboard.reasons import Reason, pause_reason
from connector.engine.ratebudget import bucket_shape  # the workers' own bucket, so the figures match
from connector.ledger import Ledger
from connector.ops.reports import health_report

BACKLOG_STATUSES = ("pending", "retry_scheduled", "leased")
STATUS_ORDER = ("pending", "retry_scheduled", "leased", "succeeded", "held", "dead")


@dataclass(frozen=True)
class RateBudget:
    """A sink's request budget and how much of its shared bucket is drawn right now."""

    requests: int | None
    window_s: float
    where: str
    """`store`, `redis` or `none`."""
    tokens_left: float | None = None
    capacity: float | None = None

    @property
    def used_percent(self) -> int | None:
        if self.tokens_left is None or not self.capacity:
            return None
        return max(0, min(100, round(100 * (1 - self.tokens_left / self.capacity))))


@dataclass(frozen=True)
class SinkHealth:
    """One sink as the overview shows it."""

    name: str
    type: str
    configured: bool
    enabled: bool
    paused: bool
    pause: Reason | None
    paused_at: datetime | None
    next_probe_at: datetime | None
    blocked_until: datetime | None
    counts: dict[str, int]
    backlog: int
    oldest_due: datetime | None
    budget: RateBudget
    missing_warning: str | None = None
    """The CRM lacks fields the mapping writes (schema drift): they are skipped until crm-setup."""
    conditions: tuple[dict[str, Any], ...] = ()
    """What is wrong (connector.sink_health: state, reason, command), most severe first; the same on every surface."""
    mapping_error: str | None = None
    """The mapping file changed but does not load (FILE:LINE lines); the previous mapping is in use."""

    @property
    def state(self) -> str:
        if not self.configured:
            return "not configured"
        if not self.enabled:
            return "disabled"
        if self.paused:
            return "paused"
        if self.blocked:
            return "blocked"
        if self.mapping_error:
            return "broken mapping"
        if self.missing_warning:
            return "missing fields"
        return "running"

    @property
    def mapping_error_since(self) -> str | None:
        return next((c.get("since") for c in self.conditions if c["state"] == "broken_mapping"), None)

    @property
    def fixes(self) -> list[dict[str, Any]]:
        """Conditions the sink card does not already explain in its own words (paused, rate-limited, missing fields
        have their blocks), plus the fix command of every condition."""
        return [c for c in self.conditions if c.get("command") or c["state"] == "broken_mapping"]

    @property
    def blocked(self) -> bool:
        return self.blocked_until is not None and self.blocked_until > datetime.now(UTC)


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def budget_for(settings: Settings, name: str, cache: dict[str, tuple[int | None, float]], ledger: Ledger) -> RateBudget:
    """The sink's budget (its `rate_limit`, else its type's default) and the bucket's fill now."""
    config = settings.sinks.get(name)
    if config is None:
        return RateBudget(None, 10.0, "none")
    if name not in cache:
        cache[name] = _default_budget(name, config)
    requests, window = cache[name]
    if config.rate_limit is not None:
        requests, window = config.rate_limit.requests, config.rate_limit.window_s
    if not requests:
        return RateBudget(None, window, "none")
    if settings.worker.redis_url:
        return RateBudget(requests, window, "redis")
    per_second, capacity = bucket_shape(requests, window)
    bucket = queries.rate_bucket(ledger, name)
    if bucket is None:
        return RateBudget(requests, window, "store", capacity, capacity)
    tokens, updated = bucket
    refilled = min(capacity, tokens + max(0.0, time.time() - updated) * per_second)
    return RateBudget(requests, window, "store", refilled, capacity)


def _default_budget(name: str, config: Any) -> tuple[int | None, float]:
    """The sink type's own default budget (HubSpot: 190 / 10 s), from its capabilities."""
    from connector.sinks.registry import build_sink

    try:
        capabilities = build_sink(name, config).capabilities
    except Exception:  # noqa: BLE001 - a sink that cannot be built shows no budget, the page still works
        return None, 10.0
    return capabilities.requests_per_window, capabilities.window_s


def sink_health(ledger: Ledger, settings: Settings, cache: dict[str, tuple[int | None, float]]) -> dict[str, Any]:
    """Every sink (configured or seen in the ledger) with its state, and the live workers."""
    report = health_report(ledger, settings)
    statuses = {s.sink: s for s in ledger.sinks.all()}
    sinks = []
    for name, entry in report["sinks"].items():
        config = settings.sinks.get(name)
        state = statuses.get(name)
        counts = entry["deliveries"]
        sinks.append(
            SinkHealth(
                name=name,
                type=getattr(config, "type", "—"),
                configured=entry["configured"],
                enabled=bool(config and config.enabled),
                paused=entry["paused"],
                pause=pause_reason(entry["paused_reason"]) if entry["paused"] else None,
                paused_at=state.paused_at if state else None,
                next_probe_at=state.next_probe_at if state else None,
                blocked_until=_parse(entry["blocked_until"]),
                counts={s: counts.get(s, 0) for s in STATUS_ORDER} | counts,
                backlog=sum(counts.get(s, 0) for s in BACKLOG_STATUSES),
                oldest_due=_parse(entry["oldest_due"]),
                budget=budget_for(settings, name, cache, ledger),
                missing_warning=entry.get("warning"),
                conditions=tuple(entry.get("conditions") or ()),
                mapping_error=entry.get("mapping_error"),
            )
        )
    workers = [
        {**w, "heartbeat_at": _parse(w.get("heartbeat_at")), "started_at": _parse(w.get("started_at"))}
        for w in report["live_workers"]
    ]
    return {"sinks": sinks, "workers": workers, "engine": report["engine"]}


def totals(ledger: Ledger) -> dict[str, int]:
    """Headline numbers: events, dead and held deliveries, quarantined bodies awaiting a look."""
    by_status = queries.count_by_status(ledger)
    return {
        "events": queries.count_events(ledger),
        "dead": by_status.get("dead", 0),
        "held": by_status.get("held", 0),
        "backlog": sum(by_status.get(s, 0) for s in BACKLOG_STATUSES),
        "quarantine": queries.count_quarantine(ledger),
    }
