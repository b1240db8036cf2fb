"""When a "call me back" task is due, in the lead's local time.

A callback due at 3 a.m. where the lead lives, or as a bare UTC-midnight date, is a real failure, so
every result is an aware instant inside the policy's business hours *in the lead's zone*. Calendar
arithmetic is done on local wall-clock dates and only then localized (round-tripped through UTC), so DST
gaps and folds cannot leak a nonexistent 02:30 or a 23-hour "next day". Pure: no clock reads, no I/O
(dateparser always gets RELATIVE_BASE; PREFER_DAY_OF_MONTH is pinned as its "current" reads the clock).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

import dateparser
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # not strftime: locale-independent notes
_MONTH_LABELS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MAX_REQUEST_CHARS = 100  # real requests are short; long free text only gives dateparser room to misread
_MAX_AHEAD = timedelta(days=366)  # further out is almost always a misparse (and would overflow near year 9999)
_SEARCH_DAYS = 15  # two full weeks: covers any weekday set even if one business day vanishes in a DST gap

_DAY_WORDS = {
    "mon": 0,
    "monday": 0,
    "tue": 1,
    "tues": 1,
    "tuesday": 1,
    "wed": 2,
    "wednesday": 2,
    "thu": 3,
    "thur": 3,
    "thurs": 3,
    "thursday": 3,
    "fri": 4,
    "friday": 4,
    "sat": 5,
    "saturday": 5,
    "sun": 6,
    "sunday": 6,
}
_WEEKDAY_RE = re.compile(r"\b(" + "|".join(sorted(_DAY_WORDS, key=len, reverse=True)) + r")\b", re.I)
# Something that states a time of day; without it the request is a date and gets default_hour.
_TIME_RE = re.compile(
    r"\d\s*[ap]\.?m\b|\d:\d|\dT\d|\d\s*h(?:\d|\b)|\b(?:noon|midday|midnight|morning|afternoon|evening|"
    r"tonight|night|now|hours?|hrs?|minutes?|mins?|seconds?|secs?)\b",
    re.I,
)
_MIDNIGHT_RE = re.compile(r"midnight|\b0?0[:h]00\b|\b12(?::00)?\s*a\.?m\b", re.I)
# Vocabulary a date/time request must contain; dateparser happily reads "1", "a" or "at 3" as months away.
_VOCAB_RE = re.compile(
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b|\b(?:today|tomorrow|tonight|yesterday|"
    r"next|week|weeks|weekend|month|months|year|day|days|fortnight)\b|\d{1,4}[-/.]\d{1,2}",
    re.I,
)
_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:$|[T ])")
# A bare clock time ("10:30", "3pm"): dateparser rolls these to "tomorrow" wrongly at month end.
_TIME_ONLY_RE = re.compile(r"^(?:at\s+)?(?:\d{1,2}:\d{2}(?:\s*[ap]\.?m\.?)?|\d{1,2}\s*[ap]\.?m\.?)$", re.I)


class CallbackPolicy(BaseModel):
    """Sales-ops rules for when a "call me back" task may be due (all times are lead-local)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question_field: str | None = Field(
        "callback_time", min_length=1, description="question_fields key holding the requested callback time."
    )
    default_hour: time = Field(
        time(10, 0), description="Local time used on the next business day when no usable time was requested."
    )
    business_start: time = Field(time(9, 0), description="Earliest local time of day a callback may be due.")
    business_end: time = Field(time(17, 0), description="Callbacks are due strictly before this local time of day.")
    weekdays: list[Weekday] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"],
        min_length=1,
        description="Business days (mon … sun) a callback may fall on.",
    )
    fallback_timezone: str = Field(
        "America/New_York", description="IANA zone used when the lead's own timezone is unknown."
    )
    min_lead_minutes: int = Field(
        15, ge=0, le=7 * 24 * 60, description="A callback is never due sooner than this many minutes after the call."
    )

    @field_validator("default_hour", "business_start", "business_end", mode="before")
    @classmethod
    def _no_numbers(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted 10:00 as the integer 600, which pydantic would take as 00:10:00.
        if isinstance(value, (int, float)):
            raise ValueError(f"got the number {value!r}; quote times in YAML, e.g. '10:00'")
        return value

    @field_validator("weekdays")
    @classmethod
    def _unique(cls, days: list[Weekday]) -> list[Weekday]:
        if len(set(days)) != len(days):
            raise ValueError("weekdays must not repeat a day")
        return days

    @field_validator("fallback_timezone")
    @classmethod
    def _loads(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except Exception as exc:  # ZoneInfoNotFoundError, or ValueError for keys like "../x"
            raise ValueError(f"unknown IANA timezone {name!r}") from exc
        return name

    @model_validator(mode="after")
    def _hours(self) -> CallbackPolicy:
        if any(t.tzinfo is not None for t in (self.default_hour, self.business_start, self.business_end)):
            raise ValueError("times must be local times of day without an offset; the lead's zone supplies it")
        if not self.business_start < self.business_end:
            raise ValueError("business_start must be before business_end")
        if not self.business_start <= self.default_hour < self.business_end:
            raise ValueError("default_hour must satisfy business_start <= default_hour < business_end")
        return self


class CallbackDue(BaseModel):
    """When the callback task is due, and a sentence a human can check it against."""

    model_config = ConfigDict(frozen=True)

    due: datetime = Field(description="Aware, in the lead's (or fallback) zone; isoformat() carries the offset.")
    due_utc: datetime = Field(description="The same instant in UTC.")
    local_date: date = Field(description="The lead-local calendar date (e.g. Salesforce ActivityDate).")
    timezone: str = Field(description="The zone used: an IANA name or a fixed-offset label such as UTC-05:00.")
    source: Literal["requested", "default"] = Field(description="Whether the lead's requested time was used.")
    requested: str | None = Field(description="The raw request string, if any.")
    adjusted: bool = Field(description="True when a requested time was moved into business hours / the future.")
    note: str = Field(description="One sentence explaining how the due time was chosen.")


def _localize(wall: datetime, zone: tzinfo) -> datetime:
    """The UTC instant of a naive wall time (its fold decides folds; gap times land after the gap).

    Instants stay in UTC internally: Python compares two datetimes sharing a tzinfo by wall clock,
    ignoring fold, and `==` across zones is always False for an ambiguous local time (PEP 495)."""
    return wall.replace(tzinfo=zone).astimezone(UTC)


def _ceil_minute(instant: datetime) -> datetime:
    """Due times are whole minutes (CRMs show minutes); rounding up keeps every lower bound."""
    utc = instant.astimezone(UTC)
    if utc.second or utc.microsecond:
        utc = utc.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return utc


def _in_hours(instant: datetime, day: date, zone: tzinfo, policy: CallbackPolicy) -> bool:
    local = instant.astimezone(zone)
    return (
        local.date() == day
        and _WEEKDAYS[day.weekday()] in policy.weekdays
        and policy.business_start <= local.time() < policy.business_end
    )


def _first_business_instant(not_before: datetime, zone: tzinfo, policy: CallbackPolicy) -> datetime:
    """Earliest UTC instant >= not_before (UTC) in business hours: itself, else a day's business_start."""
    first_day = not_before.astimezone(zone).date()
    for offset in range(_SEARCH_DAYS):
        day = first_day + timedelta(days=offset)  # plain date arithmetic: wall-clock days, DST-proof
        starts = [_localize(datetime.combine(day, policy.business_start).replace(fold=f), zone) for f in (0, 1)]
        fits = [c for c in [not_before, *starts] if c >= not_before and _in_hours(c, day, zone, policy)]
        if fits:
            return min(fits)  # fold=0 (the earlier instant) wins for an ambiguous business_start
    raise RuntimeError(f"no business time within {_SEARCH_DAYS} days after {not_before.isoformat()}")


def _next_business_day(after: date, policy: CallbackPolicy) -> date:
    day = after + timedelta(days=1)
    while _WEEKDAYS[day.weekday()] not in policy.weekdays:
        day += timedelta(days=1)
    return day


def _hhmm(value: time) -> str:
    return f"{value:%H:%M}"


def _when(instant: datetime) -> str:
    """'Fri 27 Nov 15:00 UTC-05:00' — built by hand so the note does not depend on the process locale."""
    return (
        f"{_DAY_LABELS[instant.weekday()]} {instant.day} {_MONTH_LABELS[instant.month - 1]} "
        f"{_hhmm(instant.time())} {instant.tzname() or ''}"
    ).rstrip()


def _interpret(
    text: str, base: datetime, zone: tzinfo, policy: CallbackPolicy
) -> tuple[datetime | None, datetime | None, str]:
    """(UTC instant, requested wall time if naive, detail) — or (None, None, why it is unusable)."""
    if len(text) > _MAX_REQUEST_CHARS:
        return None, None, "too long to be a time"
    if not (_VOCAB_RE.search(text) or _TIME_RE.search(text) or _WEEKDAY_RE.search(text)):
        return None, None, "not understood"
    settings = {"RELATIVE_BASE": base, "PREFER_DATES_FROM": "future", "PREFER_DAY_OF_MONTH": "first"}
    try:  # machine-written ISO first: dateparser rejects valid offsets it has no zone name for (+00:15, +13:45)
        parsed = datetime.fromisoformat(text) if _ISO_RE.match(text) else None
    except ValueError:
        parsed = None
    try:
        parsed = parsed or dateparser.parse(text, languages=["en"], settings=settings)
    except Exception:  # dateparser raises assorted errors on odd input; for us it is just "not understood"
        parsed = None
    if parsed is None:
        return None, None, "not understood"
    named = {_DAY_WORDS[m.lower()] for m in _WEEKDAY_RE.findall(text)}
    if len(named) == 1 and parsed.weekday() not in named:  # e.g. "Monday at 10" read as 26 Oct
        return None, None, "not understood"
    try:
        if parsed.tzinfo is not None:  # the text named its own offset/zone: keep the instant
            return parsed.astimezone(UTC), None, ""
        detail = ""
        if _TIME_ONLY_RE.match(text):  # today if still ahead, else tomorrow — on wall-clock dates
            today = datetime.combine(base.date(), parsed.time())
            parsed = today if today > base else datetime.combine(base.date() + timedelta(days=1), parsed.time())
        elif not _TIME_RE.search(text) or (parsed.time() == time(0) and not _MIDNIGHT_RE.search(text)):
            parsed = datetime.combine(parsed.date(), policy.default_hour)
            detail = f" (no time of day given; used {_hhmm(policy.default_hour)})"
        if parsed.date() == base.date():  # after a call in the repeated hour, that hour's times are the 2nd ones
            parsed = parsed.replace(fold=base.fold)
        return _localize(parsed, zone), parsed, detail
    except (OverflowError, ValueError):
        return None, None, "out of range"


def _why_moved(asked: datetime, in_gap: bool, floor: datetime, zone: tzinfo, policy: CallbackPolicy) -> str:
    local = asked.astimezone(zone)
    if in_gap:
        return "does not exist locally (clock change)"
    if asked < floor:
        return f"is less than {policy.min_lead_minutes} minutes after the call"
    if _WEEKDAYS[local.weekday()] not in policy.weekdays:
        return "is not on a business day"
    if not policy.business_start <= local.time() < policy.business_end:
        return f"is outside business hours ({_hhmm(policy.business_start)}–{_hhmm(policy.business_end)})"
    return "is not on a whole minute"


def callback_due(
    call_time: datetime, lead_tz: tzinfo | None, requested: str | None, policy: CallbackPolicy
) -> CallbackDue:
    """Due time for a callback task: the lead's requested time if usable, else the next business day at
    default_hour; then moved to the earliest lead-local business time >= call_time + min_lead_minutes."""
    if call_time.tzinfo is None or call_time.utcoffset() is None:
        raise ValueError("call_time must be timezone-aware")
    zone: tzinfo = lead_tz if lead_tz is not None else ZoneInfo(policy.fallback_timezone)
    call_utc = call_time.astimezone(UTC)
    call_local = call_utc.astimezone(zone)
    floor = _ceil_minute(call_utc + timedelta(minutes=policy.min_lead_minutes))
    raw = requested if requested is None or isinstance(requested, str) else str(requested)
    text = (raw or "").strip()

    asked: datetime | None = None
    wall: datetime | None = None
    detail, why = "", "no callback time requested"
    if text:
        base = call_local.replace(tzinfo=None, second=0, microsecond=0)
        asked, wall, detail = _interpret(text, base, zone, policy)
        if asked is not None and asked <= call_utc:
            asked, detail = None, "not after the call"
        elif asked is not None and asked - call_utc > _MAX_AHEAD:
            asked, detail = None, "more than a year after the call"
        why = f"no usable request ({raw!r}: {detail})"

    if asked is not None:
        due = _first_business_instant(_ceil_minute(max(asked, floor)), zone, policy)
        local = due.astimezone(zone)
        in_gap = wall is not None and asked.astimezone(zone).replace(tzinfo=None) != wall
        adjusted = due != asked or in_gap
        if adjusted:
            shown = wall if in_gap and wall is not None else asked.astimezone(zone)
            moved = _why_moved(asked, in_gap, floor, zone, policy)
            note = f"requested {raw!r} ({_when(shown)}) {moved}; moved to {_when(local)}"
        else:
            note = f"requested {raw!r}{detail} → {_when(local)}"
    else:
        day = _next_business_day(call_local.date(), policy)
        start = _localize(datetime.combine(day, policy.default_hour), zone)
        due = _first_business_instant(_ceil_minute(max(start, floor)), zone, policy)
        local, adjusted = due.astimezone(zone), False
        note = f"{why}; next business day at {_hhmm(policy.default_hour)} → {_when(local)}"

    name = getattr(zone, "key", None) or zone.tzname(local) or str(zone)
    return CallbackDue(
        due=local,
        due_utc=due,
        local_date=local.date(),
        timezone=name,
        source="requested" if asked is not None else "default",
        requested=raw if text else None,
        adjusted=adjusted,
        note=note,
    )
