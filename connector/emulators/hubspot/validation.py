"""Property value validation and normalization, as HubSpot's CRM object APIs apply it on create and update.

Every invalid property of one request is reported in one 400 ``VALIDATION_ERROR`` (HubSpot lists them all).
Values are stored and returned as strings: booleans as ``true``/``false``, datetimes as ISO-8601 instants,
dates as ``YYYY-MM-DD``, numbers as given.

Codes and texts, with their evidence:
- ``PROPERTY_DOESNT_EXIST`` ``Property "x" does not exist``: observed (many captured bodies).
- ``INVALID_OPTION`` ``v was not one of the allowed options: [A, B]``: observed (2025-26 bodies; enumeration values
  are case-sensitive, search guide).
- ``INVALID_INTEGER`` ``v was not a valid integer (for owner ID).``: observed for ``hubspot_owner_id``.
- ``INVALID_LONG`` ``v was not a valid long.``: observed for datetime properties given text that is not a date;
  reused for number properties (UNVERIFIED for numbers).
- ``INVALID_DATE`` ``1496643178000 is at 6:12:58.0 UTC, not midnight!``: observed for ``date`` properties.
- ``INVALID_EMAIL`` ``Email address x is invalid``: observed.
- ``LEADING_TRAILING_WHITESPACE``: HubSpot changelog "Enhanced Validations for Non-String Properties" (2025).
- ``READ_ONLY_VALUE`` for calculated properties: seen in secondhand captures; UNVERIFIED wording.
- bool properties given anything but true/false: HubSpot's bool properties carry the options true/false, so this
  emulator answers ``INVALID_OPTION`` (UNVERIFIED; an ``INVALID_BOOLEAN`` code was not found in any capture).
- strings over 65,536 characters ("Property field types in HubSpot": single- and multi-line text set through the
  CRM, https://knowledge.hubspot.com/contacts/property-field-types-in-hubspot): code and text UNVERIFIED.
- numbers beyond ±(2**53 - 1): UNVERIFIED (HubSpot documents no range), answered ``INVALID_LONG``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import phonenumbers

from connector.emulators.hubspot.errors import PropertyIssue, invalid_input, property_values_invalid

MAX_STRING = 65_536
MAX_NUMBER = Decimal(2**53 - 1)
"""Largest number property value accepted: HubSpot documents no range; this emulator refuses what the sink would
clamp (±(2**53 - 1), exact in a double), so a client that fits here fits a JavaScript-based UI too. UNVERIFIED."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLIS = re.compile(r"-?\d{1,15}")
_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:?\d{2})?)?", re.ASCII
)
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_INT32_MAX = 2**31 - 1


def now() -> datetime:
    """The current instant at millisecond precision (HubSpot keeps milliseconds)."""
    value = datetime.now(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def format_instant(value: datetime) -> str:
    """Java ``Instant.toString()`` at millisecond precision, the form HubSpot returns: ``...:05Z`` when the
    milliseconds are zero, else ``...:05.123Z``."""
    value = value.astimezone(UTC)
    millis = value.microsecond // 1000
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}Z" if millis == 0 else f"{base}.{millis:03d}Z"


def epoch_ms(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(milliseconds=1)


def parse_instant(text: str) -> datetime | None:
    """Epoch milliseconds or ISO 8601 (an ISO value without an offset is UTC; a bare date is midnight UTC).

    Epoch *seconds* are read as milliseconds (a 1970 date), as HubSpot does: the classic integration bug.
    """
    try:
        if _MILLIS.fullmatch(text):
            return _EPOCH + timedelta(milliseconds=int(text))
        if not _ISO.fullmatch(text):
            return None
        parsed = datetime.fromisoformat(text.upper().replace(" ", "T"))
    except (ValueError, OverflowError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def to_text(name: str, value: Any) -> str | None:
    """A JSON property value as HubSpot reads it: strings as they are, numbers and booleans as their text, null as
    "clear". Objects and arrays do not fit the input class."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    raise invalid_input(f"Cannot deserialize value of property {name!r}: expected a string")


def _options_list(definition: dict[str, Any]) -> str:
    return "[" + ", ".join(option["value"] for option in definition.get("options", [])) + "]"


def _issue(name: str, value: str, code: str, message: str) -> PropertyIssue:
    return PropertyIssue(name, value, code, message)


def check_value(definition: dict[str, Any], text: str) -> tuple[str | None, PropertyIssue | None]:
    """Normalize one non-empty value for its property, or say why it is invalid."""
    name, type_ = definition["name"], definition["type"]
    if type_ not in ("string", "phone_number") and text != text.strip():
        return None, _issue(
            name, text, "LEADING_TRAILING_WHITESPACE", f'"{text}" includes leading or trailing whitespace.'
        )
    if type_ in ("string", "phone_number"):
        if len(text) > MAX_STRING:
            message = f'Property "{name}" is {len(text)} characters long; the maximum is {MAX_STRING}.'
            return None, _issue(name, text[:100], "MAX_LENGTH_EXCEEDED", message)
        if name == "email" and not _EMAIL.fullmatch(text):
            return None, _issue(name, text, "INVALID_EMAIL", f"Email address {text} is invalid")
        return text, None
    if type_ == "number":
        if not _DECIMAL.fullmatch(text):
            return None, _issue(name, text, "INVALID_LONG", f"{text} was not a valid long.")
        if abs(Decimal(text)) > MAX_NUMBER:  # UNVERIFIED range and text: HubSpot documents none (see MAX_NUMBER)
            return None, _issue(name, text[:100], "INVALID_LONG", f"{text[:100]} was not a valid long.")
        return text, None
    if type_ == "bool":
        if text.lower() not in ("true", "false"):
            return None, _issue(
                name, text, "INVALID_OPTION", f"{text} was not one of the allowed options: [true, false]"
            )
        return text.lower(), None
    if type_ in ("datetime", "date"):
        return _check_time(name, type_, text)
    if type_ == "enumeration":
        if name == "hubspot_owner_id":
            if not text.isdigit() or int(text) > _INT32_MAX:
                return None, _issue(name, text, "INVALID_INTEGER", f"{text} was not a valid integer (for owner ID).")
            return text, None
        if definition.get("externalOptions"):
            return text, None
        allowed = {option["value"] for option in definition.get("options", [])}
        values = text.split(";") if definition.get("fieldType") == "checkbox" else [text]
        for value in values:
            if value not in allowed:
                message = f"{value} was not one of the allowed options: {_options_list(definition)}"
                return None, _issue(name, text, "INVALID_OPTION", message)
        return text, None
    return text, None


def _check_time(name: str, type_: str, text: str) -> tuple[str | None, PropertyIssue | None]:
    parsed = parse_instant(text)
    if parsed is None:
        return None, _issue(name, text, "INVALID_LONG", f"{text} was not a valid long.")
    if type_ == "datetime":
        return format_instant(parsed), None
    if (parsed.hour, parsed.minute, parsed.second, parsed.microsecond) != (0, 0, 0, 0):
        # Observed form: "1579179660000 is at 13:1:0.0 UTC, not midnight!" (unpadded fields, millis after the dot).
        clock = f"{parsed.hour}:{parsed.minute}:{parsed.second}.{parsed.microsecond // 1000}"
        return None, _issue(name, text, "INVALID_DATE", f"{epoch_ms(parsed)} is at {clock} UTC, not midnight!")
    return parsed.strftime("%Y-%m-%d"), None


def check_properties(definitions: dict[str, dict[str, Any]], raw: Any, *, creating: bool) -> dict[str, str | None]:
    """Validate a ``properties`` object against the object type's property definitions.

    Returns name → normalized text, or ``None`` where ``""``/null clears the value (on create: leaves it unset).
    Raises one 400 listing every invalid property.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise invalid_input("Cannot deserialize value of type `java.util.HashMap` from a non-object value")
    values: dict[str, str | None] = {}
    issues: list[PropertyIssue] = []
    for name, value in raw.items():
        text = to_text(name, value)
        definition = definitions.get(name)
        if definition is None or definition.get("archived"):
            issues.append(_issue(name, text or "", "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
            continue
        if definition["modificationMetadata"].get("readOnlyValue"):
            message = f'"{name}" is a calculated property; its value cannot be set.'
            issues.append(_issue(name, text or "", "READ_ONLY_VALUE", message))
            continue
        if text is None or text == "":
            if not creating:
                values[name] = None
            continue
        normalized, issue = check_value(definition, text)
        if issue is not None:
            issues.append(issue)
        else:
            values[name] = normalized
    if issues:
        raise property_values_invalid(issues)
    return values


def phone_key(text: str) -> str:
    """The digits HubSpot's phone search compares: national number only, no country code, no formatting.

    HubSpot matches ``phone``/``mobilephone`` filters through calculated searchable values
    (``hs_searchable_calculated_phone_number`` / ``..._mobile_number``) that keep the area code and local number
    only; the search guide's "Limits" section says not to include the country code
    (https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm). Emulated: a value typed with
    its country code (``+44 20 7946 0018``, ``0044 …``) keeps its national significant number (``phonenumbers``);
    otherwise digits only, a NANP ``1`` dropped from 11 digits and one national trunk ``0`` dropped, so
    "+12025550143", "2025550143" and "(202) 555-0143" all reduce to "2025550143" and "020 7946 0018" to
    "2079460018" (an Italian "06…" keeps the same reduction either way). The exact computation is UNVERIFIED (HubSpot documents the outcome, not the algorithm).
    """
    stripped = text.strip()
    digits = re.sub(r"\D", "", stripped)
    if stripped.startswith("+") or (digits.startswith("00") and not stripped.startswith("0 ")):
        try:
            international = "+" + digits[2:] if not stripped.startswith("+") else stripped
            digits = phonenumbers.national_significant_number(phonenumbers.parse(international, None))
        except phonenumbers.NumberParseException:
            pass
    if len(digits) == 11 and digits.startswith("1"):
        return digits[1:]
    if len(digits) > 7 and digits.startswith("0") and not digits.startswith("00"):
        return digits[1:]
    return digits
