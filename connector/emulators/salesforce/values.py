"""Field values: JSON → typed Python (as Salesforce's deserializer does) and typed Python → REST JSON.

REST is a strict JSON endpoint: a string sent for a boolean or number field is refused with JSON_PARSER_ERROR
"Cannot deserialize instance of boolean from VALUE_STRING value FALSE or request may be missing a required
field at [line:1, column:N]" (observed: integrations that sent CSV-style strings to REST/composite). Dates must
be ``YYYY-MM-DD`` (a datetime string for a date field is refused, observed: "...instance of date from
VALUE_STRING value 2015-08-25T11:49:53.0113029-07:00"); datetimes ISO-8601 with ``Z`` or ``±hh:mm``
[docs: REST/SOQL "Date Formats and Date Literals": yyyy-MM-ddTHH:mm:ss(.SSS)(Z|+hh:mm|-hh:mm)], plus ``+hhmm``
(the form Salesforce itself emits, which clients round-trip); a space instead of ``T`` (observed) or no zone at
all is refused. ``""`` for a date/datetime/number/boolean is refused too (UNVERIFIED: send null to clear). Text
fields accept JSON numbers/booleans (stringified) and store ``""`` as null, as Salesforce does.

Outgoing, datetimes are rendered the way Salesforce renders them: ``2024-05-01T12:00:00.000+0000``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from connector.emulators.salesforce.errors import json_parser_error
from connector.emulators.salesforce.schema import STRING_TYPES, FieldDef

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATETIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$")
_JACKSON_TYPE = {"boolean": "boolean", "int": "int", "double": "double", "date": "date", "datetime": "datetime"}


def parse_date(text: str) -> date | None:
    """A ``YYYY-MM-DD`` calendar date, else None."""
    match = _DATE.match(text)
    if not match:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def parse_datetime(text: str) -> datetime | None:
    """An ISO-8601 instant with ``Z`` or ``±hh:mm`` (seconds required, fraction optional), as aware UTC."""
    match = _DATETIME.match(text)
    if not match:
        return None
    micros = int((match[7] or "0")[:6].ljust(6, "0"))
    zone = match[8]
    try:
        if zone == "Z":
            tz = UTC
        else:
            sign = 1 if zone[0] == "+" else -1
            hours, minutes = int(zone[1:3]), int(zone[-2:])
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        value = datetime(
            int(match[1]), int(match[2]), int(match[3]), int(match[4]), int(match[5]), int(match[6]), micros, tzinfo=tz
        )
    except ValueError:
        return None
    return value.astimezone(UTC)


def render(value: Any) -> Any:
    """A stored value as Salesforce's REST JSON shows it."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"
    if isinstance(value, date):
        return value.isoformat()
    return value


def jackson_token(value: Any) -> tuple[str, str]:
    """Jackson's token name and the text it quotes for a JSON value."""
    if isinstance(value, bool):
        return ("VALUE_TRUE" if value else "VALUE_FALSE"), json.dumps(value)
    if isinstance(value, int):
        return "VALUE_NUMBER_INT", str(value)
    if isinstance(value, float):
        return "VALUE_NUMBER_FLOAT", repr(value)
    if isinstance(value, dict):
        return "START_OBJECT", "{"
    if isinstance(value, list):
        return "START_ARRAY", "["
    return "VALUE_STRING", str(value)


def locate(raw: str | None, key: str) -> tuple[int, int]:
    """1-based line and column just after ``key``'s value in the raw JSON (Jackson's error location), best effort."""
    if not raw:
        return 1, 1
    match = re.search(r'"' + re.escape(key) + r'"\s*:\s*', raw)
    if not match:
        return 1, 1
    decoder = json.JSONDecoder()
    try:
        _, end = decoder.raw_decode(raw, match.end())
    except ValueError:
        end = match.end()
    line = raw.count("\n", 0, end) + 1
    column = end - (raw.rfind("\n", 0, end) + 1) + 1
    return line, column


def deserialize_error(kind: str, value: Any, raw: str | None, key: str) -> Exception:
    """JSON_PARSER_ERROR in the observed Jackson wording."""
    token, text = jackson_token(value)
    line, column = locate(raw, key)
    return json_parser_error(
        f"Cannot deserialize instance of {kind} from {token} value {text} or request may be "
        f"missing a required field at [line:{line}, column:{column}]"
    )


def coerce(definition: FieldDef, value: Any, raw: str | None, key: str) -> Any:
    """The typed value Salesforce would store for this JSON value, or raise JSON_PARSER_ERROR."""
    if value is None:
        return None
    kind = definition.type
    if kind in STRING_TYPES or kind in ("id", "reference"):
        if isinstance(value, (dict, list)):
            raise deserialize_error("string", value, raw, key)
        if isinstance(value, bool):
            value = "true" if value else "false"
        text = value if isinstance(value, str) else str(value)
        return text if text != "" else None
    if kind == "boolean":
        if not isinstance(value, bool):
            raise deserialize_error("boolean", value, raw, key)
        return value
    if kind == "int":
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (isinstance(value, float) and not value.is_integer())
        ):
            raise deserialize_error("int", value, raw, key)
        return int(value)
    if kind == "double":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise deserialize_error("double", value, raw, key)
        return float(value)
    if kind == "date":
        parsed = parse_date(value) if isinstance(value, str) else None
        if parsed is None:
            raise deserialize_error("date", value, raw, key)
        return parsed
    if kind == "datetime":
        parsed_dt = parse_datetime(value) if isinstance(value, str) else None
        if parsed_dt is None:
            raise deserialize_error("datetime", value, raw, key)
        return parsed_dt
    raise deserialize_error(_JACKSON_TYPE.get(kind, kind), value, raw, key)  # pragma: no cover - schema is closed
