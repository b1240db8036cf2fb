"""Hypothesis strategies for 2X post-call payloads: every field the vendor documents, in the shapes and mistakes
senders actually produce (numeric strings, odd time zones, unknown end reasons, missing parts)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from connector.payload import EndReason, FailureReason

offsets = (
    st.integers(-12 * 4, 14 * 4)
    .map(lambda q: q * 15)
    .map(lambda m: f"UTC{'+' if m >= 0 else '-'}{abs(m) // 60}:{abs(m) % 60:02d}")
)
zones = (
    st.sampled_from(
        [
            "UTC-5",
            "UTC+5:30",
            "UTC-03:30",
            "UTC+05:45",
            "America/New_York",
            "America/St_Johns",
            "Europe/London",
            "Australia/Sydney",
            "Asia/Kolkata",
            "Pacific/Auckland",
            "UTC-5:00",
            "nonsense",
            "",
        ]
    )
    | offsets
    | st.none()
)
requests_ = st.sampled_from(
    [
        "tomorrow 3pm",
        "Monday at 10am",
        "10:30",
        "friday",
        "in 2 hours",
        "asap",
        "2026-03-08T02:30",
        "Saturday 8pm",
        "next week",
        "",
        "7am",
        "11pm tonight",
    ]
) | st.text(max_size=20)
text = st.text(max_size=30)
answers = st.dictionaries(
    st.text(min_size=1, max_size=12),
    st.one_of(text, st.integers(), st.booleans(), st.none(), st.lists(text, max_size=3)),
    max_size=4,
)
payloads = st.fixed_dictionaries(
    {
        "id": st.integers(1, 10**9) | st.text(min_size=1, max_size=20).filter(str.strip),
        "call": st.fixed_dictionaries(
            {"end_reason": st.sampled_from([e.value for e in EndReason] + ["transferred", "busy", "", "DNC"])},
            optional={
                "failure_reason": st.sampled_from([f.value for f in FailureReason] + ["weird"]) | st.none(),
                "answered": st.booleans() | st.none(),
                "duration": st.integers(0, 10_000) | st.floats(0, 10_000, allow_nan=False),
                "call_direction": st.sampled_from(["outbound", "inbound", "sideways"]),
            },
        ),
    },
    optional={
        "question_fields": answers.flatmap(
            lambda a: st.fixed_dictionaries({"callback_time": requests_}).map(lambda c: {**a, **c})
        ),
        "message_left": st.sampled_from(["Y", "N", "y", "n", True, False, None]),
        "record_phone_number": st.sampled_from(["+12025550143", "(202) 555-0143", "garbage", "+44 20 7946 0018", ""]),
        "record_first_name": text,
        "record_last_name": text,
        "record_zip_code": st.sampled_from(["12345", "", None]),
        "record_timezone": zones,
        "workflow_end": st.booleans(),
        "meta": st.dictionaries(
            st.sampled_from(["hubspot_contact_id", "salesforce_contact_id", "salesforce_lead_id", "campaign"]),
            st.text(max_size=10) | st.integers(),
            max_size=3,
        ),
        "transcript": st.lists(
            st.fixed_dictionaries({"role": st.sampled_from(["User", "Assistant", "bot", "x"]), "content": text}),
            max_size=5,
        ),
    },
)
call_times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC))
