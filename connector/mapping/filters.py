"""Jinja2 filters for mapping templates: phones, times, durations, transcripts, redaction, slugs.

Plain functions, registered by :mod:`connector.mapping.templates` through :data:`FILTERS`. Each one
raises :class:`FilterError` with a message naming the filter and the kind of problem (never the
value: it may be a phone number or transcript text) so that a bad mapping fails with a clear
reason instead of writing garbage to a CRM. No I/O and no clock reads: a replay renders the same.

Templates see the event after ``model_dump``, so objects arrive as dicts: a phone as
``{"e164": …, "raw": …}``, a lead zone as ``{"kind": …, "name": …, "offset_minutes": …}``; both
shapes (and the models themselves) are accepted.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

import phonenumbers
from jinja2 import Undefined
from pydantic import ValidationError

from connector import _normalize
from connector.mapping.redaction import redact as _redact
from connector.mapping.transcript import render_transcript
from connector.payload import LeadTimezone, Phone


class FilterError(ValueError):
    """A template filter got input it cannot handle; the message names the filter, never the value."""


def _given(value: Any) -> Any:
    """``None`` for an undefined value; ``StrictUndefined`` raises its own error naming the variable."""
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises UndefinedError here; lenient Undefined renders as ""
        return None
    return value


def _text(value: Any, name: str, ints: bool = False) -> str | None:
    """The string argument of filter ``name``; None for None/undefined; FilterError for other types."""
    value = _given(value)
    if ints and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None or isinstance(value, str):
        return value
    raise FilterError(f"{name}: expected a string, got {type(value).__name__}")


def _count(value: Any, name: str, what: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FilterError(f"{name}: {what} must be an integer >= {minimum}")


# --- phone -------------------------------------------------------------------------------------

_F = phonenumbers.PhoneNumberFormat
_REGIONS = phonenumbers.SUPPORTED_REGIONS
_PHONE_STYLES = {
    "e164": _F.E164,
    "national": _F.NATIONAL,
    "international": _F.INTERNATIONAL,
    "digits": _F.E164,
    "rfc3966": _F.RFC3966,
}


def phone(value: Any, style: str = "e164", region: str | None = "US") -> str:
    """A phone number for display; unparseable input comes back unchanged (it is all we have)."""
    if not isinstance(style, str) or style not in _PHONE_STYLES:
        raise FilterError(f"phone: unknown style {style!r}; use one of {', '.join(_PHONE_STYLES)}")
    if region is not None and (not isinstance(region, str) or region.upper() not in _REGIONS):
        raise FilterError("phone: region must be a two-letter region code such as 'US'")
    value = _given(value)
    if isinstance(value, (Phone, Mapping)):  # record.phone, as a model or dumped
        value = dict(value).get("e164") or dict(value).get("raw")
    value = _text(value, "phone", ints=True)
    if value is None:
        return ""
    try:
        number = phonenumbers.parse(value, region.upper() if region else None)
    except phonenumbers.NumberParseException:
        return value
    if not phonenumbers.is_possible_number(number):
        return value
    formatted = phonenumbers.format_number(number, _PHONE_STYLES[style])
    return formatted.lstrip("+") if style == "digits" else formatted


# --- date-times --------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_REQUIRED: Any = object()


def _aware(value: Any, name: str) -> datetime | None:
    """An aware datetime from a datetime or ISO string; None for None; naive is refused."""
    value = _given(value)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise FilterError(f"{name}: not an ISO 8601 date-time") from None
    if not isinstance(value, datetime):
        raise FilterError(f"{name}: expected a datetime or ISO 8601 string, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise FilterError(f"{name}: the date-time has no UTC offset; refusing to guess its zone")
    return value


def _zone(tz: Any, name: str) -> tzinfo:
    """A tzinfo from a tzinfo, an IANA name, an offset ("+05:30", "UTC-5") or a lead zone; None is UTC.

    A lead zone that is missing or unusable also means UTC (the data is lenient); a zone *name*
    that cannot be resolved is a mapping mistake and fails.
    """
    if tz is _REQUIRED:
        raise FilterError(f"{name}: pass the time zone, e.g. {name}(tz); None means UTC")
    tz = _given(tz)
    if isinstance(tz, tzinfo):
        return tz
    if isinstance(tz, (LeadTimezone, Mapping)):  # record.timezone, as a model or dumped
        try:
            return LeadTimezone.model_validate(dict(tz)).tzinfo() or UTC
        except ValidationError:
            raise FilterError(f"{name}: the zone mapping is not a lead time zone") from None
    if tz is None or (isinstance(tz, str) and not tz.strip()):
        return UTC
    if not isinstance(tz, str):
        raise FilterError(f"{name}: expected a time zone name or tzinfo, got {type(tz).__name__}")
    resolved = LeadTimezone.model_validate(_normalize.timezone(tz)).tzinfo()
    if resolved is None:
        raise FilterError(f"{name}: unknown time zone; use an IANA name such as 'America/New_York' or '+05:30'")
    return resolved


def _in_zone(dt: Any, tz: Any, name: str) -> datetime | None:
    """``dt`` converted to ``tz``; None for None. The zone is checked even then, to catch typos early."""
    zone, moment = _zone(tz, name), _aware(dt, name)
    try:
        return None if moment is None else moment.astimezone(zone)
    except (OverflowError, ValueError):
        raise FilterError(f"{name}: date-time out of range in that zone") from None


def local_time(dt: Any, tz: Any = None, fmt: str | None = None) -> datetime | str:
    """``dt`` in zone ``tz`` (UTC when None); formatted with strftime ``fmt`` when given. None → ""."""
    local, pattern = _in_zone(dt, tz, "local_time"), _text(fmt, "local_time")
    if local is None or pattern is None:
        return "" if local is None else local
    try:
        return local.strftime(pattern)
    except ValueError:
        raise FilterError("local_time: fmt is not a valid strftime format") from None


def iso_utc(dt: Any) -> str:
    """``2026-11-26T19:30:00.000Z``: UTC with milliseconds (truncated), the form CRM APIs accept. None → ""."""
    utc = _in_zone(dt, UTC, "iso_utc")
    return "" if utc is None else utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def iso_local(dt: Any, tz: Any = _REQUIRED) -> str:
    """``2026-11-26T14:30:00-05:00``: wall time in ``tz`` with its offset, to the second. None → ""."""
    local = _in_zone(dt, tz, "iso_local")
    return "" if local is None else local.isoformat(timespec="seconds")


def epoch_ms(dt: Any) -> int | None:
    """Milliseconds since 1970-01-01T00:00Z (floored), for CRMs with timestamp-number fields. None → None."""
    moment = _aware(dt, "epoch_ms")
    return None if moment is None else (moment - _EPOCH) // timedelta(milliseconds=1)


def date_only(dt: Any, tz: Any = _REQUIRED) -> str:
    """``YYYY-MM-DD`` of the day **in tz**: a 9 pm call in New York is not on tomorrow's UTC date."""
    local = _in_zone(dt, tz, "date_only")
    return "" if local is None else local.date().isoformat()


# --- durations ---------------------------------------------------------------------------------

_DURATION_STYLES = ("hms", "human", "ms", "seconds")
_WIDE = Context(prec=60, rounding=ROUND_HALF_UP)  # exact for any float's decimal form


def _seconds(value: Any) -> Decimal:
    if isinstance(value, timedelta):
        exact = Decimal(value // timedelta(microseconds=1)).scaleb(-6, _WIDE)
    elif isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        exact = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    else:
        raise FilterError(f"duration: expected a number of seconds, got {type(value).__name__}")
    if not exact.is_finite():
        raise FilterError("duration: not a finite number")
    if exact < 0:
        raise FilterError("duration: negative duration")
    return exact


def duration(seconds: Any, style: str = "hms") -> str | int | None:
    """A call length: ``hms`` 0:01:05, ``human`` 1 min 5 s, ``ms`` / ``seconds`` integers (half up)."""
    if not isinstance(style, str) or style not in _DURATION_STYLES:
        raise FilterError(f"duration: unknown style {style!r}; use one of {', '.join(_DURATION_STYLES)}")
    seconds = _given(seconds)
    if seconds is None:
        return None if style in ("ms", "seconds") else ""
    exact = _seconds(seconds)
    if style == "ms":
        return int(_WIDE.multiply(exact, 1000).to_integral_value(ROUND_HALF_UP))
    whole = int(exact.to_integral_value(ROUND_HALF_UP))
    if style == "seconds":
        return whole
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if style == "hms":
        return f"{hours}:{minutes:02d}:{secs:02d}"
    parts = [f"{n} {unit}" for n, unit in ((hours, "h"), (minutes, "min"), (secs, "s")) if n]
    return " ".join(parts) or "0 s"


# --- text --------------------------------------------------------------------------------------


def transcript(turns: Any, fmt: str = "text", labels: Mapping[str, str] | None = None, empty: str = "") -> str:
    """The conversation as text, markdown or (escaped) html; see :mod:`connector.mapping.transcript`."""
    try:
        return render_transcript(_given(turns), fmt, _given(labels), empty)  # type: ignore[arg-type]
    except ValueError as exc:
        raise FilterError(f"transcript: {exc}") from None


def redact(text: Any, rules: Any = None) -> str:
    """``text`` without card numbers and SSNs (or the given rules); None → ""."""
    text = _text(text, "redact")
    try:
        return "" if text is None else _redact(text, _given(rules))
    except ValidationError as exc:  # a rule given as a mapping; name the problems on one line
        problems = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        raise FilterError(f"redact: {problems}") from None
    except ValueError as exc:
        raise FilterError(f"redact: {exc}") from None


TRUNCATION_MARKER = " … [truncated {removed} characters]"


def truncate_to(text: Any, limit: int = _REQUIRED, marker: str = TRUNCATION_MARKER) -> str:
    """``text`` cut to exactly ``limit`` characters *including* the marker, so the CRM never rejects it.

    ``{removed}`` is replaced by plain text replace (``str.format`` could reach attributes). A
    surrogate pair is never split (the result is then one shorter). A limit below the marker fails
    even for short text, so the mistake shows on the first render, not on the first long call.
    """
    _count(limit, "truncate_to", "limit", 0)
    marker = _text(marker, "truncate_to") or ""
    shortest = len(marker.replace("{removed}", "0"))
    if limit < shortest:
        raise FilterError(f"truncate_to: limit {limit} is shorter than the marker ({shortest} characters)")
    text = _text(text, "truncate_to")
    if text is None or len(text) <= limit:
        return text or ""
    keep = limit - shortest  # an upper bound: the real count has at least one digit
    while keep >= 0:
        cut = keep
        if 0 < cut < len(text) and _splits_pair(text[cut - 1], text[cut]):
            cut -= 1
        mark = marker.replace("{removed}", str(len(text) - cut))
        if cut + len(mark) <= limit:
            return text[:cut] + mark
        keep -= 1
    raise FilterError(f"truncate_to: limit {limit} is too short for the marker")


def _splits_pair(before: str, after: str) -> bool:
    """Whether cutting between these two code points would split a UTF-16 surrogate pair."""
    return "\ud800" <= before <= "\udbff" and "\udc00" <= after <= "\udfff"


def default_if_empty(value: Any, default: Any) -> Any:
    """``default`` for undefined, None, "" or whitespace-only text; anything else unchanged."""
    if isinstance(value, Undefined) or value is None or (isinstance(value, str) and not value.strip()):
        return default
    return value


def yesno(value: Any, yes: str = "Yes", no: str = "No", unknown: str = "") -> str:
    """A tri-state boolean (answered, message_left) as words for a picklist or note."""
    value = _given(value)
    if value is None:
        return unknown
    if not isinstance(value, bool):
        raise FilterError(f"yesno: expected true, false or null, got {type(value).__name__}")
    return yes if value else no


_LIGATURES = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l", "þ": "th", "ð": "d"})
"""Latin letters NFKD does not decompose, spelled the way a German/Nordic/Polish speaker would."""


def slug(value: Any, max_len: int | None = None) -> str:
    """A CRM property-name part: ``[a-z0-9_]``, no leading digit, no ``__`` (Salesforce reserves it).

    Accents are transliterated (NFKD), anything else becomes ``_``; empty input gives ``field``.
    """
    if max_len is not None:
        _count(max_len, "slug", "max_len", 1)
    value = _text(value, "slug", ints=True) or ""
    ascii_text = unicodedata.normalize("NFKD", value.lower().translate(_LIGATURES))
    kept = (ch for ch in ascii_text if not unicodedata.combining(ch))
    chars = [ch if ("a" <= ch <= "z" or "0" <= ch <= "9") else "_" for ch in kept]
    result = "_".join(part for part in "".join(chars).split("_") if part)
    if result[:1].isdigit():
        result = f"q_{result}"
    if max_len is not None:
        result = result[:max_len].rstrip("_")
    return result or "field"[: max_len or None]


FILTERS: dict[str, Callable[..., Any]] = {
    f.__name__: f
    for f in (
        phone,
        local_time,
        iso_utc,
        iso_local,
        epoch_ms,
        date_only,
        duration,
        transcript,
        redact,
        truncate_to,
        default_if_empty,
        yesno,
        slug,
    )
}
"""Name → filter, for ``environment.filters.update(FILTERS)``."""
