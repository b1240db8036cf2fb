"""Callback due times: exact examples a sales-ops person can check, DST edges, and the business-hours
invariant under hypothesis for any call time, lead zone, policy and request text."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connector.mapping.callback import CallbackDue, CallbackPolicy, callback_due

UTC = UTC
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NY = ZoneInfo("America/New_York")
IANA = [
    "America/New_York",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Sydney",
    "Asia/Kolkata",
    "America/St_Johns",
    "Pacific/Auckland",
]
POLICY = CallbackPolicy()
THU_CALL = datetime(2026, 11, 26, 19, 30, tzinfo=UTC)  # Thu 14:30 in UTC-05:00, already Fri 01:00 in Kolkata


def fixed(minutes: int) -> timezone:
    """A fixed-offset zone labelled the way the connector receives them, e.g. UTC-05:00."""
    sign = "+" if minutes >= 0 else "-"
    return timezone(timedelta(minutes=minutes), f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}")


EST = fixed(-300)


def due(
    requested: str | None, lead_tz: tzinfo | None = EST, call: datetime = THU_CALL, policy: CallbackPolicy = POLICY
) -> CallbackDue:
    return callback_due(call, lead_tz, requested, policy)


# --- concrete examples ------------------------------------------------------------------------------


def test_tomorrow_3pm_in_the_leads_fixed_offset() -> None:
    r = due("tomorrow 3pm")
    assert r.due.isoformat() == "2026-11-27T15:00:00-05:00"
    assert r.due_utc == datetime(2026, 11, 27, 20, 0, tzinfo=UTC) and r.due_utc.tzinfo == UTC
    assert (r.local_date, r.timezone, r.source, r.requested, r.adjusted) == (
        date(2026, 11, 27),
        "UTC-05:00",
        "requested",
        "tomorrow 3pm",
        False,
    )
    assert r.note == "requested 'tomorrow 3pm' → Fri 27 Nov 15:00 UTC-05:00"


@pytest.mark.parametrize("zone", [ZoneInfo("Asia/Kolkata"), fixed(330)])
def test_tomorrow_is_the_leads_tomorrow(zone: tzinfo) -> None:
    # 19:30 UTC Thursday is 01:00 Friday in India: "tomorrow 3pm" is Saturday, not a business day.
    r = due("tomorrow 3pm", zone)
    assert r.due.isoformat() == "2026-11-30T09:00:00+05:30"
    assert r.adjusted and r.source == "requested" and r.local_date == date(2026, 11, 30)
    assert "Sat 28 Nov 15:00" in r.note and "not on a business day" in r.note
    assert r.note.endswith("moved to Mon 30 Nov 09:00 " + ("IST" if isinstance(zone, ZoneInfo) else "UTC+05:30"))
    assert r.timezone == ("Asia/Kolkata" if isinstance(zone, ZoneInfo) else "UTC+05:30")


def test_no_request_is_next_business_day_at_default_hour() -> None:
    r = due(None)
    assert r.due.isoformat() == "2026-11-27T10:00:00-05:00"
    assert (r.source, r.requested, r.adjusted) == ("default", None, False)
    assert r.note == "no callback time requested; next business day at 10:00 → Fri 27 Nov 10:00 UTC-05:00"
    assert due("   ").requested is None and due("   ").source == "default"


def test_friday_evening_call_defaults_to_monday() -> None:
    r = due(None, call=datetime(2026, 11, 27, 22, 0, tzinfo=UTC))  # Fri 17:00 local
    assert r.due.isoformat() == "2026-11-30T10:00:00-05:00"


def test_early_morning_call_still_defaults_to_the_next_day() -> None:
    r = due(None, call=datetime(2026, 11, 26, 12, 0, tzinfo=UTC))  # Thu 07:00 local
    assert r.due.isoformat() == "2026-11-27T10:00:00-05:00"


def test_saturday_evening_request_moves_to_monday_start() -> None:
    r = due("Saturday 8pm")
    assert r.due.isoformat() == "2026-11-30T09:00:00-05:00" and r.adjusted
    assert r.note == (
        "requested 'Saturday 8pm' (Sat 28 Nov 20:00 UTC-05:00) is not on a business day; "
        "moved to Mon 30 Nov 09:00 UTC-05:00"
    )


def test_evening_and_early_requests_are_clamped_into_hours() -> None:
    assert due("tonight").due.isoformat() == "2026-11-27T09:00:00-05:00"
    early = due("tomorrow 7am")
    assert early.due.isoformat() == "2026-11-27T09:00:00-05:00" and early.adjusted
    assert "outside business hours (09:00–17:00)" in early.note


def test_us_dst_switch_uses_the_new_offset() -> None:
    r = due(None, NY, call=datetime(2026, 3, 7, 17, 0, tzinfo=UTC))  # Sat 12:00 EST; DST starts Sun 8 Mar
    assert r.due.isoformat() == "2026-03-09T10:00:00-04:00"
    assert r.due_utc == datetime(2026, 3, 9, 14, 0, tzinfo=UTC) and r.timezone == "America/New_York"
    assert r.note.endswith("Mon 9 Mar 10:00 EDT")


def test_garbage_falls_back_to_default_with_a_reason() -> None:
    r = due("whenever")
    assert (r.source, r.requested, r.adjusted) == ("default", "whenever", False)
    assert r.due.isoformat() == "2026-11-27T10:00:00-05:00"
    assert r.note == (
        "no usable request ('whenever': not understood); next business day at 10:00 → Fri 27 Nov 10:00 UTC-05:00"
    )


@pytest.mark.parametrize("text", ["5", "at 3", "Monday at 10", "a", "-1", "x" * 500])
def test_dateparser_misreadings_are_not_used(text: str) -> None:
    # dateparser reads "5" as 26 May and "Monday at 10" as 26 October next year; neither is a callback time.
    r = due(text)
    assert r.source == "default" and r.due.isoformat() == "2026-11-27T10:00:00-05:00"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("yesterday", "not after the call"),
        ("2026-11-20T10:00", "not after the call"),
        ("2028-01-05T10:00", "more than a year after the call"),
    ],
)
def test_past_or_far_requests_are_unusable(text: str, reason: str) -> None:
    r = due(text)
    assert r.source == "default" and f"({text!r}: {reason})" in r.note


@pytest.mark.parametrize("text", ["2026-12-01T16:00:00+01:00", "2026-12-01T15:00:00Z", "2026-12-01T07:00-08:00"])
def test_iso_with_its_own_offset_is_converted_to_the_lead_zone(text: str) -> None:
    r = due(text, NY)
    assert r.due.isoformat() == "2026-12-01T10:00:00-05:00" and not r.adjusted and r.source == "requested"


def test_naive_iso_is_lead_local() -> None:
    assert due("2026-12-01T10:00", NY).due.isoformat() == "2026-12-01T10:00:00-05:00"
    assert due("2026-12-01T10:00", fixed(-210)).due.isoformat() == "2026-12-01T10:00:00-03:30"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("friday", "2026-11-27T10:00:00-05:00"),
        ("2026-12-01", "2026-12-01T10:00:00-05:00"),
        ("next week", "2026-12-03T10:00:00-05:00"),
        ("Monday", "2026-11-30T10:00:00-05:00"),
    ],
)
def test_date_only_requests_get_default_hour(text: str, expected: str) -> None:
    r = due(text)
    assert r.due.isoformat() == expected and r.source == "requested" and not r.adjusted
    assert "(no time of day given; used 10:00)" in r.note


def test_relative_and_clock_times() -> None:
    assert due("in 2 hours").due.isoformat() == "2026-11-26T16:30:00-05:00"
    assert due("10:30").due.isoformat() == "2026-11-27T10:30:00-05:00"  # 10:30 has passed today
    assert due("4pm").due.isoformat() == "2026-11-26T16:00:00-05:00"  # 16:00 is still ahead today
    assert due("Monday at 10am").due.isoformat() == "2026-11-30T10:00:00-05:00"


def test_clock_time_on_the_last_day_of_a_month_rolls_into_the_next_month() -> None:
    # dateparser alone returns 2030-07-01 10:30 here (it rolls the day but not the month).
    r = due("10:30", NY, call=datetime(2030, 7, 31, 18, 30, tzinfo=UTC))  # Wed 14:30 EDT
    assert r.due.isoformat() == "2030-08-01T10:30:00-04:00" and not r.adjusted


def test_min_lead_time_pushes_the_request() -> None:
    r = due("in 10 minutes", call=datetime(2026, 11, 26, 19, 30, 27, tzinfo=UTC))
    assert r.due.isoformat() == "2026-11-26T14:46:00-05:00"  # 14:45:27 rounded up to the minute
    assert r.adjusted and "less than 15 minutes after the call" in r.note
    late = due("in 5 minutes", call=datetime(2026, 11, 26, 21, 50, tzinfo=UTC))  # 16:50: 17:05 is after hours
    assert late.due.isoformat() == "2026-11-27T09:00:00-05:00"


def test_unknown_lead_zone_uses_the_fallback() -> None:
    r = due("tomorrow 3pm", None, policy=CallbackPolicy(fallback_timezone="Europe/Berlin"))
    assert r.due.isoformat() == "2026-11-27T15:00:00+01:00" and r.timezone == "Europe/Berlin"


def test_request_in_the_spring_forward_gap_is_normalized() -> None:
    always = CallbackPolicy(
        business_start=time(0), business_end=time(23), default_hour=time(1), weekdays=list(WEEKDAYS)
    )
    r = due("2026-03-08T02:30", NY, call=datetime(2026, 3, 7, 17, 0, tzinfo=UTC), policy=always)
    assert r.due.isoformat() == "2026-03-08T03:30:00-04:00" and r.adjusted
    assert "(Sun 8 Mar 02:30) does not exist locally" in r.note


def test_business_window_inside_the_gap_skips_that_day() -> None:
    night = CallbackPolicy(
        business_start=time(2), business_end=time(3), default_hour=time(2, 30), weekdays=list(WEEKDAYS)
    )
    r = due(None, NY, call=datetime(2026, 3, 7, 17, 0, tzinfo=UTC), policy=night)
    assert r.due.isoformat() == "2026-03-09T02:00:00-04:00"  # 02:00–03:00 never happens on 8 March


def test_fall_back_ambiguity_uses_the_first_occurrence() -> None:
    night = CallbackPolicy(
        business_start=time(1), business_end=time(2), default_hour=time(1, 30), weekdays=list(WEEKDAYS)
    )
    r = due(None, NY, call=datetime(2026, 10, 31, 16, 0, tzinfo=UTC), policy=night)
    assert r.due.isoformat() == "2026-11-01T01:30:00-04:00"  # EDT, the earlier 01:30


def test_second_occurrence_of_an_ambiguous_hour_keeps_its_offset() -> None:
    night = CallbackPolicy(
        business_start=time(1), business_end=time(2), default_hour=time(1, 30), weekdays=list(WEEKDAYS)
    )
    r = due("in 5 minutes", NY, call=datetime(2026, 11, 1, 6, 5, tzinfo=UTC), policy=night)  # 01:05 EST
    assert r.due.isoformat() == "2026-11-01T01:20:00-05:00" and r.due.fold == 1
    assert r.due_utc == datetime(2026, 11, 1, 6, 20, tzinfo=UTC)


def test_relative_request_into_a_repeated_hour() -> None:
    # Sydney leaves DST at 03:00 AEDT on Sun 5 Apr 2020; "in 2 hours" from 00:59 is the first 02:59.
    night = CallbackPolicy(
        business_start=time(0), business_end=time(3), default_hour=time(0), weekdays=list(WEEKDAYS), min_lead_minutes=0
    )
    call = datetime(2020, 4, 4, 13, 59, 28, 125000, tzinfo=UTC)
    r = due("in 2 hours", ZoneInfo("Australia/Sydney"), call=call, policy=night)
    assert r.due.isoformat() == "2020-04-05T02:59:00+11:00" and r.due_utc == datetime(2020, 4, 4, 15, 59, tzinfo=UTC)


def test_naive_call_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        callback_due(datetime(2026, 11, 26, 19, 30), EST, None, POLICY)


# --- policy validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"business_start": "17:00", "business_end": "09:00"},
        {"business_start": "09:00", "business_end": "09:00"},
        {"default_hour": "08:00"},
        {"default_hour": "17:00"},
        {"weekdays": []},
        {"weekdays": ["mon", "mon"]},
        {"weekdays": ["monday"]},
        {"fallback_timezone": "Mars/Olympus"},
        {"fallback_timezone": "../etc/passwd"},
        {"min_lead_minutes": -1},
        {"business_start": "09:00+02:00"},
        {"callback_field": "x"},
    ],
)
def test_invalid_policies_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CallbackPolicy.model_validate(bad)


def test_policy_from_yaml_needs_quoted_times() -> None:
    ok = CallbackPolicy.model_validate(yaml.safe_load("default_hour: '10:30'\nweekdays: [mon, wed]"))
    assert ok.default_hour == time(10, 30) and ok.weekdays == ["mon", "wed"]
    with pytest.raises(ValidationError, match="quote times"):
        CallbackPolicy.model_validate(yaml.safe_load("default_hour: 10:30"))  # YAML 1.1 reads 630


def test_policy_is_documented_and_frozen() -> None:
    assert all(field.description for field in CallbackPolicy.model_fields.values())
    assert all(field.description for field in CallbackDue.model_fields.values())
    with pytest.raises(ValidationError):
        POLICY.default_hour = time(11)  # type: ignore[misc]


# --- invariants -------------------------------------------------------------------------------------


def _transitions() -> list[datetime]:
    """Every UTC-offset change of the IANA zones in 2020–2035, to the minute: where DST bugs live."""
    found: list[datetime] = []
    for name in IANA:
        zone = ZoneInfo(name)
        day = datetime(2020, 1, 1, tzinfo=UTC)
        while day.year < 2036:
            nxt = day + timedelta(days=1)
            if day.astimezone(zone).utcoffset() != nxt.astimezone(zone).utcoffset():
                lo, hi = day, nxt
                while hi - lo > timedelta(minutes=1):
                    mid = lo + (hi - lo) / 2
                    same = mid.astimezone(zone).utcoffset() == lo.astimezone(zone).utcoffset()
                    lo, hi = (mid, hi) if same else (lo, mid)
                found.append(hi)
            day = nxt
    return found


TRANSITIONS = _transitions()
PHRASES = [
    "tomorrow 3pm",
    "Monday at 10am",
    "2026-12-01T10:00",
    "2026-12-01T10:00:00-05:00",
    "10:30",
    "friday",
    "in 2 hours",
    "whenever",
    "Saturday 8pm",
    "tomorrow morning",
    "tonight",
    "next week",
    "now",
    "today",
    "yesterday",
    "noon",
    "midnight",
    "in 30 minutes",
    "in 3 days",
    "3pm EST",
    "Dec 1",
    "tomorrow at 3",
    "next tuesday 2:30 pm",
    "12am",
    "00:00",
    "2:30am",
    "Sunday 2:30am",
    "1:30 am",
    "asap",
    "5",
    "Z",
]

call_times = st.one_of(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31, 23, 59), timezones=st.just(UTC)),
    st.builds(lambda t, m: t + timedelta(minutes=m), st.sampled_from(TRANSITIONS), st.integers(-4 * 1440, 1440)),
)
zones = st.one_of(
    st.none(),
    st.integers(-48, 56).map(lambda q: fixed(15 * q)),
    st.sampled_from([fixed(330), fixed(-210), fixed(345)]),
    st.sampled_from([ZoneInfo(name) for name in IANA]),
)
iso_requests = st.builds(
    lambda t, q, with_offset: (t.replace(tzinfo=fixed(15 * q)) if with_offset else t).isoformat(),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2036, 12, 31)),
    st.integers(-48, 56),
    st.booleans(),
)
requests = st.one_of(
    st.none(),
    st.sampled_from(PHRASES),
    iso_requests,
    st.text(max_size=30),
    st.builds(lambda a, b: f"{a} {b}", st.sampled_from(PHRASES), st.sampled_from(PHRASES)),
)
EDGE_WINDOWS = [
    (time(2), time(3)),
    (time(2, 10), time(2, 50)),
    (time(1), time(2)),
    (time(0), time(1)),
    (time(0), time(23, 59)),
    (time(23), time(23, 59, 59, 999999)),
    (time(9), time(17)),
]


@st.composite
def policies(draw: st.DrawFn) -> CallbackPolicy:
    if draw(st.booleans()):
        start, end = draw(st.sampled_from(EDGE_WINDOWS))
    else:
        start, end = sorted(draw(st.lists(st.times(), min_size=2, max_size=2, unique=True)))
    default = draw(st.times(min_value=start, max_value=end).filter(lambda t: t < end))
    return CallbackPolicy(
        business_start=start,
        business_end=end,
        default_hour=default,
        weekdays=draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True)),
        fallback_timezone=draw(st.sampled_from(IANA)),
        min_lead_minutes=draw(st.one_of(st.sampled_from([0, 15, 60]), st.integers(0, 7 * 24 * 60))),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=call_times, lead_tz=zones, requested=requests, policy=policies())
def test_due_is_always_inside_lead_local_business_hours(
    call: datetime, lead_tz: tzinfo | None, requested: str | None, policy: CallbackPolicy
) -> None:
    r = callback_due(call, lead_tz, requested, policy)
    zone = lead_tz if lead_tz is not None else ZoneInfo(policy.fallback_timezone)
    local = r.due.astimezone(zone)
    assert r.due.utcoffset() is not None and r.due.utcoffset() == local.utcoffset()
    assert policy.business_start <= local.time() < policy.business_end
    assert WEEKDAYS[local.weekday()] in policy.weekdays
    assert r.due_utc >= call + timedelta(minutes=policy.min_lead_minutes)
    # Same instant. Not `r.due_utc == r.due`: Python's cross-zone == is False for any fold-ambiguous time.
    assert r.due_utc.utcoffset() == timedelta(0) and r.due_utc.timestamp() == r.due.timestamp()
    assert r.due.astimezone(UTC) == r.due_utc
    assert r.local_date == local.date()
    assert r.source == "requested" or not r.adjusted
    assert callback_due(call, lead_tz, requested, policy) == r


@settings(max_examples=300, deadline=None)
@given(
    call=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)),
    minutes=st.integers(-48, 56).map(lambda q: 15 * q),
    days_ahead=st.integers(1, 300),
    at=st.times(min_value=time(9), max_value=time(16, 59)).map(lambda t: t.replace(second=0, microsecond=0)),
)
def test_usable_in_hours_requests_are_kept_and_defaults_land_on_default_hour(
    call: datetime, minutes: int, days_ahead: int, at: time
) -> None:
    zone = fixed(minutes)
    day = call.astimezone(zone).date() + timedelta(days=days_ahead)
    every_day = CallbackPolicy(weekdays=list(WEEKDAYS))
    r = callback_due(call, zone, datetime.combine(day, at, tzinfo=zone).isoformat(), every_day)
    assert (r.due.date(), r.due.time(), r.source, r.adjusted) == (day, at, "requested", False)
    d = callback_due(call, zone, None, POLICY)
    after = call.astimezone(zone).date()
    assert d.due.time() == time(10) and after < d.local_date <= after + timedelta(days=3)
    skipped = [after + timedelta(days=k) for k in range(1, (d.local_date - after).days)]
    assert all(WEEKDAYS[day.weekday()] in ("sat", "sun") for day in skipped)
