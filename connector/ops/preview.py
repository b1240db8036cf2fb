"""`connector preview`: the plan a payload would cause, for sales ops to check by eye. Sends nothing."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

from connector.config import Settings
from connector.default_mappings import KNOWN, default_mapping_path
from connector.errors import ConfigError, ConfigProblem, ConnectorError, PayloadError
from connector.mapping.loader import LoadedMapping, load_mapping
from connector.mapping.planner import plan_event
from connector.mapping.sinks import mapping_path
from connector.plan import (
    CloseCallbacks,
    CreateActivity,
    CreateTask,
    HoldForReview,
    MatchById,
    Plan,
    ResolveContact,
    UpdateContact,
)
from connector.receiver.ingest import parse_body


def preview_plans(
    body: bytes,
    *,
    settings: Settings | None,
    sinks: list[str],
    mapping_file: object | None,
    call_time: datetime | None,
) -> list[Plan]:
    """Plans for each chosen sink; without a config, the default HubSpot and Salesforce mappings."""
    region = settings.phone.default_region if settings else "US"
    try:
        _, event = parse_body(body, default_region=region)
    except PayloadError as exc:
        details = "".join(f"\n  {e['path']}: {e['message']}" for e in exc.errors)
        raise ConnectorError(
            f"the payload would be refused with {exc.status} {exc.code}: {exc.detail}{details}"
        ) from exc
    when = call_time or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return [
        plan_event(event, mapping, sink=name, call_time=when)
        for name, mapping in _targets(settings, sinks, mapping_file)
    ]


def _targets(
    settings: Settings | None, sinks: list[str], mapping_file: object | None
) -> list[tuple[str, LoadedMapping]]:
    if mapping_file is not None:
        return [(sinks[0] if sinks else "preview", load_mapping(str(mapping_file)))]
    configured = settings.sinks if settings else {}
    names = sinks or (settings.enabled_sinks() if settings and settings.enabled_sinks() else list(KNOWN))
    targets = []
    for name in names:
        if settings and name in configured:
            targets.append((name, load_mapping(mapping_path(settings, name))))
        elif name in KNOWN:
            targets.append((name, load_mapping(default_mapping_path(name))))
        else:
            known = sorted(set(configured) | set(KNOWN))
            raise ConfigError("--sink", [ConfigProblem(name, f"no such sink; known: {', '.join(known)}")])
    return targets


def render_text(plan: Plan) -> str:
    """A readable summary of one plan."""
    outcome = plan.outcome
    lines = [
        f"Event {plan.event_id} -> {plan.sink} ({plan.crm}, mapping {plan.mapping})",
        f"  Outcome: {outcome.bundle} (matched by {outcome.matched_by}; rank {outcome.rank})"
        + (f"; also: {', '.join(outcome.also)}" if outcome.also else ""),
        f"  Do-not-call: {'YES' if plan.do_not_call else 'no'}",
    ]
    for action in plan.actions:
        lines += _describe(action)
    lines += [f"  Warning: {w}" for w in plan.warnings]
    return "\n".join(lines)


def _describe(action: object) -> list[str]:
    if isinstance(action, ResolveContact):
        ways = [
            f"{m.object} id {m.id} (from {m.source})"
            if isinstance(m, MatchById)
            else f"{' or '.join(m.objects)} with {m.e164} in {', '.join(m.fields)}"
            for m in action.match
        ]
        lines = ["  Find contact: " + (" else ".join(ways) if ways else "(no way to match)")]
        if action.on_no_match == "create":
            lines.append(f"    not found: create {action.create_object} " + _props(action.create_properties))
        else:
            lines.append("    not found: skip this event")
        lines.append(f"    several found: {action.on_multiple}")
        return lines
    if isinstance(action, CreateActivity):
        return [f"  Log the call as {action.object} (key {action.idempotency_key}):"] + _prop_lines(action.properties)
    if isinstance(action, UpdateContact):
        return ["  Update the contact:"] + [
            f"    {f.property} = {_short(f.value)}   [{f.rule}, rank {f.rank}"
            + (f", only on {'/'.join(f.objects)}" if f.objects else "")
            + (
                f", left out if the contact is do-not-call ({', '.join(action.unless_do_not_call)} true)"
                if f.property in action.withheld_if_do_not_call
                else ""
            )
            + "]"
            for f in action.fields
        ]
    if isinstance(action, CreateTask):
        guard = (
            [
                f"    not created if the contact is do-not-call ({', '.join(action.unless_do_not_call)} true "
                "in the connector's records or in the CRM)"
            ]
            if action.unless_do_not_call
            else []
        )
        return (
            [f"  Create {action.object} due {action.due.isoformat()} (lead-local date {action.due_local_date}):"]
            + guard
            + _prop_lines(action.properties)
        )
    if isinstance(action, CloseCallbacks):
        how = ", ".join(f"{k} = {_short(v)}" for k, v in action.set_properties.items())
        if action.subject_property and action.subject_prefix:
            how += f", {action.subject_property} prefixed {action.subject_prefix!r}"
        return [
            f"  Close the contact's open callback {action.object} the connector created "
            f"({action.idempotency_property} {action.key_prefix}…{action.key_marker}…) as {action.close_as}: {how}"
        ]
    if isinstance(action, HoldForReview):
        return [f"  HOLD for review: {action.reason}"]
    return [f"  {action!r}"]


def _prop_lines(properties: dict[str, object]) -> list[str]:
    lines: list[str] = []
    for name, value in properties.items():
        lines.append(f"    {name} = {_short(value)}")
        if isinstance(value, str) and len(value) > NOTE_PREVIEW and ("\n" in value or value.startswith("<")):
            lines += _note_lines(value)
    return lines


NOTE_PREVIEW = 100
NOTE_LINES = 8
_HTML_BREAK = re.compile(r"</p>|</li>|<br\s*/?>|<ul>|</ul>", re.IGNORECASE)
_HTML_TAG = re.compile(r"<[^>]+>")


def _note_lines(value: str) -> list[str]:
    """The start of a long note (answers block, transcript) as readable lines; HTML shown as text."""
    if value.startswith("<"):
        value = html.unescape(_HTML_TAG.sub("", _HTML_BREAK.sub("\n", value.replace("<li>", "- "))))
    lines = [line for line in value.splitlines() if line.strip()]
    shown = [f"      | {_short(line)}" for line in lines[:NOTE_LINES]]
    return shown + ([f"      | … ({len(lines) - NOTE_LINES} more lines)"] if len(lines) > NOTE_LINES else [])


def _props(properties: dict[str, object]) -> str:
    return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in properties.items()) + "}"


def _short(value: object, limit: int = 100) -> str:
    text = repr(value) if not isinstance(value, str) else value.replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"
