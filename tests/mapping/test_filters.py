"""Template filters: exact outputs, FilterError (never TypeError) on bad input, and real sandbox rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import StrictUndefined, Undefined, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from connector.mapping.filters import (
    FILTERS,
    TRUNCATION_MARKER,
    FilterError,
    date_only,
    default_if_empty,
    duration,
    epoch_ms,
    iso_local,
    iso_utc,
    local_time,
    phone,
    redact,
    slug,
    transcript,
    truncate_to,
    yesno,
)
from connector.payload import parse_webhook
from connector.sample import sample_payload

UTC = UTC
CALL = datetime(2026, 11, 26, 19, 30, tzinfo=UTC)
LATE = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)  # 9 pm the day before in New York


def test_filters_are_all_exported() -> None:
    assert set(FILTERS) == {
        "phone",
        "local_time",
        "iso_utc",
        "iso_local",
        "epoch_ms",
        "date_only",
        "duration",
        "transcript",
        "redact",
        "truncate_to",
        "default_if_empty",
        "yesno",
        "slug",
    }
    assert issubclass(FilterError, ValueError)


# --- phone -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("e164", "+12025550143"),
        ("national", "(202) 555-0143"),
        ("international", "+1 202-555-0143"),
        ("digits", "12025550143"),
        ("rfc3966", "tel:+1-202-555-0143"),
    ],
)
def test_phone_styles(style: str, expected: str) -> None:
    assert phone("(202) 555-0143", style) == expected
    assert phone("+12025550143", style) == expected


def test_phone_default_is_e164_us() -> None:
    assert phone("202 555 0143") == "+12025550143"
    assert phone(2025550143) == "+12025550143"


def test_phone_region_applies_to_numbers_without_country_code() -> None:
    assert phone("020 7946 0958", "international", "GB") == "+44 20 7946 0958"
    assert phone("020 7946 0958", "e164", "gb") == "+442079460958"
    assert phone("+442079460958", "national", None) == "020 7946 0958"


def test_phone_none_and_unparseable() -> None:
    assert phone(None) == ""
    assert phone("") == ""
    assert phone("ask for Bob") == "ask for Bob"
    assert phone("123") == "123"  # parseable but not a possible number: shown as sent
    assert phone("+1...") == "+1..."


def test_phone_accepts_the_record_phone_as_dumped_or_model() -> None:
    event = parse_webhook(sample_payload(1))
    assert phone(event.record.phone, "national") == "(202) 555-0143"
    assert phone(event.model_dump()["record"]["phone"], "national") == "(202) 555-0143"
    assert phone({"raw": "garbage", "e164": None}) == "garbage"


@pytest.mark.parametrize("kwargs", [{"style": "pretty"}, {"style": ["e164"]}, {"region": "USA"}, {"region": 1}])
def test_phone_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(FilterError, match="phone"):
        phone("+12025550143", **kwargs)


def test_phone_bad_value_message_does_not_contain_the_number() -> None:
    with pytest.raises(FilterError, match="expected a string, got list") as info:
        phone(["+12025550143"])
    assert "2025550143" not in str(info.value)


# --- date-times --------------------------------------------------------------------------------


def test_local_time_returns_aware_datetime_in_zone() -> None:
    result = local_time(CALL, "America/New_York")
    assert result == CALL
    assert isinstance(result, datetime)
    assert result.isoformat() == "2026-11-26T14:30:00-05:00"


def test_local_time_formats_with_strftime() -> None:
    assert local_time(CALL, "America/New_York", "%Y-%m-%d %H:%M %Z") == "2026-11-26 14:30 EST"
    assert local_time("2026-07-01T12:00:00Z", "America/New_York", "%H:%M %z") == "08:00 -0400"  # DST


def test_local_time_none_zone_is_utc() -> None:
    moment = datetime(2026, 11, 26, 14, 30, tzinfo=ZoneInfo("America/New_York"))
    result = local_time(moment, None)
    assert isinstance(result, datetime)
    assert result.utcoffset() == timedelta(0) and result.hour == 19


def test_local_time_accepts_tzinfo_offsets_and_lead_zones() -> None:
    event = parse_webhook(sample_payload(1))  # record_timezone "UTC-5"
    dumped = event.model_dump(mode="python")["record"]["timezone"]
    for zone in (timezone(timedelta(hours=-5)), "UTC-5", "-05:00", event.record.timezone, dumped):
        assert local_time(CALL, zone, "%H:%M") == "14:30"
    assert local_time(CALL, "Asia/Kolkata", "%H:%M") == "01:00"
    assert local_time(CALL, "+05:30", "%Y-%m-%d %H:%M") == "2026-11-27 01:00"


def test_unusable_lead_zone_falls_back_to_utc_but_a_bad_name_fails() -> None:
    unusable = {"raw": "Mars/Olympus", "kind": None, "name": None, "offset_minutes": None, "problem": "x"}
    assert local_time(CALL, unusable, "%H:%M") == "19:30"
    with pytest.raises(FilterError, match="unknown time zone"):
        local_time(CALL, "America/Springfield")


def test_naive_datetime_is_refused() -> None:
    for name in ("local_time", "iso_utc", "epoch_ms"):
        with pytest.raises(FilterError, match=f"{name}: the date-time has no UTC offset"):
            FILTERS[name](datetime(2026, 11, 26, 19, 30))
    with pytest.raises(FilterError, match="no UTC offset"):
        date_only("2026-11-26T19:30:00", "UTC")


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01T00:00:00Z", 1764185400, ["2026-11-26"]])
def test_bad_datetimes(bad: Any) -> None:
    with pytest.raises(FilterError, match="iso_utc"):
        iso_utc(bad)


def test_iso_utc() -> None:
    assert iso_utc(CALL) == "2026-11-26T19:30:00.000Z"
    assert iso_utc(datetime(2026, 11, 26, 14, 30, 5, 123999, tzinfo=ZoneInfo("America/New_York"))) == (
        "2026-11-26T19:30:05.123Z"  # truncated, never rounded into the next second
    )
    assert iso_utc("2026-11-26T14:30:00-05:00") == "2026-11-26T19:30:00.000Z"
    assert iso_utc(None) == ""


def test_iso_local() -> None:
    assert iso_local(CALL, "America/New_York") == "2026-11-26T14:30:00-05:00"
    assert iso_local(CALL, "+05:30") == "2026-11-27T01:00:00+05:30"
    assert iso_local(CALL, None) == "2026-11-26T19:30:00+00:00"
    assert iso_local(None, "UTC") == ""


def test_epoch_ms() -> None:
    assert epoch_ms(CALL) == 1795721400000
    assert epoch_ms(datetime(1970, 1, 1, 0, 0, 0, 1500, tzinfo=UTC)) == 1
    assert epoch_ms(datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=UTC)) == -1  # floored
    assert epoch_ms("1970-01-01T00:00:01+00:00") == 1000
    assert epoch_ms(None) is None


def test_date_only_is_the_date_in_the_zone_never_the_utc_date() -> None:
    assert date_only(LATE, "UTC-5") == "2026-11-26"
    assert date_only(LATE, "America/New_York") == "2026-11-26"
    assert date_only(LATE, timezone(timedelta(hours=-5))) == "2026-11-26"
    assert date_only(LATE, "UTC") == "2026-11-27"
    assert date_only(datetime(2026, 11, 26, 20, 0, tzinfo=UTC), "+05:30") == "2026-11-27"
    assert date_only("2026-11-27T02:00:00Z", "-05:00") == "2026-11-26"
    assert date_only(None, "UTC") == ""


def test_zone_is_required_for_date_only_and_iso_local() -> None:
    with pytest.raises(FilterError, match="date_only: pass the time zone"):
        date_only(LATE)
    with pytest.raises(FilterError, match="iso_local: pass the time zone"):
        iso_local(LATE)


def test_bad_zone_types_and_formats() -> None:
    with pytest.raises(FilterError, match="expected a time zone name or tzinfo, got int"):
        date_only(LATE, -5)
    with pytest.raises(FilterError, match="not a lead time zone"):
        date_only(LATE, {"offset_minutes": "many"})
    with pytest.raises(FilterError, match="local_time: expected a string"):
        local_time(CALL, "UTC", 5)  # type: ignore[arg-type]


# --- duration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "hms", "human", "ms", "whole"),
    [
        (0, "0:00:00", "0 s", 0, 0),
        (45, "0:00:45", "45 s", 45000, 45),
        (65, "0:01:05", "1 min 5 s", 65000, 65),
        (3600, "1:00:00", "1 h", 3600000, 3600),
        (3720, "1:02:00", "1 h 2 min", 3720000, 3720),
        (3725, "1:02:05", "1 h 2 min 5 s", 3725000, 3725),
        (93600, "26:00:00", "26 h", 93600000, 93600),
        (33.4, "0:00:33", "33 s", 33400, 33),
        (64.5, "0:01:05", "1 min 5 s", 64500, 65),  # half up, not banker's rounding
        (1.0005, "0:00:01", "1 s", 1001, 1),  # decimal half up, not float noise
        (Decimal("59.5"), "0:01:00", "1 min", 59500, 60),
        (timedelta(minutes=1, seconds=5), "0:01:05", "1 min 5 s", 65000, 65),
    ],
)
def test_duration_styles(seconds: Any, hms: str, human: str, ms: int, whole: int) -> None:
    assert duration(seconds) == hms
    assert duration(seconds, "hms") == hms
    assert duration(seconds, "human") == human
    assert duration(seconds, "ms") == ms
    assert duration(seconds, "seconds") == whole


def test_duration_none() -> None:
    assert duration(None) == ""
    assert duration(None, "human") == ""
    assert duration(None, "ms") is None
    assert duration(None, "seconds") is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "negative"),
        (-0.5, "negative"),
        (timedelta(seconds=-1), "negative"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        ("65", "expected a number"),
        (True, "expected a number"),
        ([1], "expected a number"),
    ],
)
def test_duration_bad_values(value: Any, message: str) -> None:
    with pytest.raises(FilterError, match=f"duration: .*{message}"):
        duration(value)


def test_duration_bad_style() -> None:
    with pytest.raises(FilterError, match="unknown style"):
        duration(5, "minutes")
    with pytest.raises(FilterError, match="unknown style"):
        duration(None, ["hms"])


# --- transcript and redact wrappers --------------------------------------------------------------


def test_transcript_filter_wraps_errors() -> None:
    turns = [{"role": "assistant", "content": "Hi <b>"}]
    assert transcript(turns) == "Agent: Hi <b>"
    assert transcript(turns, "html") == "<p><strong>Agent:</strong> Hi &lt;b&gt;</p>"
    assert transcript(None, "text", None, "(none)") == "(none)"
    with pytest.raises(FilterError, match="transcript: unknown transcript format"):
        transcript(turns, "pdf")


def test_redact_filter() -> None:
    assert redact("card 4111 1111 1111 1111") == "card [REDACTED CARD]"
    assert redact("card 4111 1111 1111 1112") == "card 4111 1111 1111 1112"
    assert redact(None) == ""
    assert redact("pin 1234", [{"name": "pin", "pattern": r"\d{4}", "replacement": "****"}]) == "pin ****"
    with pytest.raises(FilterError, match="redact: .*'bad': pattern does not compile"):
        redact("x", [{"name": "bad", "pattern": "("}])
    with pytest.raises(FilterError, match="redact: expected a string"):
        redact(4111111111111111)


# --- truncate_to -------------------------------------------------------------------------------


def test_truncate_short_text_unchanged() -> None:
    assert truncate_to("hello", 50) == "hello"
    assert truncate_to("x" * 50, 50) == "x" * 50
    assert truncate_to(None, 50) == ""


def test_truncate_length_exactly_limit_and_marker_counts_removed() -> None:
    text = "x" * 100
    result = truncate_to(text, 50)
    assert len(result) == 50
    marker = " … [truncated 78 characters]"
    assert result == "x" * 22 + marker
    assert 22 + 78 == len(text)


def test_truncate_when_the_count_gains_a_digit() -> None:
    # Keeping 9 would remove 99 (2 digits) but the marker then needs 1 more char: remove 100.
    text = "y" * 108
    result = truncate_to(text, 10, "[-{removed}]")
    assert result == "yyyy[-104]" and len(result) == 10
    for n in range(60, 140):
        result = truncate_to("z" * n, 20, "…{removed}")
        kept = len(result) - len(result.lstrip("z"))
        assert len(result) == 20 and result.endswith(f"…{n - kept}")


def test_truncate_custom_marker_without_count() -> None:
    assert truncate_to("abcdefghij", 6, "...") == "abc..."
    assert truncate_to("abcdefghij", 3, "...") == "..."
    assert truncate_to("abcdefghij", 0, "") == ""


def test_truncate_never_splits_a_surrogate_pair() -> None:
    pair = "\ud83d\ude00"  # as left by a lenient UTF-16 decoder
    result = truncate_to("ab" + pair + "cdef", 4, "…")
    assert result == "ab…"  # one shorter rather than half a pair
    assert truncate_to("abc" + pair, 4, "…") == "abc…"


def test_truncate_marker_is_not_str_format() -> None:
    marker = "[{removed.__class__}]{0}{}"
    assert truncate_to("x" * 40, 30, marker) == "x" * 4 + marker


def test_truncate_limit_below_marker_always_fails() -> None:
    with pytest.raises(FilterError, match="shorter than the marker"):
        truncate_to("short", 10)
    with pytest.raises(FilterError, match="shorter than the marker"):
        truncate_to("x" * 100, 5, "[{removed} cut]")
    # Room for "[0 cut]" but not for "[99 cut]" / "[100 cut]": the count must fit too.
    with pytest.raises(FilterError, match="limit 8 is too short for the marker"):
        truncate_to("x" * 100, 8, "[{removed} cut]")
    assert truncate_to("x" * 100, 9, "[{removed} cut]") == "x[99 cut]"


@pytest.mark.parametrize("limit", [-1, 2.5, "50", True, None])
def test_truncate_bad_limit(limit: Any) -> None:
    with pytest.raises(FilterError, match="limit must be an integer"):
        truncate_to("text", limit)


def test_truncate_bad_text_and_marker() -> None:
    with pytest.raises(FilterError, match="expected a string, got int"):
        truncate_to(12345, 50)
    with pytest.raises(FilterError, match="expected a string"):
        truncate_to("x", 50, 7)  # type: ignore[arg-type]


@given(st.text(), st.integers(min_value=0, max_value=200), st.sampled_from([TRUNCATION_MARKER, "…", "", "[{removed}]"]))
def test_truncate_properties(text: str, extra: int, marker: str) -> None:
    limit = len(marker.replace("{removed}", str(len(text)))) + extra  # room for the count's digits
    result = truncate_to(text, limit, marker)
    assert len(result) <= limit
    if len(text) <= limit:
        assert result == text
    else:
        assert len(result) == limit  # no surrogates in st.text(), so always exact
        kept = next(
            k for k in range(len(text), -1, -1) if result == text[:k] + marker.replace("{removed}", str(len(text) - k))
        )
        assert result.startswith(text[:kept])


# --- small helpers -----------------------------------------------------------------------------


def test_default_if_empty() -> None:
    assert default_if_empty(None, "n/a") == "n/a"
    assert default_if_empty("", "n/a") == "n/a"
    assert default_if_empty(" \t\n", "n/a") == "n/a"
    assert default_if_empty(Undefined(name="x"), "n/a") == "n/a"
    assert default_if_empty("0", "n/a") == "0"
    assert default_if_empty(0, "n/a") == 0
    assert default_if_empty(False, "n/a") is False


def test_yesno() -> None:
    assert [yesno(True), yesno(False), yesno(None)] == ["Yes", "No", ""]
    assert yesno(None, "Y", "N", "?") == "?"
    assert yesno(False, yes="Y", no="N") == "N"
    for bad in ("Y", 1, 0):
        with pytest.raises(FilterError, match="yesno: expected true, false or null"):
            yesno(bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("What is your budget?", "what_is_your_budget"),
        ("Case Number", "case_number"),
        ("case_number", "case_number"),
        ("  Café  Crème -- brûlée ", "cafe_creme_brulee"),
        ("Straße", "strasse"),
        ("Ørsted Æble", "orsted_aeble"),
        ("ﬁnance", "finance"),
        ("1st choice", "q_1st_choice"),
        ("2024", "q_2024"),
        ("__init__", "init"),
        ("a__b", "a_b"),
        ("", "field"),
        ("???", "field"),
        ("日本語", "field"),
        (None, "field"),
        (42, "q_42"),
    ],
)
def test_slug(value: Any, expected: str) -> None:
    assert slug(value) == expected


def test_slug_max_len() -> None:
    assert slug("What is your budget?", 8) == "what_is"  # no trailing underscore after the cut
    assert slug("1st", 2) == "q"
    assert slug("", 3) == "fie"
    with pytest.raises(FilterError, match="max_len must be an integer >= 1"):
        slug("x", 0)


# --- every filter: FilterError, never TypeError --------------------------------------------------

_WEIRD: list[Any] = [object(), ["x"], {"a": 1}, b"bytes", 3.5, True, -7]
_CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("phone", ()),
    ("local_time", ("UTC",)),
    ("iso_utc", ()),
    ("iso_local", ("UTC",)),
    ("epoch_ms", ()),
    ("date_only", ("UTC",)),
    ("duration", ()),
    ("transcript", ()),
    ("redact", ()),
    ("truncate_to", (40,)),
    ("default_if_empty", ("d",)),
    ("yesno", ()),
    ("slug", ()),
]


_VALUE_RESULTS: dict[str, type] = {"phone": str, "duration": str, "yesno": str, "slug": str}
"""Filters that turn some odd values into text; every other filter refuses them (default_if_empty passes any
non-empty value through unchanged)."""


def _outcome(call: Any) -> Any:
    """What a filter call gave: its value, or the FilterError it raised (anything else propagates and fails)."""
    try:
        return call()
    except FilterError as exc:
        return exc


def _assert_readable(error: FilterError, name: str) -> None:
    """A refusal names its filter first, so the mapping error pinpoints the template."""
    assert str(error).startswith(f"{name}:"), str(error)


@pytest.mark.parametrize(("name", "args"), _CALLS)
@pytest.mark.parametrize("value", _WEIRD, ids=lambda v: type(v).__name__)
def test_weird_values_raise_filter_error_or_give_text(name: str, args: tuple[Any, ...], value: Any) -> None:
    outcome = _outcome(lambda: FILTERS[name](value, *args))
    if isinstance(outcome, FilterError):
        _assert_readable(outcome, name)
    elif name == "default_if_empty":
        assert outcome is value
    else:
        assert isinstance(outcome, _VALUE_RESULTS[name]), (name, value, outcome)


@pytest.mark.parametrize(("name", "args"), _CALLS)
@pytest.mark.parametrize("arg", [object(), ["x"], 3.5], ids=lambda v: type(v).__name__)
def test_weird_arguments_raise_filter_error_or_are_ignored(name: str, args: tuple[Any, ...], arg: Any) -> None:
    sample = {"transcript": [{"role": "user", "content": "x"}], "duration": 5, "yesno": True}.get(name, CALL)
    sample = "+12025550143" if name in ("phone", "redact", "truncate_to", "slug") else sample
    for position in range(3):
        extra = list(args) + [None] * (position + 1 - len(args))
        extra[position] = arg
        try:
            outcome = _outcome(lambda extra=extra: FILTERS[name](sample, *extra))
        except TypeError as exc:  # only "too many arguments", which Jinja reports itself
            assert "positional argument" in str(exc)
            continue
        if isinstance(outcome, FilterError):
            _assert_readable(outcome, name)
        elif name in ("default_if_empty", "yesno"):
            assert any(outcome is given for given in (sample, *extra)) or outcome == "Yes", (name, extra, outcome)
        else:
            assert isinstance(outcome, str), (name, extra, outcome)


# --- through a real sandbox --------------------------------------------------------------------


@pytest.fixture
def env() -> SandboxedEnvironment:
    environment = SandboxedEnvironment(undefined=StrictUndefined)
    environment.filters.update(FILTERS)
    return environment


@pytest.fixture
def context() -> dict[str, Any]:
    payload = sample_payload(7)
    payload["transcript"] = [
        {"role": "Assistant", "content": "Hi, is John available?"},
        {"role": "User", "content": "<script>alert(1)</script> card 4111 1111 1111 1111"},
    ]
    data = parse_webhook(payload).model_dump(mode="python")
    return {**data, "call_time": LATE, "tz": ZoneInfo("America/New_York")}


def test_pipeline_transcript_redact_truncate(env: SandboxedEnvironment, context: dict[str, Any]) -> None:
    out = env.from_string("{{ transcript | transcript('html') | redact | truncate_to(50, '…') }}").render(context)
    assert out == "<p><strong>Agent:</strong> Hi, is John available?…"
    assert len(out) == 50
    full = env.from_string("{{ transcript | transcript('html') | redact }}").render(context)
    assert full == (
        "<p><strong>Agent:</strong> Hi, is John available?</p>\n<p><strong>Lead:</strong> "
        "&lt;script&gt;alert(1)&lt;/script&gt; card [REDACTED CARD]</p>"
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ record.phone | phone('national') }}", "(202) 555-0143"),
        ("{{ record.phone.e164 | phone('international') }}", "+1 202-555-0143"),
        ("{{ call_time | local_time(tz, '%b %d, %I:%M %p') }}", "Nov 26, 09:00 PM"),
        ("{{ call_time | local_time(record.timezone, '%H:%M') }}", "21:00"),
        ("{{ call_time | iso_utc }}", "2026-11-27T02:00:00.000Z"),
        ("{{ call_time | iso_local(record.timezone) }}", "2026-11-26T21:00:00-05:00"),
        ("{{ call_time | epoch_ms }}", "1795744800000"),
        ("{{ call_time | date_only(tz) }}", "2026-11-26"),
        ("{{ call.duration_seconds | duration }} / {{ call.duration_seconds | duration('human') }}", "0:00:33 / 33 s"),
        ("{{ call.duration_seconds | duration('ms') }}", "33000"),
        (
            "{{ transcript | transcript(labels={'assistant': 'Sarah'}) | truncate_to(40, '…') }}",
            "Sarah: Hi, is John available?\nLead: <sc…",
        ),
        ("{{ 'card 4111-1111-1111-1111, SSN 123-45-6789' | redact }}", "card [REDACTED CARD], SSN [REDACTED SSN]"),
        ("{{ record.zip_code | default_if_empty('unknown') }}", "12345"),
        ("{{ meta.get('missing') | default_if_empty('unknown') }}", "unknown"),
        ("{{ message_left | yesno('Left', 'Not left', '?') }}", "Not left"),
        ("twox_q_{{ 'Case Number' | slug }}", "twox_q_case_number"),
    ],
)
def test_each_filter_renders_in_the_sandbox(
    env: SandboxedEnvironment, context: dict[str, Any], template: str, expected: str
) -> None:
    assert env.from_string(template).render(context) == expected


def test_filter_errors_surface_through_the_sandbox(env: SandboxedEnvironment, context: dict[str, Any]) -> None:
    with pytest.raises(FilterError, match="duration: unknown style"):
        env.from_string("{{ call.duration_seconds | duration('fortnights') }}").render(context)
    with pytest.raises(FilterError, match="shorter than the marker"):
        env.from_string("{{ 'x' | truncate_to(5) }}").render(context)


def test_strict_undefined_still_names_the_missing_variable(env: SandboxedEnvironment, context: dict[str, Any]) -> None:
    for name in ("phone", "iso_utc", "duration", "redact", "slug", "yesno", "transcript"):
        with pytest.raises(UndefinedError, match="no_such_field"):
            env.from_string(f"{{{{ record.no_such_field | {name} }}}}").render(context)
    assert env.from_string("{{ record.no_such_field | default_if_empty('-') }}").render(context) == "-"
