"""Field types from ``describe``, and values coerced to them so Salesforce's strict JSON deserializer accepts them.

Why: mapping templates render to text unless a value is exactly one expression, so ``CallDurationInSeconds`` may
arrive as ``"33"`` and a checkbox as ``"true"``; Salesforce REST refuses a string for an int or boolean field
(JSON_PARSER_ERROR) and ``""`` for a date or datetime. The sink looks the field types up once per object per sink
lifetime — the objects it commonly needs in ONE Composite request, i.e. one API call — and converts only what is
unambiguous. A value that still cannot be of its field's type (a question's "next Tuesday" for a date field) is
left out and named in the audit trail (``skipped_fields``, code WRONG_TYPE): Salesforce would refuse the whole
request without naming the field, and the Composite's other writes — the call's Task, the do-not-call — with it.

The same describe gives each field's limits, and ``fit_body`` fits every value to them before coercion (see
``_fit``): text is cut to ``length`` (STRING_TOO_LONG otherwise), ``int`` fields clamped to ``digits`` digits and to
32 bits, ``double``/``currency``/``percent`` to ``precision - scale`` integer digits (NUMBER_OUTSIDE_VALID_RANGE
otherwise; https://dfc-org-production.force.com/forums/ForumsMain?id=9060G000000BfsuQAC explains the range as
precision - scale digits left of the point). ``forget``/``refresh`` drop a cached describe when the org changed;
``outdated`` tells when a value the org refused as too large shows that it did.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from connector.errors import PermanentError, SinkError, TransientError
from connector.sinks.drift import WRONG_TYPE
from connector.sinks.fit import Fitted, Limit, fit_values
from connector.sinks.salesforce.client import SalesforceConnection
from connector.sinks.salesforce.errors import classify, identifier

PREFETCH = ("Task", "Contact", "Lead")
"""Fetched together with the first describe the sink needs: every event touches Task and a Contact or Lead."""
MAX_SUBREQUESTS = 25
_NUMBER = frozenset({"double", "currency", "percent"})
_TEMPORAL = frozenset({"date", "datetime", "time"})
_TRUE = frozenset({"true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off"})
CUT_TYPES = frozenset({"string", "textarea", "combobox", "encryptedstring"})
"""Free text: cut to ``length``. Emails, phones, URLs, ids and picklists are never cut (a cut one is wrong data)."""
INT32_MAX = 2**31 - 1


def field_limit(described: dict[str, Any]) -> Limit | None:
    """What one describe ``fields`` entry accepts, or None when nothing needs fitting."""
    kind = str(described.get("type"))
    if kind in CUT_TYPES and int(described.get("length") or 0) > 0:
        return Limit(max_length=int(described["length"]))
    if kind == "int":
        digits = int(described.get("digits") or 0)
        return Limit(maximum=Decimal(min(10**digits - 1 if digits else INT32_MAX, INT32_MAX)), integer=True)
    if kind in _NUMBER:
        precision, scale = int(described.get("precision") or 0), int(described.get("scale") or 0)
        if precision <= 0:
            return None
        return Limit(maximum=Decimal(10) ** (precision - scale) - Decimal(10) ** -scale, integer=scale == 0)
    return None


def coerce(kind: str | None, value: Any) -> Any:
    """``value`` as the JSON type a field of describe type ``kind`` takes (unchanged when unsure)."""
    if kind is None or value is None:
        return value
    text = value.strip() if isinstance(value, str) else None
    if text == "" and (kind in _TEMPORAL or kind in _NUMBER or kind in ("int", "boolean")):
        return None  # Salesforce refuses "" for these types; null clears the field
    if kind == "boolean":
        if isinstance(value, str) and text is not None and text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value in (0, 1):
            return bool(value)
        return value
    if kind == "int" and not isinstance(value, bool):
        number = _number(text) if text is not None else value
        if isinstance(number, float) and number.is_integer():
            return int(number)
        return number if isinstance(number, int) else value
    if kind in _NUMBER and text is not None:
        number = _number(text)
        return value if number is None else number
    return value


def of_type(kind: str | None, value: Any) -> bool:
    """Whether Salesforce's JSON deserializer takes ``value`` (already coerced) for a field of describe type
    ``kind``. It refuses the whole request with JSON_PARSER_ERROR otherwise, naming no field, and a Composite
    request rolls back with it: the call's Task, the do-not-call. Unknown types and null pass."""
    if kind is None or value is None:
        return True
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in _NUMBER:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "date":
        return isinstance(value, str) and _iso_date(value)
    if kind == "datetime":
        return isinstance(value, str) and _iso_datetime(value)
    return True


_DATE_FORM = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME_FORM = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})")
"""The forms the REST API documents for date and dateTime values: ``yyyy-MM-dd`` (no offset), and
``yyyy-MM-ddTHH:mm:ss.SSS+/-HH:mm`` or ``…Z``, milliseconds optional ("Valid Date and DateTime Formats",
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/intro_valid_date_formats.htm)."""


def _iso_date(text: str) -> bool:
    """``YYYY-MM-DD``, a real day."""
    if not _DATE_FORM.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _iso_datetime(text: str) -> bool:
    """A date and time with seconds and a zone (what templates' ``iso_utc`` gives), a real instant."""
    if not _DATETIME_FORM.fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text if len(text) < 5 or text[-5] not in "+-" else f"{text[:-2]}:{text[-2:]}")
    except ValueError:
        return False
    return True


def _number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def describe_objects(connection: SalesforceConnection, names: list[str]) -> tuple[dict[str, Any], dict[str, SinkError]]:
    """``sobjects/{T}/describe`` of up to 25 objects in ONE API call: (bodies by name, failures by name).

    A failure of the whole request (outage, expired credentials) raises; a failure of one object (it does not
    exist, or this user cannot see it) is returned for that object, classified like any Salesforce error.
    """
    if len(names) == 1:
        name = identifier(names[0], "object")
        body = connection.call(lambda sf: sf.restful(f"sobjects/{name}/describe"), where=f"describe {name}")
        return {name: body}, {}
    base = connection.base_path()
    payload = {
        "allOrNone": False,
        "compositeRequest": [
            {
                "method": "GET",
                "url": f"{base}/sobjects/{identifier(name, 'object')}/describe",
                "referenceId": f"describe{i}",
            }
            for i, name in enumerate(names)
        ],
    }
    answer = connection.call(
        lambda sf: sf.restful("composite", method="POST", json=payload), where="describe (composite)"
    )
    described: dict[str, Any] = {}
    failures: dict[str, SinkError] = {}
    for name, sub in zip(names, (answer or {}).get("compositeResponse", []), strict=False):
        status = int(sub.get("httpStatusCode") or 0)
        if status < 300:
            described[name] = sub.get("body")
        else:
            failures[name] = classify(status, sub.get("body"), where=f"describe {name}")
    return described, failures


class FieldTypes:
    """Field name → describe type and limits, per sObject, fetched once per sink lifetime."""

    def __init__(self, connection: SalesforceConnection) -> None:
        self._connection = connection
        self._types: dict[str, dict[str, str] | None] = {}
        """Lower-case object name → {lower-case field name: type}; None: describe failed for a prefetched extra."""
        self._limits: dict[str, dict[str, Limit]] = {}
        """Lower-case object name → {lower-case field name: what it accepts}."""
        self._lock = threading.Lock()

    def forget(self, sobject: str | None = None, fields: Iterable[str] = ()) -> None:
        """Drop an object's cached describe (every object's when None), so the next ``ensure`` describes it afresh:
        the org changed (a field added, lengthened or removed: INVALID_FIELD). With ``fields`` (the ones the org
        refused as missing), only while the cached describe still lists one of them: it may be fresh already."""
        with self._lock:
            for name in [sobject.lower()] if sobject else list(self._types):
                known = self._types.get(name)
                if known is not None and fields and not any(f.lower() in known for f in fields):
                    continue  # already described since the field went away
                self._types.pop(name, None)
                self._limits.pop(name, None)

    def refresh(self, objects: Iterable[str]) -> None:
        """Describe these objects again now (one API call)."""
        names = list(objects)
        for name in names:
            self.forget(name)
        self.ensure(names)

    def outdated(self, sobject: str, refused: dict[str, Any]) -> bool:
        """Whether the cached describe cannot be why the org refused these sent values as too large: it does not
        list one of the fields, or its limit for one accepts the value. The field was then created, or shortened,
        since the object was described (a running sink describes once), and a fresh describe will fit it."""
        with self._lock:
            if sobject.lower() not in self._types:
                return True  # forgotten since: the next ``ensure`` describes it afresh
            types, limits = self._types[sobject.lower()], self._limits.get(sobject.lower()) or {}
        if types is None:
            return False  # its describe failed: nothing was fitted from it, and describing again fails too
        for name, value in refused.items():
            if name.lower() not in types:
                return True
            limit = limits.get(name.lower())
            if limit is not None and not fit_values({name: value}, {name.lower(): limit}).detail():
                return True
        return False

    def limits(self, sobject: str) -> dict[str, Limit]:
        return self._limits.get(sobject.lower()) or {}

    def known(self, sobject: str) -> bool:
        return sobject.lower() in self._types

    def ensure(self, objects: Iterable[str]) -> None:
        """Describe every object in ``objects`` not yet known (plus the usual ones), in one API call."""
        wanted = [identifier(o, "object") for o in dict.fromkeys(objects) if o.lower() not in self._types]
        if not wanted:
            return
        extra = [o for o in PREFETCH if o.lower() not in self._types and o.lower() not in map(str.lower, wanted)]
        batch = (wanted + extra)[:MAX_SUBREQUESTS]
        described, failures = describe_objects(self._connection, batch)
        with self._lock:
            for name, body in described.items():
                fields = body.get("fields") if isinstance(body, dict) else None
                self._types[name.lower()] = {str(f["name"]).lower(): str(f["type"]) for f in fields or []}
                self._limits[name.lower()] = {
                    str(f["name"]).lower(): limit for f in fields or [] if (limit := field_limit(f)) is not None
                }
            for name in extra:
                if isinstance(failures.get(name), PermanentError):
                    self._types.setdefault(name.lower(), None)  # not ours to fail on; send its values unchanged
        for name in wanted:
            if name in failures:
                raise failures[name]
            if name not in described:
                raise TransientError(f"Salesforce answered describe {name} without its result")

    def coerce_body(self, sobject: str, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` converted to their fields' types (unknown fields untouched: Salesforce's error names them)."""
        types = self._types.get(sobject.lower()) or {}
        return {name: coerce(types.get(name.lower()), value) for name, value in values.items()}

    def fit_body(self, sobject: str, values: dict[str, Any], *, keep: Iterable[str] = ()) -> Fitted:
        """``values`` fitted to their fields' limits, then coerced to their types; a value that cannot be of its
        field's type is left out (``Fitted.left_out``). ``keep``: never cut nor left out, e.g. the idempotency key,
        whose cut form would no longer find the record."""
        kept = frozenset(k.lower() for k in keep)
        fitted = fit_values(values, self.limits(sobject), keep=kept)
        coerced = self.coerce_body(sobject, fitted.values)
        types = self._types.get(sobject.lower()) or {}
        fitted.left_out = {
            name: WRONG_TYPE
            for name, value in coerced.items()
            if name.lower() not in kept and not of_type(types.get(name.lower()), value)
        }
        fitted.values = {name: value for name, value in coerced.items() if name not in fitted.left_out}
        return fitted
