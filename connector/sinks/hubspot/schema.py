"""HubSpot property definitions, cached per sink, and property values fitted to them (see ``_fit``).

Limits, with their evidence:
- Text: 65,536 characters for single-line and multi-line text set through the CRM ("Property field types in
  HubSpot", https://knowledge.hubspot.com/contacts/property-field-types-in-hubspot). Applied to every ``string``
  property of field type text, textarea or html (``hs_call_body``, ``hs_task_body``); that html bodies share the
  limit is UNVERIFIED. Phone numbers and enumeration options are never cut (a cut one is a wrong value).
- Numbers: HubSpot documents no range for ``number`` properties. Values are clamped to ±(2**53 - 1), the largest
  integer a double (and HubSpot's JavaScript UI) holds exactly — a conservative choice, UNVERIFIED; the emulator
  refuses larger values the same way.

Why lazily, and only when needed: reading the definitions costs one request per object type, and an ordinary event
has no value near a limit. So values are first checked against the limits any property could have; the
definitions are read (once per object type per sink lifetime) only when a value exceeds one, to learn whether that
property is text (cut), a number (clamp) or neither (send as is). ``forget`` drops a cached type after HubSpot
refused a property the cache may have had wrong (the schema-drift handling calls it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from connector.sinks.fit import Fitted, Limit, as_decimal, fit_values

MAX_TEXT = 65_536
MAX_NUMBER = Decimal(2**53 - 1)
_CUT_FIELD_TYPES = frozenset({"text", "textarea", "html"})


def property_limit(definition: Any) -> Limit | None:
    """What one property accepts (a properties-API ``Property`` or its dict), or None when nothing is fitted."""
    get = definition.get if isinstance(definition, dict) else lambda key: getattr(definition, key, None)
    kind = get("type")
    field_type = get("fieldType") if isinstance(definition, dict) else get("field_type")
    if kind == "string" and field_type in _CUT_FIELD_TYPES:
        return Limit(max_length=MAX_TEXT)
    if kind == "number":
        return Limit(maximum=MAX_NUMBER)
    return None


def may_exceed(values: dict[str, str]) -> bool:
    """Whether any value is beyond what some property accepts (so the definitions are worth reading)."""
    for value in values.values():
        if len(value) > MAX_TEXT:
            return True
        number = as_decimal(value) if len(value) > 15 or "e" in value.lower() else None
        if number is not None and abs(number) > MAX_NUMBER:
            return True
    return False


class PropertySchema:
    """Property name → limit, per object type, read through the properties API at first need."""

    def __init__(self, read: Callable[[str], list[Any]]) -> None:
        self._read = read
        """``object_type`` → its property definitions (``HubSpotApi.properties``)."""
        self._limits: dict[str, dict[str, Limit]] = {}
        self._lock = threading.Lock()

    def limits(self, object_type: str) -> dict[str, Limit]:
        with self._lock:
            cached = self._limits.get(object_type)
        if cached is not None:
            return cached
        definitions = self._read(object_type)
        limits = {str(_name(d)).lower(): limit for d in definitions if (limit := property_limit(d)) is not None}
        with self._lock:
            self._limits[object_type] = limits
        return limits

    def known(self, object_type: str) -> bool:
        return object_type in self._limits

    def forget(self, object_type: str | None = None) -> None:
        """Drop one object type's definitions (all when None); the next value near a limit reads them again."""
        with self._lock:
            if object_type is None:
                self._limits.clear()
            else:
                self._limits.pop(object_type, None)

    def refresh(self, object_types: Iterable[str]) -> None:
        """Read these object types' definitions again now."""
        for object_type in object_types:
            self.forget(object_type)
            self.limits(object_type)

    def fit(self, object_type: str, values: dict[str, str], *, keep: Iterable[str] = ()) -> Fitted:
        """``values`` fitted to their properties (``keep``: never touched, e.g. the idempotency key)."""
        if not may_exceed(values):
            return Fitted(dict(values))
        return fit_values(values, self.limits(object_type), keep=frozenset(k.lower() for k in keep))


def _name(definition: Any) -> Any:
    return definition.get("name") if isinstance(definition, dict) else getattr(definition, "name", None)
