"""Normalization of the 2X webhook body: lenient on spelling, strict on shape, never lossy."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connector import _normalize, payload
from connector._normalize import MAX_DEPTH, MAX_LISTED_PROBLEMS
from connector.errors import PayloadError
from connector.payload import (
    END_REASON_ALIASES,
    FAILURE_REASON_ALIASES,
    CallEvent,
    EndReason,
    FailureReason,
    Outcome,
    parse_webhook,
)
from connector.sample import VENDOR_SAMPLE_VERBATIM, sample_payload

CASES = Path(__file__).parent / "cases" / "payloads"


def parse(**overrides: Any) -> CallEvent:
    """The valid sample with some top-level keys replaced."""
    return parse_webhook(sample_payload(1, **overrides))


def with_call(**call: Any) -> dict[str, Any]:
    """The sample with keys of ``call`` replaced (``None`` values are sent as null)."""
    payload = sample_payload(1)
    payload["call"].update(call)
    return payload


def rejected(document: object) -> PayloadError:
    with pytest.raises(PayloadError) as info:
        parse_webhook(document)
    return info.value


def paths(document: object) -> list[str]:
    error = rejected(document)
    assert (error.status, error.code) == (422, "validation_failed")
    return [e["path"] for e in error.errors]


def round_trips(event: CallEvent) -> None:
    assert CallEvent.model_validate_json(event.model_dump_json()) == event


# --- end_reason / failure_reason -------------------------------------------------------------


def test_enum_members_are_the_documented_values() -> None:
    assert [m.value for m in EndReason] == [
        "call_transferred",
        "schedule_call_back",
        "not_interested",
        "do_not_call",
        "wrong_number",
        "end_call",
        "hung_up",
        "voicemail_detected",
        "no_answer",
    ]
    assert [m.value for m in FailureReason] == ["invalid_number", "number_no_service", "unreachable"]
    assert all(m.name == m.value.upper() for m in [*EndReason, *FailureReason])


@pytest.mark.parametrize("reason", list(EndReason))
def test_every_end_reason(reason: EndReason) -> None:
    event = parse_webhook(sample_payload(1, end_reason=reason.value))
    assert event.call.end_reason == Outcome(value=reason.value, raw=reason.value, known=True)
    assert event.flags == []


@pytest.mark.parametrize("reason", list(FailureReason))
def test_every_failure_reason(reason: FailureReason) -> None:
    event = parse_webhook(with_call(failure_reason=reason.value))
    assert event.call.failure_reason == Outcome(value=reason.value, raw=reason.value, known=True)


@pytest.mark.parametrize(("alias", "canonical"), sorted(END_REASON_ALIASES.items()))
def test_every_end_reason_alias(alias: str, canonical: EndReason) -> None:
    for spelling in (alias, alias.upper(), f"  {alias.replace('_', ' ').title()} ", alias.replace("_", "-")):
        outcome = parse_webhook(sample_payload(1, end_reason=spelling)).call.end_reason
        assert outcome == Outcome(value=canonical.value, raw=spelling, known=True)


@pytest.mark.parametrize(("alias", "canonical"), sorted(FAILURE_REASON_ALIASES.items()))
def test_every_failure_reason_alias(alias: str, canonical: FailureReason) -> None:
    for spelling in (alias, alias.upper().replace("_", " ")):
        outcome = parse_webhook(with_call(failure_reason=spelling)).call.failure_reason
        assert outcome == Outcome(value=canonical.value, raw=spelling, known=True)


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("transferred", "call_transferred"),
        ("transfer", "call_transferred"),
        ("call_transfer", "call_transferred"),
        ("callback", "schedule_call_back"),
        ("call_back", "schedule_call_back"),
        ("scheduled_call_back", "schedule_call_back"),
        ("schedule_callback", "schedule_call_back"),
        ("callback_requested", "schedule_call_back"),
        ("dnc", "do_not_call"),
        ("do_not_contact", "do_not_call"),
        ("voicemail", "voicemail_detected"),
        ("voice_mail", "voicemail_detected"),
        ("noanswer", "no_answer"),
        ("hangup", "hung_up"),
        ("hang_up", "hung_up"),
    ],
)
def test_required_end_reason_aliases(alias: str, canonical: str) -> None:
    assert END_REASON_ALIASES[alias] == canonical


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("invalid", "invalid_number"),
        ("not_in_service", "number_no_service"),
        ("number_not_in_service", "number_no_service"),
        ("no_service", "number_no_service"),
    ],
)
def test_required_failure_reason_aliases(alias: str, canonical: str) -> None:
    assert FAILURE_REASON_ALIASES[alias] == canonical


def test_alias_tables_are_read_only_and_normalized() -> None:
    with pytest.raises(TypeError):
        END_REASON_ALIASES["x"] = EndReason.END_CALL  # type: ignore[index]
    for key in [*END_REASON_ALIASES, *FAILURE_REASON_ALIASES]:
        assert key == key.strip().lower() and " " not in key and "-" not in key


def test_unknown_end_reason_is_kept_verbatim_and_flagged() -> None:
    event = parse_webhook(sample_payload(1, end_reason="  Left Message  "))
    assert event.call.end_reason == Outcome(value="Left Message", raw="  Left Message  ", known=False)
    assert event.flags == ["end_reason_unknown"]
    assert parse_webhook(sample_payload(1, end_reason="wrong_person")).call.end_reason.known is False


@pytest.mark.parametrize("value", [None, "", "   "])
def test_absent_end_reason_is_flagged_missing(value: str | None) -> None:
    event = parse_webhook(with_call(end_reason=value))
    assert event.call.end_reason == Outcome(value=None, raw=value, known=False)
    assert event.flags == ["end_reason_missing"]
    payload = sample_payload(1)
    del payload["call"]["end_reason"]
    assert parse_webhook(payload).call.end_reason == Outcome(value=None, raw=None, known=False)


def test_unknown_failure_reason_is_flagged() -> None:
    event = parse_webhook(with_call(failure_reason="Carrier Busy"))
    assert event.call.failure_reason == Outcome(value="Carrier Busy", raw="Carrier Busy", known=False)
    assert event.flags == ["failure_reason_unknown"]


def test_top_level_failure_reason_is_used_when_call_has_none() -> None:
    event = parse(failure_reason="unreachable")
    assert event.call.failure_reason.value == "unreachable"
    assert event.extra == {}
    both = parse_webhook({**with_call(failure_reason="invalid"), "failure_reason": "unreachable"})
    assert both.call.failure_reason.value == "invalid_number"
    assert both.extra == {"failure_reason": "unreachable"}


# --- the vendor sample ------------------------------------------------------------------------


def test_vendor_sample_verbatim_is_not_json_but_its_repair_normalizes() -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(VENDOR_SAMPLE_VERBATIM)
    repaired = VENDOR_SAMPLE_VERBATIM.replace('}\n"transcript"', '},\n"transcript"').replace("},\n...\n]", "}\n]")
    event = parse_webhook(json.loads(repaired))
    assert event.call.end_reason == Outcome(value="call_transferred", raw="transferred", known=True)
    assert (event.id, event.id_raw, event.call.duration_ms) == ("123", 123, 33000)
    assert event.record.phone.raw == "+1..." and event.contact_key is None
    assert event.flags == ["phone_unparseable"]
    assert event.question_fields == {"case_number": "8057"} and event.meta == {"campaign": "fall2024"}


def test_sample_payload_is_valid_and_fresh() -> None:
    first, second = sample_payload(), sample_payload()
    assert isinstance(first["id"], int) and first["id"] != second["id"]
    json.dumps(first, allow_nan=False)
    event = parse_webhook(first)
    assert event.contact_key == "+12025550143" and event.flags == []
    assert event.call.end_reason.value == "call_transferred"
    assert 4 <= len(event.transcript) <= 6
    assert [t.role for t in event.transcript[:2]] == ["user", "assistant"]
    custom = sample_payload("evt-1", end_reason="dnc", record_first_name="Ann", extra_key=1)
    assert (custom["id"], custom["call"]["end_reason"], custom["record_first_name"], custom["extra_key"]) == (
        "evt-1",
        "dnc",
        "Ann",
        1,
    )
    first["call"]["duration"] = 1
    assert sample_payload(1)["call"]["duration"] == 33


# --- booleans, durations, counts, strings ----------------------------------------------------

BOOL_LIKE = [
    (True, True),
    (False, False),
    ("Y", True),
    ("N", False),
    ("y", True),
    (" yes ", True),
    ("NO", False),
    ("true", True),
    ("False", False),
    ("1", True),
    ("0", False),
    (1, True),
    (0, False),
    ("", None),
    (None, None),
]
NOT_BOOL = ["maybe", 2, -1, 1.0, [], {}, "T"]


@pytest.mark.parametrize(("value", "expected"), BOOL_LIKE)
def test_bool_like_fields(value: Any, expected: bool | None) -> None:
    assert parse(message_left=value).message_left is expected
    assert parse_webhook(with_call(answered=value)).call.answered is expected
    assert parse(workflow_end=value).workflow.end is bool(expected)


def test_absent_bools() -> None:
    payload = sample_payload(1)
    for key in ("message_left", "workflow_end"):
        del payload[key]
    del payload["call"]["answered"]
    event = parse_webhook(payload)
    assert (event.message_left, event.workflow.end, event.call.answered) == (None, False, None)


@pytest.mark.parametrize("value", NOT_BOOL)
def test_not_bool_like_is_422(value: Any) -> None:
    assert paths(sample_payload(1, message_left=value, workflow_end=value)) == ["workflow_end", "message_left"]
    assert paths(with_call(answered=value)) == ["call.answered"]


@pytest.mark.parametrize(
    ("value", "seconds", "millis"),
    [
        (33, 33, 33000),
        ("33", 33, 33000),
        (" 33.5 ", 33.5, 33500),
        (33.5, 33.5, 33500),
        (33.0, 33, 33000),
        (0, 0, 0),
        ("1e3", 1000, 1000000),
        (0.0015, 0.0015, 2),
        ("", None, None),
        (None, None, None),
    ],
)
def test_duration(value: Any, seconds: float | None, millis: int | None) -> None:
    call = parse_webhook(with_call(duration=value)).call
    assert (call.duration_seconds, call.duration_ms) == (seconds, millis)
    assert type(call.duration_seconds) is type(seconds)


@pytest.mark.parametrize(
    "value",
    [-1, -0.5, "-1", "abc", "1_000", "0x10", "nan", "inf", "1e999", "9" * 5000, True, math.nan, math.inf, [], {}],
)
def test_bad_duration_is_422(value: Any) -> None:
    assert paths(with_call(duration=value)) == ["call.duration"]


@pytest.mark.parametrize(("value", "expected"), [(3, 3), ("3", 3), (" 4 ", 4), (0, 0), ("", None), (None, None)])
def test_workflow_counts(value: Any, expected: int | None) -> None:
    workflow = parse(workflow_day=value, workflow_call=value).workflow
    assert (workflow.day, workflow.call) == (expected, expected)


@pytest.mark.parametrize("value", [-1, "-2", "3.5", 3.5, True, "x", "9" * 5000, [], {}])
def test_bad_workflow_counts_are_422(value: Any) -> None:
    assert paths(sample_payload(1, workflow_day=value, workflow_call=value)) == ["workflow_day", "workflow_call"]


def test_identifier_strings_are_stripped_and_numbers_stringified() -> None:
    event = parse(
        record_zip_code=" 02134 ",
        record_first_name=" Ann ",
        record_last_name="",
        workflow_key=123,
        call={"telnyx_call_control_id": 987, "end_reason": "dnc"},
    )
    assert (event.record.zip_code, event.record.first_name, event.record.last_name) == ("02134", "Ann", None)
    assert (event.workflow.key, event.call.telnyx_call_control_id) == ("123", "987")
    assert parse(record_zip_code=12345.0).record.zip_code == "12345"
    assert paths(sample_payload(1, record_first_name=True, record_zip_code={})) == [
        "record_zip_code",
        "record_first_name",
    ]


@pytest.mark.parametrize(
    ("value", "expected", "flags"),
    [
        ("outbound", "outbound", []),
        (" Outbound ", "outbound", []),
        ("INBOUND", "inbound", []),
        ("Sideways", "sideways", ["direction_unknown"]),
        (None, None, []),
        ("", None, []),
    ],
)
def test_direction(value: str | None, expected: str | None, flags: list[str]) -> None:
    event = parse_webhook(with_call(call_direction=value))
    assert (event.call.direction, event.flags) == (expected, flags)


# --- ids and the 400/422 boundary -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [(123, "123"), (0, "0"), (-5, "-5"), (" abc ", "abc"), ("00123", "00123")]
)
def test_event_id(value: int | str, expected: str) -> None:
    event = parse_webhook(sample_payload(value))
    assert (event.id, event.id_raw) == (expected, value)
    round_trips(event)


@pytest.mark.parametrize("value", [None, "", "   ", True, False, 1.5, 1.0, {}, [], ["1"]])
def test_bad_event_id_is_422(value: Any) -> None:
    assert paths(sample_payload(1, id=value)) == ["id"]


@pytest.mark.parametrize("document", [[], [{"id": 1}], "x", "", 1, 1.5, None, True])
def test_non_object_is_400(document: object) -> None:
    error = rejected(document)
    assert (error.status, error.code, error.errors) == (400, "not_an_object", [])


@pytest.mark.parametrize("document", [{}, {"foo": 1}, {"meta": {}, "transcript": []}])
def test_object_without_id_or_call_is_400(document: dict[str, Any]) -> None:
    error = rejected(document)
    assert (error.status, error.code) == (400, "not_a_call_record")


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"id": 1}, ["call"]),
        ({"id": None}, ["id", "call"]),
        ({"call": {"end_reason": "dnc"}}, ["id"]),
        ({"id": 1, "call": None}, ["call"]),
        ({"id": 1, "call": "transferred"}, ["call"]),
        ({"id": 1, "call": [{"end_reason": "dnc"}]}, ["call"]),
        ({"id": 1, "call": {"end_reason": ["dnc"], "failure_reason": 3}}, ["call.end_reason", "call.failure_reason"]),
        ({"id": 1, "call": {}, "question_fields": "8057", "meta": ["fall2024"]}, ["question_fields", "meta"]),
        ({"id": 1, "call": {}, "transcript": "Hello?"}, ["transcript"]),
        ({"id": 1, "call": {}, "transcript": [{"role": "user"}, "Hello?", None]}, ["transcript[1]", "transcript[2]"]),
        (
            {"id": 1, "call": {}, "transcript": [{}, {}, {"role": 5, "content": ["x"]}]},
            ["transcript[2].role", "transcript[2].content"],
        ),
        (
            {"id": 1, "call": {}, "record_phone_number": 1.5, "record_timezone": True},
            ["record_phone_number", "record_timezone"],
        ),
        ({"id": 1, "call": {"call_direction": 1}}, ["call.call_direction"]),
    ],
)
def test_shape_problems_are_422_with_paths(document: dict[str, Any], expected: list[str]) -> None:
    assert paths(document) == expected


def test_all_problems_are_listed_without_personal_data() -> None:
    document = {
        "id": "",
        "call": {"duration": "Jane Doe"},
        "message_left": "+12025550143",
        "record_first_name": ["Jane"],
        "transcript": [{"content": {"text": "my SSN"}}],
    }
    error = rejected(document)
    assert [e["path"] for e in error.errors] == [
        "id",
        "call.duration",
        "record_first_name",
        "transcript[0].content",
        "message_left",
    ]
    assert error.detail.startswith("5 field problem(s)")
    for text in [error.detail, *(e["message"] for e in error.errors)]:
        assert "Jane" not in text and "2025550143" not in text and "SSN" not in text


def test_problem_list_is_bounded() -> None:
    error = rejected({"id": 1, "call": {}, "transcript": [1] * (MAX_LISTED_PROBLEMS + 5)})
    assert len(error.errors) == MAX_LISTED_PROBLEMS + 1
    assert error.errors[-1] == {"path": "<root>", "message": "5 more problem(s) not listed"}


# --- phones ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "e164", "valid", "region"),
    [
        ("+12025550143", "+12025550143", True, "US"),
        ("(202) 555-0143", "+12025550143", True, "US"),
        ("202.555.0143", "+12025550143", True, "US"),
        ("+15555550123", "+15555550123", False, None),  # fictional 555 area: possible, not valid
        ("555-555-0123", "+15555550123", False, None),
        ("+44 20 7946 0958", "+442079460958", True, "GB"),
    ],
)
def test_phone_normalizes(raw: str, e164: str, valid: bool, region: str | None) -> None:
    event = parse(record_phone_number=raw)
    assert event.record.phone.model_dump() == {
        "raw": raw,
        "e164": e164,
        "valid": valid,
        "region": region,
        "problem": None,
    }
    assert event.contact_key == e164 and "phone_unparseable" not in event.flags


def _numbers_around_every_example() -> list[str]:
    """Each region's example number of each type, and neighbours that tip some of them into invalid: the last
    digit changed, one digit more or fewer, and a leading digit swapped (another area code or range)."""
    numbers: set[str] = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in phonenumbers.PhoneNumberType.values():
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            prefix = f"+{example.country_code}"
            national = e164.removeprefix(prefix)
            numbers.update(
                {
                    e164,
                    e164[:-1] + str((int(e164[-1]) + 1) % 10),
                    e164 + "7",
                    e164[:-1],
                    prefix + str((int(national[0]) + 1) % 10) + national[1:],
                }
            )
    return sorted(numbers)


def test_phone_validity_shortcut_agrees_with_is_valid_number() -> None:
    # _normalize.phone skips the second metadata match where region_code_for_number has already made it: the
    # shortcut must say exactly what phonenumbers.is_valid_number says, for every region and near miss.
    numbers = _numbers_around_every_example()
    assert len(numbers) > 4_000
    disagreements = []
    outcomes = set()
    for raw in numbers:
        fields = _normalize.phone(raw, "US")
        if fields["problem"] is not None:
            continue
        expected = phonenumbers.is_valid_number(phonenumbers.parse(raw, "US"))
        outcomes.add(
            (expected, len(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[phonenumbers.parse(raw).country_code]) > 1)
        )
        if fields["valid"] != expected:
            disagreements.append(raw)
    assert disagreements == []
    assert outcomes == {(True, True), (True, False), (False, True), (False, False)}  # every branch was taken


def test_phone_as_integer_and_other_region() -> None:
    phone = parse(record_phone_number=12025550143).record.phone
    assert (phone.raw, phone.e164) == ("12025550143", "+12025550143")
    uk = parse_webhook(sample_payload(1, record_phone_number="020 7946 0958"), default_region="GB")
    assert (uk.contact_key, uk.record.phone.region) == ("+442079460958", "GB")
    with pytest.raises(ValueError):
        parse_webhook(sample_payload(1), default_region="XX")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("call me maybe", "unparseable"),
        ("+1...", "unparseable"),
        ("12345", "not a possible number"),
        ("+1 202 555 01431234", "not a possible number"),
    ],
)
def test_bad_phone_is_kept_and_flagged(raw: str, problem: str) -> None:
    event = parse(record_phone_number=raw)
    assert event.record.phone.model_dump() == {
        "raw": raw,
        "e164": None,
        "valid": False,
        "region": None,
        "problem": problem,
    }
    assert event.flags == ["phone_unparseable"] and event.contact_key is None


@pytest.mark.parametrize("value", [None, "", "  "])
def test_missing_phone_is_flagged(value: str | None) -> None:
    event = parse(record_phone_number=value)
    assert (event.record.phone.raw, event.record.phone.problem) == (value, "missing")
    assert event.flags == ["phone_missing"]


# --- time zones ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "name", "minutes"),
    [
        ("UTC-5", "UTC-05:00", -300),
        ("UTC+5:30", "UTC+05:30", 330),
        ("UTC-03:30", "UTC-03:30", -210),
        ("UTC+05:30", "UTC+05:30", 330),
        ("GMT-5", "UTC-05:00", -300),
        ("UTC", "UTC+00:00", 0),
        ("Z", "UTC+00:00", 0),
        ("-05:00", "UTC-05:00", -300),
        ("+0530", "UTC+05:30", 330),
        ("UTC\u22125", "UTC-05:00", -300),
        ("utc + 14:00", "UTC+14:00", 840),
        ("UTC-12", "UTC-12:00", -720),
        ("+00:00", "UTC+00:00", 0),
        ("-0", "UTC+00:00", 0),
        ("UTC+5:45", "UTC+05:45", 345),
        ("UTC-9:07", "UTC-09:07", -547),
    ],
)
def test_fixed_offset_timezones(raw: str, name: str, minutes: int) -> None:
    zone = parse(record_timezone=raw).record.timezone
    assert zone.model_dump() == {
        "raw": raw,
        "kind": "fixed_offset",
        "name": name,
        "offset_minutes": minutes,
        "problem": None,
    }
    tz = zone.tzinfo()
    assert tz == timezone(timedelta(minutes=minutes))
    assert tz is not None and tz.tzname(None) == name


def test_numeric_timezone_is_read_as_hours() -> None:
    assert parse(record_timezone=-5).record.timezone.offset_minutes == -300


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("America/New_York", "America/New_York"),
        ("america/new_york", "America/New_York"),
        ("Asia/Kolkata", "Asia/Kolkata"),
        ("EST", "EST"),
    ],
)
def test_iana_timezones(raw: str, name: str) -> None:
    zone = parse(record_timezone=raw).record.timezone
    assert (zone.kind, zone.name, zone.offset_minutes, zone.problem) == ("iana", name, None, None)
    assert zone.tzinfo() == ZoneInfo(name)


def test_iana_timezone_follows_dst() -> None:
    tz = parse(record_timezone="America/New_York").record.timezone.tzinfo()
    assert tz is not None
    noon_utc_jan = datetime(2025, 1, 15, 17, 0, tzinfo=UTC).astimezone(tz)
    noon_utc_jul = datetime(2025, 7, 15, 17, 0, tzinfo=UTC).astimezone(tz)
    assert (noon_utc_jan.hour, noon_utc_jul.hour) == (12, 13)
    assert noon_utc_jan.utcoffset() == timedelta(hours=-5)
    assert noon_utc_jul.utcoffset() == timedelta(hours=-4)


@pytest.mark.parametrize(
    "raw",
    [
        "Eastern",
        "PST",
        "UTC5",
        "+530",
        "UTC+15",
        "UTC-14:30",
        "UTC+5:60",
        "localtime",
        "../etc/passwd",
        "America/",
        "UTC-5 EST",
        "5",
        "\x00",
    ],
)
def test_unparseable_timezone_is_kept_and_flagged(raw: str) -> None:
    event = parse(record_timezone=raw)
    zone = event.record.timezone
    assert (zone.raw, zone.kind, zone.name, zone.offset_minutes) == (raw, None, None, None)
    assert zone.problem and zone.tzinfo() is None
    assert event.flags == ["timezone_unparseable"]


@pytest.mark.parametrize("value", [None, "", " "])
def test_missing_timezone_is_flagged(value: str | None) -> None:
    event = parse(record_timezone=value)
    assert (event.record.timezone.problem, event.flags) == ("missing", ["timezone_missing"])
    assert event.record.timezone.tzinfo() is None


# --- transcript ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "role"),
    [
        *[
            (r, "user")
            for r in ("User", "human", "CUSTOMER", "lead", "caller", "callee", "contact", "record", " user ")
        ],
        *[(r, "assistant") for r in ("Assistant", "AI", "agent", "bot", "2X")],
        ("System", "system"),
        ("tool", "tool"),
    ],
)
def test_transcript_roles(raw: str, role: str) -> None:
    event = parse(transcript=[{"role": raw, "content": "x"}])
    assert (event.transcript[0].role, event.transcript[0].role_raw) == (role, raw)
    assert event.flags == []


def test_transcript_order_content_and_odd_roles() -> None:
    turns = [
        {"role": "User", "content": "  Hello?\n"},
        {"role": "Moderator", "content": 42},
        {"content": None},
        {"role": None, "content": 1.5},
        {"role": "", "ts": [1]},
        {"role": "Assistant", "content": "Bye"},
    ]
    event = parse(transcript=turns)
    assert [(t.role, t.role_raw, t.content, t.extra) for t in event.transcript] == [
        ("user", "User", "  Hello?\n", {}),
        ("moderator", "Moderator", "42", {}),
        ("unknown", None, "", {}),
        ("unknown", None, "1.5", {}),
        ("unknown", "", "", {"ts": [1]}),
        ("assistant", "Assistant", "Bye", {}),
    ]
    assert event.flags == ["transcript_role_unknown"]
    round_trips(event)


@pytest.mark.parametrize("value", [None, []])
def test_empty_transcript(value: list[Any] | None) -> None:
    assert parse(transcript=value).transcript == []
    payload = sample_payload(1)
    del payload["transcript"]
    assert parse_webhook(payload).transcript == []


# --- kept-as-sent data -----------------------------------------------------------------------


def test_unknown_keys_and_kept_objects() -> None:
    payload = sample_payload(
        1, record_email="a@example.com", question_fields=None, meta=None, custom={"nested": [1, 2.5, None, {"x": True}]}
    )
    payload["call"].update({"recording_url": "https://example.com/r.mp3", "cost": 0.12})
    event = parse_webhook(payload)
    assert event.extra == {"record_email": "a@example.com", "custom": {"nested": [1, 2.5, None, {"x": True}]}}
    assert event.call.extra == {"recording_url": "https://example.com/r.mp3", "cost": 0.12}
    assert (event.question_fields, event.meta) == ({}, {})
    round_trips(event)


def test_values_that_cannot_round_trip_are_422() -> None:
    document = sample_payload(
        1, meta={"a": [math.nan], "b c": "\ud800"}, x={"\udc00": 1}, question_fields={"q": -math.inf}
    )
    document["call"]["odd"] = {1, 2}
    document["\ud800"] = 1
    assert sorted(paths(document)) == sorted(
        ["call.odd", "question_fields.q", 'meta["b c"]', "meta.a[0]", "x", "<root>"]
    )
    assert paths(sample_payload(1, record_first_name="\ud800")) == ["record_first_name"]
    # flat objects and transcript turns take shortcuts for plain ASCII; what is not plain is still checked
    flat = sample_payload(1, question_fields={"ok": "Zoë 😀", "q": "\udc01"}, meta={"k\ud800": "v"})
    flat["transcript"] = [{"role": "user", "content": "né \ud83d"}, {"role": "\udfff", "content": "fine"}]
    assert sorted(paths(flat)) == sorted(["question_fields.q", "meta", "transcript[0].content", "transcript[1].role"])


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_limit() -> None:
    event = parse(meta={"deep": nested(MAX_DEPTH - 2)})  # the root and meta are 2 levels
    round_trips(event)
    assert paths(sample_payload(1, meta={"deep": nested(MAX_DEPTH - 1)})) == ["meta.deep" + "[0]" * (MAX_DEPTH - 2)]
    deepest = json.loads('{"id": 1, "call": {}, "x": ' + "[" * 800 + "]" * 800 + "}")
    assert paths(deepest) == ["x" + "[0]" * (MAX_DEPTH - 1)]


def test_event_is_immutable_and_closed() -> None:
    event = parse()
    with pytest.raises(ValidationError):
        event.id = "2"
    with pytest.raises(ValidationError):
        Outcome(value="x", raw="x", known=False, extra=1)  # type: ignore[call-arg]


@pytest.mark.parametrize("case", sorted(CASES.glob("*.json")), ids=lambda p: p.stem)
def test_case_files(case: Path) -> None:
    spec = json.loads(case.read_text())
    if "error" in spec:
        error = rejected(spec["document"])
        assert (error.status, error.code) == (spec["error"]["status"], spec["error"]["code"])
        assert sorted(e["path"] for e in error.errors) == sorted(spec["error"]["paths"])
        return
    event = parse_webhook(spec["document"])
    dumped = event.model_dump(mode="json")
    for dotted, expected in spec["expect"].items():
        value: Any = dumped
        for part in dotted.split("."):
            value = value[part]
        assert value == expected, dotted
    round_trips(event)


# --- fuzzing ---------------------------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=()), max_size=12)  # includes lone surrogates
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | _text
    | st.sampled_from(
        [
            "",
            " ",
            "Y",
            "n",
            "0",
            "-1",
            "33.5",
            "nan",
            "UTC-5",
            "+12025550143",
            "transferred",
            "User",
            "America/New_York",
        ]
    )
)
json_values = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4), max_leaves=20
)
_top_keys = st.sampled_from(
    [
        "id",
        "call",
        "question_fields",
        "message_left",
        "record_phone_number",
        "record_zip_code",
        "record_timezone",
        "workflow_day",
        "workflow_end",
        "meta",
        "transcript",
        "failure_reason",
        "other",
    ]
)
_call_keys = st.sampled_from(
    ["end_reason", "failure_reason", "answered", "duration", "call_direction", "telnyx_call_control_id", "other"]
)
_turns = st.lists(st.dictionaries(st.sampled_from(["role", "content", "x"]), json_values) | json_values, max_size=4)


_plausible = st.none() | st.sampled_from(
    ["", "Y", "no", 1, 0, 3, "7", 33.5, "UTC+5:30", "dnc", "(202) 555-0143", {}, [], {"k": "v"}]
)


@st.composite
def payload_like(draw: st.DrawFn) -> dict[str, Any]:
    """The sample with random keys replaced by random or plausible JSON, to reach both outcomes."""
    payload = sample_payload(draw(st.integers(1, 10**6)))
    values = _plausible | json_values
    payload.update(draw(st.dictionaries(_top_keys, values, max_size=4)))
    if draw(st.booleans()):
        payload["call"] = {"end_reason": "dnc", **draw(st.dictionaries(_call_keys, values))}
    if draw(st.booleans()):
        payload["transcript"] = draw(_turns)
    return payload


def check_any(document: object) -> None:
    try:
        event = parse_webhook(document)
    except PayloadError as error:
        assert error.status in (400, 422)
        assert all(set(e) == {"path", "message"} and e["path"] for e in error.errors)
        assert (error.status == 422) == bool(error.errors)
        return
    assert event.flags == sorted(set(event.flags))
    round_trips(event)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_fuzz_arbitrary_json(document: Any) -> None:
    check_any(document)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(payload_like())
def test_fuzz_payload_like(document: dict[str, Any]) -> None:
    check_any(document)


_field_text = (
    _text
    | st.from_regex(r"(UTC|GMT)?\s?[+\-\u2212]?\s?[0-9:]{0,6}", fullmatch=True)
    | st.from_regex(r"\+?[0-9 ()\-.]{0,20}", fullmatch=True)
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_field_text, _field_text, _field_text, st.sampled_from(["US", "GB", "IN", "ZZ"]))
def test_fuzz_text_fields(phone: str, zone: str, reason: str, region: str) -> None:
    """Phone and zone parsers see arbitrary text; they must flag, never crash."""
    document = sample_payload(1, record_phone_number=phone, record_timezone=zone, end_reason=reason)
    try:
        event = parse_webhook(document, default_region=region)
    except PayloadError as error:
        assert {e["path"] for e in error.errors} <= {"record_phone_number", "record_timezone", "call.end_reason"}
        return
    round_trips(event)
    assert (event.record.timezone.tzinfo() is None) == (event.record.timezone.kind is None)


_turn_values = json_values | st.sampled_from(["User", "Assistant", "AI ", "Zoë 😀", "\ud800", "", None])


@settings(max_examples=500)
@given(st.dictionaries(st.sampled_from(["role", "content", "speaker", "\udc00"]), _turn_values, max_size=3))
def test_fuzz_plain_turn_shortcut_is_the_checked_turn(item: dict[Any, Any]) -> None:
    """A turn taken without checks (`_plain_turn`) is exactly what the checked path makes of it, with no problem."""
    plain = payload._plain_turn(item)
    problems = _normalize.Problems()
    checked = payload._checked_turn(item, "transcript[0]", problems)
    if plain is not None:
        assert (plain, problems.listed()) == (checked, [])
