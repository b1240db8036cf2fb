"""One event's audit trail for the event page: `connector.ops.reports.event_status` plus readable extras."""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any

from pydantic import ValidationError

from connector.config import Settings
from connector.dashboard.links import crm_link
from connector.dashboard.reasons import delivery_reason
from connector.ledger import Ledger
from connector.ops.preview import render_text
from connector.ops.reports import event_status
from connector.plan import Plan


def event_detail(ledger: Ledger, settings: Settings, event_id: str) -> dict[str, Any] | None:
    """The event's stored body, normalized form, and each delivery with reason, plan text and CRM links."""
    report = event_status(ledger, event_id)
    if report is None:
        return None
    report["body_pretty"] = _pretty_body(report["body"])
    report["normalized_pretty"] = json.dumps(report["normalized"], indent=2, ensure_ascii=False)
    report["summary"] = _summary(report["normalized"])
    if report["purged_at"] is not None:  # only the documented end reason is left of the call
        reason = report["end_reason"]
        report["summary"]["end_reason"] = {"value": reason, "raw": reason, "known": True} if reason else {}
    for delivery in report["deliveries"]:
        _annotate(delivery, settings)
    return report


def _pretty_body(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


def _summary(normalized: dict[str, Any]) -> dict[str, Any]:
    """The facts an operator looks for first, from the normalized event."""
    call = normalized.get("call") or {}
    record = normalized.get("record") or {}
    phone = record.get("phone") or {}
    zone = record.get("timezone") or {}
    workflow = normalized.get("workflow") or {}
    name = " ".join(p for p in (record.get("first_name"), record.get("last_name")) if p)
    return {
        "end_reason": call.get("end_reason") or {},
        "failure_reason": call.get("failure_reason") or {},
        "answered": call.get("answered"),
        "duration_seconds": call.get("duration_seconds"),
        "direction": call.get("direction"),
        "message_left": normalized.get("message_left"),
        "phone": phone.get("e164") or phone.get("raw"),
        "phone_raw": phone.get("raw"),
        "name": name or None,
        "timezone": zone.get("name") or zone.get("raw"),
        "workflow": workflow,
        "flags": normalized.get("flags") or [],
        "question_fields": normalized.get("question_fields") or {},
        "meta": normalized.get("meta") or {},
        "transcript": normalized.get("transcript") or [],
    }


def _annotate(delivery: dict[str, Any], settings: Settings) -> None:
    """Add the reason in plain words, the plan as text and a link for each CRM id."""
    sink = settings.sinks.get(delivery["sink"])
    attempts = delivery.get("attempts") or []
    last = attempts[-1] if attempts else {}
    message = delivery.get("dead_reason") or delivery.get("last_error")
    delivery["reason"] = None
    if delivery["status"] in ("dead", "held", "retry_scheduled") or (message and delivery["status"] != "succeeded"):
        delivery["reason"] = delivery_reason(
            status=delivery["status"],
            message=message,
            error_kind=last.get("error_kind"),
            crm_code=last.get("crm_code"),
            status_code=last.get("status_code"),
            sink=delivery["sink"],
        )
    for attempt in attempts:
        attempt["reason"] = (
            delivery_reason(
                status=attempt.get("outcome"),
                message=attempt.get("message"),
                error_kind=attempt.get("error_kind"),
                crm_code=attempt.get("crm_code"),
                status_code=attempt.get("status_code"),
                sink=delivery["sink"],
            )
            if attempt.get("error_kind")
            else None
        )
    delivery["plan_text"] = None
    delivery["plan_json"] = None
    mapping_file = (delivery.get("plan") or {}).get("mapping")
    delivery["mapping_file"] = mapping_file
    delivery["mapping_name"] = PurePath(str(mapping_file)).name if mapping_file else None
    if delivery.get("plan"):
        delivery["plan_json"] = json.dumps(delivery["plan"], indent=2, ensure_ascii=False)
        try:
            delivery["plan_text"] = render_text(Plan.model_validate(delivery["plan"]))
        except ValidationError:
            delivery["plan_text"] = None
    for action in delivery.get("actions") or []:
        result = action.get("result") or {}
        action["link"] = (
            crm_link(sink, action["kind"], action["crm_id"], result.get("object")) if action.get("crm_id") else None
        )
        action["result_json"] = json.dumps(result, ensure_ascii=False) if result else ""
