"""The dashboard's pages (GET), and the preview form, which only reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, render_template, request

from connector.dashboard import queries
from connector.dashboard.audit import event_detail
from connector.dashboard.context import state
from connector.dashboard.overview import STATUS_ORDER, sink_health, totals
from connector.dashboard.reasons import delivery_reason, quarantine_reason
from connector.default_mappings import KNOWN
from connector.errors import ConnectorError
from connector.ops.preview import preview_plans, render_text
from connector.ops.reports import quarantined_report
from connector.sample import sample_payload


def register(bp: Blueprint) -> None:
    """Add the page routes to the blueprint."""
    bp.add_url_rule("/", "overview", overview)
    bp.add_url_rule("/events", "events", events)
    bp.add_url_rule("/event", "event", event)
    bp.add_url_rule("/events/<path:event_id>", "event_at_path", event_at_path)
    bp.add_url_rule("/dead", "dead", dead)
    bp.add_url_rule("/quarantine", "quarantine", quarantine)
    bp.add_url_rule("/quarantine/<int:quarantine_id>", "quarantined", quarantined)
    bp.add_url_rule("/preview", "preview", preview, methods=["GET", "POST"])


MAX_PAGE = 1_000_000
"""Beyond any real ledger; bounds the query's OFFSET (a 30-digit page would overflow it)."""


def _page() -> int:
    try:
        return min(max(1, int(request.args.get("page", "1"))), MAX_PAGE)
    except ValueError:
        return 1


def _count(name: str) -> int | None:
    """A number passed back after an action (`?requeued=3`); anything else is ignored."""
    value = request.args.get(name, "")
    return int(value) if value.isdigit() else None


def _nav() -> dict[str, int]:
    return totals(state().ledger)


def _sink_names() -> list[str]:
    current = state()
    seen = {sink for sink, _ in current.ledger.deliveries.counts()}
    return sorted(set(current.settings.sinks) | seen)


def overview() -> str:
    current = state()
    health = sink_health(current.ledger, current.settings, current.capabilities)
    return render_template("dashboard/overview.html", title="Overview", nav=_nav(), active="overview", **health)


def events() -> str:
    current = state()
    q = request.args.get("q", "").strip()[:200]
    status = request.args.get("status", "")
    status = status if status in STATUS_ORDER else ""
    sink = request.args.get("sink", "")
    sinks = _sink_names()
    sink = sink if sink in sinks else ""
    page = queries.search_events(current.ledger, q=q, status=status or None, sink=sink or None, page=_page())
    return render_template(
        "dashboard/events.html",
        title="Events",
        nav=_nav(),
        active="events",
        page=page,
        q=q,
        status=status,
        sink=sink,
        statuses=STATUS_ORDER,
        sinks=sinks,
    )


def event() -> tuple[str, int] | str:
    """`/event?id=…`: the id percent-encoded in the query, where any id survives (in a path, a browser resolves
    `..` and `.` away and a `%0A` or `/` does not route back to the same id); the links use this one."""
    return _event_page(request.args.get("id", ""))


def event_at_path(event_id: str) -> tuple[str, int] | str:
    """`/events/<id>`: the older address, kept so links already shared still open (for the ids a path carries)."""
    return _event_page(event_id)


def _event_page(event_id: str) -> tuple[str, int] | str:
    current = state()
    detail = event_detail(current.ledger, current.settings, event_id)
    if detail is None:
        return render_template(
            "dashboard/error.html", title="No such event", nav=_nav(), message=f"No event with id {event_id} is stored."
        ), 404
    return render_template(
        "dashboard/event.html",
        title=f"Event {event_id}",
        nav=_nav(),
        active="events",
        event=detail,
        requeued=_count("requeued"),
        added=_count("added"),
        sinks=current.settings.enabled_sinks(),
    )


def dead() -> str:
    current = state()
    status = "held" if request.args.get("status") == "held" else "dead"
    sinks = _sink_names()
    sink = request.args.get("sink", "")
    sink = sink if sink in sinks else ""
    page = queries.failed_deliveries(current.ledger, status=status, sink=sink or None, page=_page())
    for row in page.rows:
        last = row.get("last_attempt") or {}
        row["reason"] = delivery_reason(
            status=row["status"],
            message=row.get("dead_reason") or row.get("last_error"),
            error_kind=last.get("error_kind"),
            crm_code=last.get("crm_code"),
            status_code=last.get("status_code"),
            sink=row.get("sink"),
        )
    return render_template(
        "dashboard/dead.html",
        title="Dead letters" if status == "dead" else "Held for review",
        nav=_nav(),
        active="dead",
        page=page,
        status=status,
        sink=sink,
        sinks=sinks,
        requeued=_count("requeued"),
        purged=queries.purged_failed(current.ledger, status=status, sink=sink or None),
    )


def quarantine() -> str:
    current = state()
    include_replayed = request.args.get("all") == "1"
    page = queries.list_quarantine(current.ledger, include_replayed=include_replayed, page=_page())
    for row in page.rows:
        row["reason"] = quarantine_reason(row["code"], row["detail"])
        row["errors_list"] = _errors(row.get("errors"))
    return render_template(
        "dashboard/quarantine.html",
        title="Quarantine",
        nav=_nav(),
        active="quarantine",
        page=page,
        include_replayed=include_replayed,
        replayed=_count("replayed"),
        accepted=_count("accepted"),
    )


def _errors(raw: Any) -> list[dict[str, str]]:
    try:
        found = json.loads(raw) if isinstance(raw, str) else (raw or [])
    except ValueError:
        return []
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


def quarantined(quarantine_id: int) -> tuple[str, int] | str:
    current = state()
    report = quarantined_report(current.ledger, quarantine_id)
    if report is None:
        return render_template(
            "dashboard/error.html",
            title="Not in quarantine",
            nav=_nav(),
            message=f"No quarantined body with id {quarantine_id}.",
        ), 404
    report["reason"] = quarantine_reason(report["code"], report["detail"])
    return render_template(
        "dashboard/quarantined.html",
        title=f"Quarantined body {quarantine_id}",
        nav=_nav(),
        active="quarantine",
        item=report,
        replayed=_count("replayed"),
        accepted=_count("accepted"),
    )


def preview() -> str:
    """Paste a payload, see each sink's plan; nothing is stored or sent."""
    current = state()
    settings = current.settings
    choices = settings.enabled_sinks() or list(KNOWN)
    body = json.dumps(
        sample_payload(
            123,
            end_reason="schedule_call_back",
            question_fields={"callback_time": "tomorrow 3pm", "case_number": "8057"},
        ),
        indent=2,
    )
    chosen, call_time = "", ""
    plans: list[dict[str, str]] = []
    error: str | None = None
    if request.method == "POST":
        body = request.form.get("body", "")
        chosen = request.form.get("sink", "")
        chosen = chosen if chosen in choices else ""
        call_time = request.form.get("call_time", "").strip()
        plans, error = _plans(body, chosen, call_time)
    return render_template(
        "dashboard/preview.html",
        title="Mapping preview",
        nav=_nav(),
        active="preview",
        body=body,
        sinks=choices,
        chosen=chosen,
        call_time=call_time,
        plans=plans,
        error=error,
        posted=request.method == "POST",
    )


def _plans(body: str, sink: str, call_time: str) -> tuple[list[dict[str, str]], str | None]:
    current = state()
    limit = current.settings.receiver.max_body_bytes
    raw = body.encode("utf-8", "surrogateescape")
    if len(raw) > limit:
        return [], f"The payload is larger than receiver.max_body_bytes ({limit} bytes); 2X would get a 413."
    when: datetime | None = None
    if call_time:
        try:
            when = datetime.fromisoformat(call_time)
        except ValueError:
            return [], f"The call time {call_time!r} is not an ISO date-time such as 2026-11-26T15:04."
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    try:
        plans = preview_plans(
            raw, settings=current.settings, sinks=[sink] if sink else [], mapping_file=None, call_time=when
        )
    except ConnectorError as exc:
        return [], str(exc)
    return [
        {"sink": p.sink, "crm": p.crm, "text": render_text(p), "json": p.model_dump_json(indent=2)} for p in plans
    ], None
