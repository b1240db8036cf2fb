"""`connector status` as text: what an operator reads first, in a terminal, without scrolling.

The JSON audit trail (`--json`) has everything; this summary answers the questions people ask of it:
did the call reach each CRM, which records did it touch (with links), what went wrong in plain words,
and when the next try is. Phone numbers are masked here: a terminal's scrollback is not the place
for them (`--json` and the dashboard show the full record).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connector.hints import command
from connector.logs import bounded, escape_control, mask_phone

_STATE_WORDS = {
    "succeeded": "delivered",
    "pending": "waiting to be delivered",
    "leased": "being delivered now",
    "retry_scheduled": "failed, will retry",
    "dead": "dead-lettered (will not be retried on its own)",
    "held": "held for review",
}
_ACTION_WORDS = {
    "resolve_contact": "contact",
    "create_activity": "call logged",
    "update_contact": "contact updated",
    "create_task": "task created",
    "close_callbacks": "callbacks closed",
}
_REFUSED = "refused: not written"
"""An action left `in_flight` on a delivery a permanent CRM error killed: the CRM answered it with that error."""
_UNKNOWN = "failed: outcome unknown, may be written"
"""The same on a delivery that died otherwise (retries exhausted after lost answers): the CRM may have it."""


def event_text(detail: dict[str, Any]) -> str:
    """One event (from `connector.dashboard.audit.event_detail`) as a short readable report."""
    summary = detail["summary"]
    end = summary.get("end_reason") or {}
    failure = summary.get("failure_reason") or {}
    outcome = end.get("value") or "(no end_reason)"
    if end and end.get("known") is False:
        outcome += " (not a documented end_reason)"
    if failure.get("value"):
        outcome += f", failure {failure['value']}"
    lines = [f"Event {_safe(detail['event_id'])}, received {_when(detail['received_at'])}"]
    if detail.get("purged_at"):  # only the end reason is left of the call: no "answered no" for a call it emptied
        lines += [
            f"  call    : {_safe(outcome)}",
            f"  content : purged by retention on {_when(detail['purged_at'])} (body, call, phone, plans, error texts);"
            " it cannot be replayed",
        ]
    else:
        facts = [f"answered {'yes' if summary.get('answered') else 'no'}"]
        if summary.get("duration_seconds") is not None:
            facts.append(f"{summary['duration_seconds']:g} s")
        if summary.get("direction"):
            facts.append(str(summary["direction"]))
        lines += [
            f"  call    : {_safe(outcome)}; {', '.join(facts)}",
            f"  lead    : {mask_phone(summary.get('phone'))}"
            + (f", time zone {_safe(summary['timezone'])}" if summary.get("timezone") else ""),
        ]
    if summary.get("flags"):
        lines.append(f"  flags   : {', '.join(_safe(str(f)) for f in summary['flags'])}")
    deliveries = detail.get("deliveries") or []
    if not deliveries:
        lines.append("  No sink is configured for this event: it is stored only.")
    for delivery in deliveries:
        lines += [""] + _delivery_lines(delivery)
    lines += ["", f"Full audit trail: {command('status', '--json', str(detail['event_id']))}"]
    return "\n".join(lines)


def _delivery_lines(delivery: dict[str, Any]) -> list[str]:
    status = delivery["status"]
    attempts = delivery.get("attempts") or []
    counted = len(attempts)
    head = f"{delivery['sink']}: {_STATE_WORDS.get(status, status)}"
    head += f" after {counted} attempt{'s' if counted != 1 else ''}" if counted else ""
    lines = [head]
    plan = delivery.get("plan") or {}
    if plan.get("outcome"):
        lines.append(
            f"  outcome : {plan['outcome'].get('bundle')}" + ("  (do-not-call)" if plan.get("do_not_call") else "")
        )
    order = {action.get("key"): index for index, action in enumerate(plan.get("actions") or [])}
    unfinished = None
    if status == "dead":
        refused = bool(attempts) and attempts[-1].get("error_kind") == "PermanentError"
        unfinished = _REFUSED if refused else _UNKNOWN
    for action in sorted(delivery.get("actions") or [], key=lambda a: order.get(a["key"], len(order))):
        lines.append("  " + _action_line(action, unfinished=unfinished))
    reason = delivery.get("reason")
    if reason is not None and status != "succeeded":
        lines.append(f"  why     : {_safe(reason.plain)}")
        if reason.raw and reason.raw not in reason.plain:
            lines.append(f"  CRM said: {_one_line(reason.raw)}")
    if status == "retry_scheduled" and delivery.get("due_at"):
        lines.append(f"  next try: {_when(delivery['due_at'])}")
    if status in ("dead", "held"):
        lines.append(f"  replay  : {command('replay', '--event', str(delivery['event_id']))}")
    return lines


def _action_line(action: dict[str, Any], *, unfinished: str | None = None) -> str:
    """`unfinished`: what an action left `in_flight` reads as (a dead delivery's is no longer in flight)."""
    result = action.get("result") or {}
    label = _ACTION_WORDS.get(action["kind"], action["kind"])
    if action["status"] == "skipped" or result.get("skipped"):
        why = (result.get("detail") or {}).get("reason")
        return f"{label:<16}skipped" + (f" ({_safe(str(why))})" if why else "")
    if action["status"] != "succeeded":
        if unfinished is not None and action["status"] == "in_flight":
            return f"{label:<16}{unfinished}"
        return f"{label:<16}{action['status']}"
    text = f"{label:<16}{result.get('object') or ''} {action.get('crm_id') or ''}".rstrip()
    detail = result.get("detail") or {}
    if detail.get("fields"):
        text += f"  fields: {', '.join(_safe(str(f)) for f in detail['fields'])}"
    withheld = detail.get("withheld")
    if isinstance(withheld, dict) and withheld.get("fields"):
        names = ", ".join(_safe(str(f)) for f in withheld["fields"])
        text += f"  left out (do-not-call): {names}"
    link = action.get("link")
    if link is not None and link.href:
        text += f"  {link.href}"
    return text


_STATE_LABELS = {
    "ok": "ok",
    "paused": "paused",
    "rate_limited": "rate-limited",
    "broken_mapping": "broken mapping",
    "missing_fields": "missing fields",
}


def health_text(report: dict[str, Any]) -> str:
    """`connector status` without an event: one row per sink, what is wrong with each and the command that fixes
    it (connector.sink_health), then the delivery workers."""
    header = ("SINK", "STATE", "BACKLOG", "DEAD", "OLDEST DUE", "NOTE")
    rows = [header]
    details: list[str] = []
    for name, sink in report["sinks"].items():
        counts = sink.get("deliveries") or {}
        backlog = sum(n for state, n in counts.items() if state in ("pending", "retry_scheduled", "leased"))
        state, note = _sink_state(sink)
        rows.append(
            (
                name,
                state,
                str(backlog),
                str(counts.get("dead", 0)),
                _when(sink["oldest_due"]) if sink.get("oldest_due") else "-",
                note,
            )
        )
        for condition in sink.get("conditions") or []:
            details.append(f"{name}: {_STATE_LABELS.get(condition['state'], condition['state'])}")
            details += [f"  {_safe(line)}" for line in str(condition["reason"]).splitlines()]
            if condition.get("command"):
                details.append(f"  fix: {condition['command']}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1] for row in rows
    ]
    lines = [line.rstrip() for line in lines]
    if not report["sinks"]:
        lines.append("(no sinks configured: webhooks are only stored)")
    if details:
        lines += ["", *details]
    workers = report.get("live_workers") or []
    engine = report.get("engine") or {}
    lines.append("")
    lines.append(
        f"Delivery workers alive: {len(workers)}"
        + ("" if workers or engine.get("state") == "idle" else "  (nothing is delivered until one runs)")
    )
    for worker in workers:
        lines.append(
            f"  {worker.get('worker_id') or worker.get('id')}  last heartbeat {_when(worker.get('heartbeat_at'))}"
        )
    if engine.get("last_exit"):
        lines.append(f"  last exit: {_safe(engine['last_exit'])}")
    if engine.get("state") == "dead" and engine.get("command"):
        lines.append(f"  fix: {engine['command']}")
    elif engine.get("state") == "dead" and engine.get("reason"):
        lines.append(f"  {_safe(engine['reason'])}")
    return "\n".join(lines)


def _sink_state(sink: dict[str, Any]) -> tuple[str, str]:
    if not sink.get("configured", True):
        return "not configured", "deliveries exist for a sink no longer in the config"
    conditions = sink.get("conditions") or []
    if not conditions:
        return "ok", ""
    first = conditions[0]
    lines = str(first["reason"]).splitlines()
    note = lines[1] if first["state"] == "broken_mapping" and len(lines) > 1 else lines[0]  # its first FILE:LINE
    if first["state"] == "rate_limited" and first.get("until"):
        note = f"waiting until {_when(first['until'])}"
    more = len(conditions) - 1
    return (_STATE_LABELS.get(first["state"], first["state"]) + (f" (+{more})" if more else ""), _safe(note))


def _when(value: Any) -> str:
    """An ISO timestamp as `2026-12-04 16:58:05 UTC`."""
    if not value:
        return "-"
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _one_line(text: str) -> str:
    """A CRM's message: on one line, control characters visible, cut at logs.MAX_FIELD_CHARS."""
    return str(bounded(_safe(text)))


def _safe(text: str) -> str:
    """Payload-derived text cannot move the cursor or forge lines in the terminal."""
    return escape_control(str(text))
