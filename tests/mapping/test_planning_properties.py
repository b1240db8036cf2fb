"""Properties of normalization + planning over generated payloads (hypothesis):
no accepted payload makes planning raise anything but a recorded MappingError; do-not-call never
appears as false; callback tasks are always due inside the lead's business hours and weekdays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.default_mappings import default_mapping_path
from connector.errors import MappingError, PayloadError
from connector.mapping.loader import load_mapping
from connector.mapping.planner import plan_event
from connector.payload import EndReason, FailureReason, parse_webhook
from connector.plan import CreateTask, UpdateContact

MAPPINGS = {crm: load_mapping(default_mapping_path(crm)) for crm in ("hubspot", "salesforce")}
DNC_PROPERTIES = {"twox_do_not_call", "DoNotCall"}
WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}

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


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=payloads, call_time=call_times)
def test_planning_accepted_payloads_never_crashes_and_keeps_the_safety_rules(
    document: dict, call_time: datetime
) -> None:
    try:
        event = parse_webhook(document)
    except PayloadError:
        return
    for crm, mapping in MAPPINGS.items():
        try:
            plan = plan_event(event, mapping, sink=crm, call_time=call_time)
        except MappingError:
            continue  # recorded and replayable: allowed, never a crash
        fields = [f for a in plan.actions if isinstance(a, UpdateContact) for f in a.fields]
        for field in fields:
            if field.property in DNC_PROPERTIES:
                assert field.value is True and field.rule == "sticky_true"
        assert plan.do_not_call == (event.call.end_reason.value == "do_not_call")
        policy = mapping.spec.callback
        zone = event.record.timezone.tzinfo() or ZoneInfo(policy.fallback_timezone)
        for task in (a for a in plan.actions if isinstance(a, CreateTask)):
            local = task.due.astimezone(zone)
            assert task.due.tzinfo is not None
            assert policy.business_start <= local.time().replace(tzinfo=None) < policy.business_end
            assert local.weekday() in {WEEKDAYS[d] for d in policy.weekdays}
            assert task.due >= call_time + timedelta(minutes=policy.min_lead_minutes)
            assert task.due_local_date == local.date().isoformat()
        assert plan == plan_event(event, mapping, sink=crm, call_time=call_time)
