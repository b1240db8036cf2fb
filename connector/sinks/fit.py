"""Every value fits its field: text cut to the field's length, numbers clamped to its range, before a CRM sees it.

Why in the sinks and not only in the mapping: the mapping's ``limits`` know the fields someone wrote down; the CRM's
own schema (Salesforce describe, HubSpot properties API) knows every field, custom ones included. A 68-character
first name on a 40-character ``FirstName`` must cost a few characters, not the whole call's audit trail
(STRING_TOO_LONG dead-letters the event, so no call Task is logged at all).

What is never cut: identifiers whose cut form would be a different, wrong value (emails, phones, URLs, ids,
picklist options) and keys the caller names in ``keep`` (an idempotency key); those go as they are, so the CRM's
own error names the field. Which fields were cut or clamped — names only, never values — goes to the audit trail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.sinks.drift import SKIPPED

MARKER = "…"
"""Appended to cut text, inside the limit: a reader sees the value was cut."""


@dataclass(frozen=True)
class Limit:
    """What one field accepts: a maximum text length, or a numeric range."""

    max_length: int | None = None
    maximum: Decimal | None = None
    """Largest magnitude (the range is symmetric: -maximum … maximum)."""
    integer: bool = False


@dataclass
class Fitted:
    """The values to send, and the names of the fields that had to change."""

    values: dict[str, Any]
    truncated: list[str] = field(default_factory=list)
    clamped: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)
    """Field → code, for values left out because they cannot be of the field's type (a date field given "next
    Tuesday"): recorded like the fields a CRM refuses (``skipped_fields``), so the rest of the write goes through."""

    def detail(self) -> dict[str, Any]:
        """For ``ActionResult.detail``: field names (and codes) only, never values."""
        found: dict[str, Any] = {
            k: sorted(v) for k, v in (("truncated", self.truncated), ("clamped", self.clamped)) if v
        }
        if self.left_out:
            found[SKIPPED] = dict(sorted(self.left_out.items()))
        return found


def cut_text(text: str, max_length: int) -> str:
    """``text`` within ``max_length`` characters, ending in the marker when it was cut."""
    if len(text) <= max_length:
        return text
    if max_length <= len(MARKER):
        return text[:max_length]
    return text[: max_length - len(MARKER)].rstrip() + MARKER


def as_decimal(value: Any) -> Decimal | None:
    """A finite number from an int, float or numeric text (any number of digits), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def clamp_number(value: Any, limit: Limit) -> tuple[Any, bool]:
    """``value`` clamped to the limit's range, in the value's own JSON kind (text stays text); (value, changed)."""
    number = as_decimal(value)
    if number is None or limit.maximum is None or abs(number) <= limit.maximum:
        return value, False
    bound = limit.maximum if number > 0 else -limit.maximum
    if limit.integer or bound == bound.to_integral_value():
        return (str(int(bound)) if isinstance(value, str) else int(bound)), True
    nearest = _float_within(bound)  # JSON carries a double: the bound itself may round past the range
    return (repr(nearest) if isinstance(value, str) else nearest), True


def _float_within(bound: Decimal) -> float:
    """The double closest to ``bound`` that does not exceed it in magnitude."""
    nearest = float(bound)
    if abs(Decimal(nearest)) > abs(bound):
        nearest = math.nextafter(nearest, 0.0)
    return nearest


def fit_values(values: dict[str, Any], limits: dict[str, Limit], *, keep: frozenset[str] = frozenset()) -> Fitted:
    """``values`` fitted to ``limits`` (keyed by lower-case field name); fields in ``keep`` (lower-case) untouched."""
    fitted = Fitted(dict(values))
    for name, value in values.items():
        limit = limits.get(name.lower())
        if limit is None or name.lower() in keep or value is None:
            continue
        if limit.max_length is not None and isinstance(value, str) and len(value) > limit.max_length:
            fitted.values[name] = cut_text(value, limit.max_length)
            fitted.truncated.append(name)
        elif limit.maximum is not None:
            clamped, changed = clamp_number(value, limit)
            if changed:
                fitted.values[name] = clamped
                fitted.clamped.append(name)
    return fitted
