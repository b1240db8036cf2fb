"""One health model for every surface: `/readyz`, `connector status`, the dashboard overview and `/metrics`.

Why one module: each surface used to assemble its own view from the ledger, and a problem one of them knew
(a mapping that no longer loads, a worker that keeps dying) could look healthy on the others. Here each sink
gets its conditions — paused, rate-limited, broken mapping, missing fields — and the delivery engine its
state, each with the reason and the one command that fixes it (connector.hints.command); the surfaces only
render it.

Readiness (what `/readyz` answers 503 for) is only what stops *receiving* from being worth it: the store
cannot take a write, or sinks are configured and no delivery worker is alive. Everything else is a warning
with `/readyz` still 200 — also when every sink is paused: webhooks are still stored and are delivered once
the cause is fixed, while a 503 would make a load balancer turn 2X's webhooks away.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from connector.config import Settings
from connector.errors import ConfigError
from connector.hints import command
from connector.ledger import Ledger
from connector.missing_fields import by_sink as missing_by_sink
from connector.missing_fields import warning as missing_warning

SINK_STATES = ("ok", "paused", "rate_limited", "broken_mapping", "missing_fields")
"""Most severe first; a sink's `state` is its most severe condition (`connector_sink_state` exports each)."""
ENGINE_STATES = ("ok", "idle", "restarted", "dead")
"""`idle`: no sink configured, no worker needed. `restarted`: alive, but a worker exited lately (why).
`dead`: sinks are configured and no worker is alive (nothing is delivered)."""

WORKER_STALE_S = 10.0
"""A worker whose heartbeat (every 2 s, connector.engine.worker.HEARTBEAT_S) is older than this is not live."""
EXIT_MEMORY_S = 600.0
"""How long a worker's exit reason is shown."""

_LINE = re.compile(r"^(?:line (\d+)(?:, column (\d+))?$|(.*) \(line (\d+)\)$)")


@dataclass(frozen=True)
class Condition:
    """One thing wrong with a sink: what, why, and the command that fixes it (None: it passes by itself)."""

    state: str
    reason: str
    command: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def stops_delivery(self) -> bool:
        return self.state in ("paused", "rate_limited")

    def advice(self, *, first_line: bool = False) -> str:
        """The reason with `(fix: COMMAND)` unless the reason already names the command."""
        reason = self.reason.splitlines()[0] if first_line else self.reason
        if self.command and self.command not in self.reason:
            return f"{reason} (fix: {self.command})"
        return reason


@dataclass(frozen=True)
class SinkCondition:
    """A sink as every surface shows it."""

    name: str
    configured: bool
    conditions: tuple[Condition, ...] = ()

    @property
    def state(self) -> str:
        return self.conditions[0].state if self.conditions else "ok"


@dataclass(frozen=True)
class EngineCondition:
    """The delivery workers: how many are alive and, when one exited lately, why."""

    state: str
    live_workers: int
    reason: str | None = None
    command: str | None = None
    last_exit: str | None = None


@dataclass(frozen=True)
class Health:
    sinks: dict[str, SinkCondition]
    engine: EngineCondition
    workers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def delivering(self) -> bool:
        """False when sinks are configured and no worker is alive (the one engine state that stops delivery)."""
        return self.engine.state != "dead"

    def to_dict(self) -> dict[str, Any]:
        return {
            "sinks": {
                name: {
                    "state": sink.state,
                    "configured": sink.configured,
                    "conditions": [_plain(asdict(c)) for c in sink.conditions],
                }
                for name, sink in self.sinks.items()
            },
            "engine": asdict(self.engine),
        }


def assess(ledger: Ledger, settings: Settings, *, now: datetime | None = None) -> Health:
    """Every sink's conditions and the engine's state, read from the ledger (raises StoreError when it is down)."""
    now = now or datetime.now(UTC)
    states = {s.sink: s for s in ledger.sinks.all()}
    missing = missing_by_sink(ledger)
    names = settings.enabled_sinks()
    sinks: dict[str, SinkCondition] = {}
    for name in names:
        found = states.get(name)
        conditions: list[Condition] = []
        if found is not None and found.paused:
            conditions.append(_paused(name, found.reason, found.paused_at))
        if found is not None and found.blocked_until is not None and found.blocked_until > now:
            conditions.append(
                Condition(
                    "rate_limited",
                    "the CRM's rate limit was reached: nobody calls it before "
                    f"{_when(found.blocked_until)}; nothing fails, deliveries wait",
                    until=found.blocked_until,
                )
            )
        if found is not None and found.mapping_error:
            conditions.append(
                Condition(
                    "broken_mapping",
                    "the mapping file changed but does not load; the previous "
                    f"mapping stays in use until it is fixed:\n{found.mapping_error}",
                    command("validate", "--offline"),
                    since=found.mapping_error_at,
                )
            )
        text = missing_warning(name, missing.get(name, []))
        if text:
            conditions.append(Condition("missing_fields", text, command("crm-setup", "--sink", name)))
        sinks[name] = SinkCondition(name, name in settings.sinks, tuple(conditions))
    workers = ledger.sinks.live_workers(within_s=WORKER_STALE_S)
    exits = ledger.sinks.recent_exits(within_s=EXIT_MEMORY_S)
    silent = ledger.sinks.silent_workers_here(within_s=WORKER_STALE_S) if not workers else []
    return Health(sinks, _engine(settings, workers, exits, silent), workers)


def _paused(name: str, reason: str | None, since: datetime | None) -> Condition:
    """Credentials rejected, or a field the sink must not skip (the do-not-call field) is missing in the CRM."""
    text = reason or "paused"
    if text.lower().startswith("credentials rejected"):
        return Condition(
            "paused",
            f"{text}; fix sinks.{name}'s credentials in the config (the sink resumes by "
            "itself once a probe succeeds), then check them with the command",
            command("validate"),
            since=since,
        )
    if text.startswith("the CRM lacks fields"):
        return Condition("paused", text, command("crm-setup", "--sink", name), since=since)
    return Condition("paused", text, command("validate"), since=since)


def _engine(
    settings: Settings,
    workers: list[dict[str, Any]],
    exits: list[dict[str, Any]],
    silent: list[dict[str, Any]] | None = None,
) -> EngineCondition:
    last = f"{exits[0]['worker_id']}: {exits[0]['exit_reason']}" if exits else None
    if not settings.enabled_sinks():
        return EngineCondition("idle", len(workers), last_exit=last)
    start = command("serve") if settings.worker.embedded else command("worker")
    if not workers and silent:
        # Not "start one": it runs, and starting another would not help. A full disk showed "alive: 0, fix:
        # connector serve" while serve ran.
        pids = ", ".join(str(w["pid"]) for w in silent)
        reason = (
            f"a delivery worker runs here (pid {pids}) but has not written its heartbeat for over "
            f"{WORKER_STALE_S:g} s: the store may not take writes (full disk, read-only, locked), see /readyz"
        )
        return EngineCondition("dead", 0, reason, None, last)
    if not workers:
        reason = "no live delivery worker: nothing is delivered (webhooks are still stored)"
        if last:
            reason += f"; the last one {exits[0]['exit_reason']}"
        return EngineCondition("dead", 0, reason, start, last)
    if exits:
        return EngineCondition("restarted", len(workers), f"a delivery worker exited lately: {last}", None, last)
    return EngineCondition("ok", len(workers))


def mapping_error_text(exc: ConfigError) -> str:
    """A mapping's ConfigError as `FILE:LINE: where: message` lines (editors and terminals jump to FILE:LINE)."""
    lines = []
    for problem in exc.problems:
        matched = _LINE.match(problem.path)
        if matched and matched.group(1):
            column = f"{matched.group(2)}:" if matched.group(2) else ""
            lines.append(f"{exc.source}:{matched.group(1)}:{column} {problem.message}")
        elif matched:
            lines.append(f"{exc.source}:{matched.group(4)}: {matched.group(3)}: {problem.message}")
        else:
            lines.append(f"{exc.source}: {problem.path}: {problem.message}")
    return "\n".join(lines)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}
