"""Whether an outcome's `when` holds: one definition shared by planning and by `validate`'s checks."""

from __future__ import annotations

from typing import Any

from connector.mapping.schema import WhenSpec
from connector.payload import CallEvent


def facts_of(event: CallEvent) -> dict[str, Any]:
    """The few facts of a call that `when` conditions can test."""
    return {
        "end_reason": event.call.end_reason.value,
        "failure_reason": event.call.failure_reason.value,
        "answered": event.call.answered,
        "message_left": event.message_left,
        "workflow_end": event.workflow.end,
    }


def holds(when: WhenSpec | None, facts: dict[str, Any]) -> bool:
    """True when every condition given in `when` holds (an absent `when` always holds).

    `failure_reason: none` requires that there is none; `any` accepts any failure. A boolean
    condition treats an unknown value (None) as false.
    """
    if when is None:
        return True
    if when.end_reason is not None and facts["end_reason"] not in when.end_reason:
        return False
    if when.failure_reason is not None:
        failure = facts["failure_reason"]
        allowed = set(when.failure_reason)
        matched = failure in allowed or "any" in allowed if failure is not None else "none" in allowed
        if not matched:
            return False
    return all(
        getattr(when, name) is None or bool(facts[name]) == getattr(when, name)
        for name in ("answered", "message_left", "workflow_end")
    )
