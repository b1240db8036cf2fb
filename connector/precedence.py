"""Decides whether a planned contact property may overwrite what an earlier call wrote.

The plan says what a call *wants* to write and under which rule; whether it *may* depends on
what the connector wrote to that property before, which the delivery engine keeps per contact
and sink. Keeping this decision a pure function makes "no call ever moves a field backwards"
checkable without a CRM.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from connector.plan import FieldUpdate


def contact_ref_of(object_name: str | None, crm_id: str | None) -> str:
    """How the engine keeps a resolved contact's written fields apart: ``<object>:<crm id>``."""
    return f"{object_name}:{crm_id}"


@dataclass(frozen=True)
class WrittenField:
    """What the connector last wrote to one property of one contact."""

    value: object
    rank: int
    call_time: datetime
    event_id: str


def may_write(update: FieldUpdate, previous: WrittenField | None) -> bool:
    """True when `update` may be written over `previous` (None: never written by the connector).

    Rules:
        sticky_true: only true is ever written (do-not-call); writing it again is harmless.
        always: always.
        newest_call: only a call newer than the one that wrote the current value.
        ranked: a higher rank always wins; equal rank, the newer call; a lower rank never.
    """
    if update.rule == "sticky_true":
        return update.value is True
    if previous is None or update.rule == "always":
        return True
    if update.rule == "newest_call":
        return update.call_time > previous.call_time
    if update.rank != previous.rank:
        return update.rank > previous.rank
    return update.call_time > previous.call_time
