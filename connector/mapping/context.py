"""What a mapping's templates see for one call: its fields, the outcome, times, the rendered transcript."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

from connector.mapping.answers import render_answers
from connector.mapping.redaction import DEFAULT_RULES, redact
from connector.mapping.schema import BundleSpec, Mapping
from connector.mapping.transcript import render_transcript
from connector.payload import CallEvent


def redaction_rules(spec: Mapping) -> Sequence[Any]:
    """The mapping's redaction rules (`transcript.redaction`): for the transcript and for what the lead said."""
    chosen = spec.transcript.redaction
    return DEFAULT_RULES if chosen == "default" else ([] if chosen == "none" else chosen)


def template_context(
    event: CallEvent, spec: Mapping, bundle: BundleSpec, call_time: datetime, zone: tzinfo
) -> dict[str, Any]:
    """Variables templates see: the event's fields, the outcome, times, the rendered transcript."""
    data = event.model_dump(mode="python")
    transcript = spec.transcript
    rules = redaction_rules(spec)
    rendered = render_transcript(event.transcript, transcript.format, transcript.labels or None, transcript.empty)
    answers = render_answers(event.question_fields, transcript.format, spec.question_fields.heading)
    return {
        **data,
        "event": data,
        "call_time": call_time,
        "call_time_local": call_time.astimezone(zone),
        "tz": zone,
        "transcript_text": redact(rendered, rules) if rules else rendered,
        "answers_text": redact(answers, rules) if rules else answers,
        "outcome": {
            "name": bundle.name,
            "label": bundle.label,
            "rank": bundle.rank,
            "end_reason": event.call.end_reason.value,
            "failure_reason": event.call.failure_reason.value,
        },
        "constants": spec.constants,
        "callback": None,
        "task": None,
    }
