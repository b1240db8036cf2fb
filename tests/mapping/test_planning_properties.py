"""Properties of normalization + planning over generated payloads (hypothesis):
no accepted payload makes planning raise anything but a recorded MappingError; do-not-call never
appears as false; callback tasks are always due inside the lead's business hours and weekdays."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings

from connector.default_mappings import default_mapping_path
from connector.errors import MappingError, PayloadError
from connector.mapping.loader import load_mapping
from connector.mapping.planner import plan_event
from connector.payload import parse_webhook
from connector.plan import CreateTask, UpdateContact
from tests.support.payload_strategies import call_times, payloads

MAPPINGS = {crm: load_mapping(default_mapping_path(crm)) for crm in ("hubspot", "salesforce")}
DNC_PROPERTIES = {"twox_do_not_call", "DoNotCall"}
WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


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
