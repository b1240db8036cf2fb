"""Golden tests: what each documented end_reason x failure_reason does in both default mappings,
checked field by field against the outcome table in docs/mapping-guide.md."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from connector.default_mappings import default_mapping_path
from connector.mapping.loader import load_mapping
from connector.mapping.planner import plan_event
from connector.payload import EndReason, FailureReason, parse_webhook
from connector.plan import CloseCallbacks, CreateActivity, CreateTask, Plan, ResolveContact, UpdateContact
from connector.sample import sample_payload

CALL_TIME = datetime(2026, 11, 26, 19, 30, tzinfo=UTC)  # Thursday 14:30 in UTC-5
HUBSPOT = load_mapping(default_mapping_path("hubspot"))
SALESFORCE = load_mapping(default_mapping_path("salesforce"))
GUID = HUBSPOT.spec.constants["dispositions"]

# end_reason -> (bundle, hs_lead_status, hs_call_status, disposition key, Lead Status)
BY_END_REASON = {
    "do_not_call": ("do_not_call", "UNQUALIFIED", "COMPLETED", "connected", "Closed - Not Converted"),
    "wrong_number": ("wrong_number", "UNQUALIFIED", "COMPLETED", "wrong_number", "Closed - Not Converted"),
    "call_transferred": ("transferred", "CONNECTED", "COMPLETED", "connected", "Working - Contacted"),
    "schedule_call_back": ("callback", "IN_PROGRESS", "COMPLETED", "connected", "Working - Contacted"),
    "not_interested": ("not_interested", "UNQUALIFIED", "COMPLETED", "connected", "Closed - Not Converted"),
    "end_call": ("conversation_ended", "CONNECTED", "COMPLETED", "connected", "Working - Contacted"),
    "hung_up": ("hung_up", "ATTEMPTED_TO_CONTACT", "COMPLETED", "connected", "Working - Contacted"),
    "voicemail_detected": ("voicemail", "ATTEMPTED_TO_CONTACT", "NO_ANSWER", "no_answer", "Working - Contacted"),
    "no_answer": ("no_answer", "ATTEMPTED_TO_CONTACT", "NO_ANSWER", "no_answer", "Working - Contacted"),
}
# A failure_reason decides, except for do-not-call and wrong number, which always win.
BY_FAILURE = {
    "invalid_number": ("invalid_number", "UNQUALIFIED", "FAILED", "wrong_number", "Closed - Not Converted"),
    "number_no_service": ("invalid_number", "UNQUALIFIED", "FAILED", "wrong_number", "Closed - Not Converted"),
    "unreachable": ("unreachable", "ATTEMPTED_TO_CONTACT", "FAILED", "no_answer", "Working - Contacted"),
}
RANKS = {
    "do_not_call": 100,
    "wrong_number": 90,
    "invalid_number": 80,
    "transferred": 50,
    "callback": 50,
    "not_interested": 50,
    "conversation_ended": 50,
    "hung_up": 20,
    "voicemail": 10,
    "voicemail_left": 10,
    "no_answer": 10,
    "unreachable": 10,
}
COMBINATIONS = list(itertools.product([e.value for e in EndReason], [None, *[f.value for f in FailureReason]]))


def expected(end_reason: str, failure: str | None) -> tuple[str, str, str, str, str]:
    if failure is None or end_reason in ("do_not_call", "wrong_number"):
        return BY_END_REASON[end_reason]
    return BY_FAILURE[failure]


def payload(end_reason: str, failure: str | None, **overrides: object) -> dict:
    document = sample_payload(4242, end_reason=end_reason, workflow_end=False, message_left="N")
    if failure:
        document["call"].update(failure_reason=failure, answered=False, duration=0)
    document.update(overrides)
    return document


def actions(plan: Plan, kind: type) -> list:
    return [a for a in plan.actions if isinstance(a, kind)]


def contact_fields(plan: Plan) -> dict[str, object]:
    updates = actions(plan, UpdateContact)
    return {f.property: f.value for u in updates for f in u.fields}


@pytest.mark.parametrize(("end_reason", "failure"), COMBINATIONS)
def test_hubspot_outcome_table(end_reason: str, failure: str | None) -> None:
    bundle, lead_status, call_status, disposition, _ = expected(end_reason, failure)
    document = payload(end_reason, failure)
    plan = plan_event(parse_webhook(document), HUBSPOT, sink="hubspot", call_time=CALL_TIME)

    assert plan.outcome.bundle == bundle
    assert plan.outcome.rank == RANKS[bundle]
    assert [type(a).__name__ for a in plan.actions] == (
        ["ResolveContact", "CreateActivity", "UpdateContact"]
        + (["CreateTask"] if bundle == "callback" else [])
        + (["CloseCallbacks"] if bundle == "do_not_call" else [])
    )
    resolve = actions(plan, ResolveContact)[0]
    assert [(m.by, getattr(m, "e164", None)) for m in resolve.match] == [("phone", "+12025550143")]
    assert resolve.create_properties == {
        "firstname": "John",
        "lastname": "Doe",
        "phone": "+12025550143",
        "zip": "12345",
    }

    call = actions(plan, CreateActivity)[0]
    assert call.object == "calls" and call.idempotency_key == "2x-4242"
    props = call.properties
    assert props["hs_call_external_id"] == "2x-4242"
    assert props["hs_timestamp"] == "2026-11-26T19:30:00.000Z"
    assert props["hs_call_status"] == call_status
    assert props["hs_call_disposition"] == GUID[disposition]
    assert props["hs_call_direction"] == "OUTBOUND"
    assert props["hs_call_duration"] == (0 if failure else 33_000)
    assert props["hs_call_to_number"] == "+12025550143"
    label = {b.name: b.label for b in HUBSPOT.spec.outcomes}[bundle]
    assert props["hs_call_title"] == f"2X call: {label}"
    assert "<strong>Lead:</strong> Hello?" in props["hs_call_body"]
    assert props["hs_call_body"].startswith(
        "<p><strong>Answers</strong></p><ul><li><strong>case_number:</strong> 8057</li></ul><p><strong>Lead:"
    )

    fields = contact_fields(plan)
    assert fields["hs_lead_status"] == lead_status
    assert fields["twox_last_call_outcome"] == bundle
    assert fields["twox_last_call_at"] == "2026-11-26T19:30:00.000Z"
    assert fields["twox_q_case_number"] == "8057"
    assert ("twox_do_not_call" in fields) == (bundle == "do_not_call") == plan.do_not_call
    assert ("twox_wrong_number" in fields) == (bundle == "wrong_number")
    assert ("twox_number_invalid" in fields) == (bundle == "invalid_number")
    assert all(v is True for k, v in fields.items() if k in ("twox_do_not_call", "twox_wrong_number"))
    assert "twox_workflow_ended" not in fields
    assert all(t.unless_do_not_call == ["twox_do_not_call"] for t in actions(plan, CreateTask))
    [update] = actions(plan, UpdateContact)  # a callback's own fields are left out for a do-not-call contact
    assert (update.withheld_if_do_not_call, update.unless_do_not_call) == (
        (["hs_lead_status", "twox_callback_due"], ["twox_do_not_call"]) if bundle == "callback" else ([], [])
    )
    closes = actions(plan, CloseCallbacks)
    assert [(c.object, c.idempotency_property, c.set_properties, c.key) for c in closes] == (
        [("tasks", "twox_task_key", {"hs_task_status": "COMPLETED"}, "2x-4242:close-callbacks")]
        if bundle == "do_not_call"
        else []
    )
    rules = {f.property: f.rule for u in actions(plan, UpdateContact) for f in u.fields}
    assert rules["hs_lead_status"] == "ranked"
    assert rules.get("twox_do_not_call", "sticky_true") == "sticky_true"


@pytest.mark.parametrize(("end_reason", "failure"), COMBINATIONS)
def test_salesforce_outcome_table(end_reason: str, failure: str | None) -> None:
    bundle, _, _, _, lead_status = expected(end_reason, failure)
    plan = plan_event(parse_webhook(payload(end_reason, failure)), SALESFORCE, sink="sf", call_time=CALL_TIME)

    assert plan.outcome.bundle == bundle
    resolve = actions(plan, ResolveContact)[0]
    assert resolve.create_object == "Lead"
    assert resolve.create_properties["LastName"] == "Doe" and resolve.create_properties["Company"] == "[not provided]"
    assert [(m.objects, m.fields) for m in resolve.match] == [(["Contact", "Lead"], ["Phone", "MobilePhone"])]

    task = actions(plan, CreateActivity)[0]
    props = task.properties
    assert task.object == "Task" and props["CallObject"] == "2x-4242"
    assert (props["TaskSubtype"], props["Status"], props["CallType"]) == ("Call", "Completed", "Outbound")
    assert props["CallDurationInSeconds"] == (0 if failure else 33)
    assert props["ActivityDate"] == "2026-11-26"
    label = {b.name: b.label for b in SALESFORCE.spec.outcomes}[bundle]
    assert props["CallDisposition"] == label and props["Subject"] == f"Call: {label}"
    assert props["Description"].startswith(
        "Answers:\n- case_number: 8057\n\nLead: Hello?\n2X agent: Hi, is John available?"
    )

    updates = {f.property: f for u in actions(plan, UpdateContact) for f in u.fields}
    assert (updates["Status"].value, updates["Status"].objects, updates["Status"].rule) == (
        lead_status,
        ["Lead"],
        "ranked",
    )
    assert ("DoNotCall" in updates) == (bundle == "do_not_call") == plan.do_not_call
    if plan.do_not_call:
        assert updates["DoNotCall"].value is True and updates["DoNotCall"].rule == "sticky_true"
    assert ("TwoX_Wrong_Number__c" in updates) == (bundle == "wrong_number")
    follow_ups = actions(plan, CreateTask)
    assert len(follow_ups) == (1 if bundle == "callback" else 0)
    assert all(t.unless_do_not_call == ["DoNotCall"] for t in follow_ups)
    assert [(u.withheld_if_do_not_call, u.unless_do_not_call) for u in actions(plan, UpdateContact)] == [
        (["Status", "TwoX_Callback_Due__c"], ["DoNotCall"]) if bundle == "callback" else ([], [])
    ]
    closes = actions(plan, CloseCallbacks)
    assert [(c.object, c.idempotency_property, c.set_properties, c.close_as) for c in closes] == (
        [("Task", "CallObject", {"Status": "Completed"}, "completed")] if bundle == "do_not_call" else []
    )


def test_voicemail_with_a_message_left_is_logged_as_left_voicemail() -> None:
    document = payload("voicemail_detected", None, message_left="Y")
    hubspot = plan_event(parse_webhook(document), HUBSPOT, sink="h", call_time=CALL_TIME)
    assert hubspot.outcome.bundle == "voicemail_left"
    assert actions(hubspot, CreateActivity)[0].properties["hs_call_disposition"] == GUID["left_voicemail"]
    assert actions(hubspot, CreateActivity)[0].properties["hs_call_status"] == "COMPLETED"


def test_workflow_end_marks_the_contact_in_both_crms() -> None:
    document = payload("no_answer", None, workflow_end=True)
    for mapping, prop in ((HUBSPOT, "twox_workflow_ended"), (SALESFORCE, "TwoX_Workflow_Ended__c")):
        plan = plan_event(parse_webhook(document), mapping, sink="x", call_time=CALL_TIME)
        assert plan.outcome.also == ["workflow_ended"]
        assert contact_fields(plan)[prop] is True


def test_callback_task_is_due_when_the_lead_asked_in_their_time_zone() -> None:
    document = payload(
        "schedule_call_back", None, question_fields={"callback_time": "tomorrow 3pm"}, record_timezone="UTC-5"
    )
    hubspot = plan_event(parse_webhook(document), HUBSPOT, sink="h", call_time=CALL_TIME)
    task = actions(hubspot, CreateTask)[0]
    assert task.due.isoformat() == "2026-11-27T15:00:00-05:00"
    assert task.due_local_date == "2026-11-27"
    assert task.properties["hs_timestamp"] == "2026-11-27T20:00:00.000Z"
    assert task.properties["twox_task_key"] == "2x-4242:task:callback" == task.idempotency_key
    assert task.properties["hs_task_type"] == "CALL"
    assert contact_fields(hubspot)["twox_callback_due"] == "2026-11-27T20:00:00.000Z"

    salesforce = plan_event(parse_webhook(document), SALESFORCE, sink="s", call_time=CALL_TIME)
    follow_up = actions(salesforce, CreateTask)[0].properties
    assert (follow_up["ActivityDate"], follow_up["ReminderDateTime"]) == ("2026-11-27", "2026-11-27T20:00:00.000Z")
    assert (follow_up["Status"], follow_up["CallObject"]) == ("Not Started", "2x-4242:task:callback")


def test_callback_without_a_usable_request_is_next_business_day_at_ten_lead_time() -> None:
    friday_evening = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)  # Fri 18:00 in UTC-5
    document = payload("schedule_call_back", None, question_fields={"callback_time": "whenever"})
    plan = plan_event(parse_webhook(document), HUBSPOT, sink="h", call_time=friday_evening)
    assert actions(plan, CreateTask)[0].due.isoformat() == "2026-11-30T10:00:00-05:00"


def test_unknown_end_reason_uses_the_fallback_and_changes_no_status() -> None:
    document = payload("line_busy", None)
    plan = plan_event(parse_webhook(document), HUBSPOT, sink="h", call_time=CALL_TIME)
    assert plan.outcome.bundle == "unrecognized" and plan.outcome.matched_by == "fallback"
    assert "hs_lead_status" not in contact_fields(plan)
    assert actions(plan, CreateActivity)[0].properties["hs_call_title"] == "2X call: unrecognized outcome line_busy"
    assert contact_fields(plan)["twox_last_call_outcome"] == "unrecognized"


@pytest.mark.parametrize(("answered", "disposition"), [(True, "connected"), (False, None), (None, None)])
def test_an_unknown_end_reason_is_connected_only_when_answered(answered: bool | None, disposition: str | None) -> None:
    """It was logged "Connected" whatever happened, inflating a portal's connect rate."""
    document = payload("line_busy", None)
    document["call"]["answered"] = answered
    plan = plan_event(parse_webhook(document), HUBSPOT, sink="h", call_time=CALL_TIME)
    written = actions(plan, CreateActivity)[0].properties["hs_call_disposition"]
    assert written == (HUBSPOT.spec.constants["dispositions"][disposition] if disposition else "")


def test_crm_ids_in_meta_are_tried_first() -> None:
    document = payload("hung_up", None, meta={"hubspot_contact_id": "501", "salesforce_lead_id": "00Q000000000001"})
    hubspot = actions(plan_event(parse_webhook(document), HUBSPOT, sink="h", call_time=CALL_TIME), ResolveContact)[0]
    assert [(m.by, getattr(m, "id", None)) for m in hubspot.match] == [("id", "501"), ("phone", None)]
    salesforce = actions(
        plan_event(parse_webhook(document), SALESFORCE, sink="s", call_time=CALL_TIME), ResolveContact
    )[0]
    assert [(m.by, getattr(m, "object", None), getattr(m, "id", None)) for m in salesforce.match][0] == (
        "id",
        "Lead",
        "00Q000000000001",
    )


def test_a_lead_without_a_name_gets_the_required_salesforce_fallbacks() -> None:
    document = payload("hung_up", None, record_first_name=None, record_last_name="")
    resolve = actions(plan_event(parse_webhook(document), SALESFORCE, sink="s", call_time=CALL_TIME), ResolveContact)[0]
    assert resolve.create_properties["LastName"] == "Unknown (2X)"
    assert "FirstName" not in resolve.create_properties


def test_plans_are_deterministic_and_round_trip_json() -> None:
    for end_reason, failure in COMBINATIONS:
        event = parse_webhook(payload(end_reason, failure))
        first = plan_event(event, HUBSPOT, sink="h", call_time=CALL_TIME)
        assert first == plan_event(event, HUBSPOT, sink="h", call_time=CALL_TIME)
        assert Plan.model_validate_json(first.model_dump_json()) == first


def test_long_transcripts_are_cut_to_the_field_limit_with_a_marker() -> None:
    turns = [{"role": "User", "content": "word " * 2000} for _ in range(10)]
    plan = plan_event(
        parse_webhook(payload("hung_up", None, transcript=turns)), SALESFORCE, sink="s", call_time=CALL_TIME
    )
    description = actions(plan, CreateActivity)[0].properties["Description"]
    assert len(description) == 32000
    assert description.endswith("characters]") and "truncated" in description[-60:]


def test_card_numbers_in_transcripts_are_redacted() -> None:
    turns = [{"role": "User", "content": "my card is 4111 1111 1111 1111 and my SSN 123-45-6789"}]
    plan = plan_event(parse_webhook(payload("hung_up", None, transcript=turns)), HUBSPOT, sink="h", call_time=CALL_TIME)
    body = actions(plan, CreateActivity)[0].properties["hs_call_body"]
    assert "4111" not in body and "123-45-6789" not in body
    assert "[REDACTED CARD]" in body and "[REDACTED SSN]" in body


def test_question_names_become_valid_distinct_property_names() -> None:
    answers = {
        "Preferred Time!": "mornings",
        "Бюджет": "1000",
        "Срок": "май",
        "Budget": "5k",
        "budget ": "6k",
        "case_number": 8057,
        "consent": True,
    }
    plan = plan_event(
        parse_webhook(payload("hung_up", None, question_fields=answers)), HUBSPOT, sink="h", call_time=CALL_TIME
    )
    fields = contact_fields(plan)
    questions = {k: v for k, v in fields.items() if k.startswith("twox_q_")}
    assert questions["twox_q_preferred_time"] == "mornings"
    assert questions["twox_q_case_number"] == "8057" and questions["twox_q_consent"] == "true"
    assert questions["twox_q_budget"] == "5k"
    assert any("'budget '" in w and "already set" in w for w in plan.warnings)
    hashed = [k for k in questions if k.startswith("twox_q_field_")]
    assert len(hashed) == 2 and sorted(questions[k] for k in hashed) == ["1000", "май"]
    assert all(k == k.lower() and k.replace("_", "").isalnum() for k in questions)


def test_do_not_call_is_known_at_the_door_for_custom_mappings() -> None:
    from connector.mapping.priority import sets_do_not_call

    assert sets_do_not_call(parse_webhook(payload("do_not_call", "unreachable")), HUBSPOT)
    assert not sets_do_not_call(parse_webhook(payload("not_interested", None)), HUBSPOT)
    custom = HUBSPOT.spec.model_copy(
        update={
            "outcomes": [
                b.model_copy(update={"contact": {**b.contact, "twox_do_not_call": True}})
                if b.name == "not_interested"
                else b
                for b in HUBSPOT.spec.outcomes
            ]
        }
    )
    from connector.mapping.loader import LoadedMapping

    mapping = LoadedMapping(custom, "custom.yaml", "x", {})
    assert sets_do_not_call(parse_webhook(payload("not_interested", None)), mapping)


def test_a_card_number_or_ssn_answered_aloud_is_masked_on_the_contact_as_in_the_notes() -> None:
    """The call notes masked them; the catch-all `twox_q_{name}` property got them verbatim."""
    answers = {"card": "4111 1111 1111 1111", "ssn": "my ssn is 123-45-6789", "case_number": "8057"}
    plan = plan_event(
        parse_webhook(payload("hung_up", None, question_fields=answers)), HUBSPOT, sink="h", call_time=CALL_TIME
    )
    fields = contact_fields(plan)
    assert fields["twox_q_card"] == "[REDACTED CARD]" and fields["twox_q_ssn"] == "my ssn is [REDACTED SSN]"
    assert fields["twox_q_case_number"] == "8057"


def test_a_callback_note_says_when_the_lead_time_zone_was_a_guess() -> None:
    """ "Central" fell back to America/New_York silently: the rep saw 10:00 EST and no hint it might be 9:00 for the
    lead."""
    for zone, guessed in (("Central", True), ("America/Chicago", False)):
        document = payload("schedule_call_back", None, record_timezone=zone)
        [task] = actions(plan_event(parse_webhook(document), HUBSPOT, sink="h", call_time=CALL_TIME), CreateTask)
        said = "the lead's time zone was not known: America/New_York assumed" in task.properties["hs_task_body"]
        assert said == guessed, task.properties["hs_task_body"]


def test_an_opt_out_answer_is_known_at_the_door_too() -> None:
    from connector.mapping.loader import LoadedMapping
    from connector.mapping.priority import sets_do_not_call
    from connector.mapping.schema import QuestionRule

    questions = HUBSPOT.spec.question_fields.model_copy(
        update={"map": {"opt_out": QuestionRule(property="TWOX_DO_NOT_CALL", transform="bool")}}
    )
    mapping = LoadedMapping(HUBSPOT.spec.model_copy(update={"question_fields": questions}), "q.yaml", "x", {})
    said = {answer: payload("hung_up", None, question_fields={"opt_out": answer}) for answer in ("yes", "no")}
    assert sets_do_not_call(parse_webhook(said["yes"]), mapping)
    assert not sets_do_not_call(parse_webhook(said["no"]), mapping)


def test_long_answers_and_transcripts_keep_the_answers_and_cut_the_transcript() -> None:
    turns = [{"role": "User", "content": "word " * 2000} for _ in range(10)]
    answers = {"case_number": "8057", "budget": "5k\nLead: forged line"}
    plan = plan_event(
        parse_webhook(payload("hung_up", None, transcript=turns, question_fields=answers)),
        SALESFORCE,
        sink="s",
        call_time=CALL_TIME,
    )
    description = actions(plan, CreateActivity)[0].properties["Description"]
    assert len(description) == 32000 and "truncated" in description[-60:]
    assert description.startswith("Answers:\n- case_number: 8057\n- budget: 5k\n    Lead: forged line\n\nLead: word")


def test_answers_are_escaped_and_redacted_in_hubspot_notes() -> None:
    answers = {"note": "<script>x</script> card 4111 1111 1111 1111"}
    plan = plan_event(
        parse_webhook(payload("hung_up", None, question_fields=answers)), HUBSPOT, sink="h", call_time=CALL_TIME
    )
    body = actions(plan, CreateActivity)[0].properties["hs_call_body"]
    assert "<script>" not in body and "&lt;script&gt;" in body
    assert "4111" not in body and "[REDACTED CARD]" in body


def test_a_call_without_answers_has_the_transcript_alone() -> None:
    plan = plan_event(
        parse_webhook(payload("hung_up", None, question_fields={})), SALESFORCE, sink="s", call_time=CALL_TIME
    )
    assert actions(plan, CreateActivity)[0].properties["Description"].startswith("Lead: Hello?")


def test_do_not_call_rules_are_configurable() -> None:
    from connector.mapping.loader import LoadedMapping

    event = parse_webhook(payload("do_not_call", None))
    spec = SALESFORCE.spec.model_copy(
        update={
            "do_not_call": SALESFORCE.spec.do_not_call.model_copy(
                update={"close_as": "cancelled", "closed_status": "Cancelled"}
            )
        }
    )
    [close] = actions(
        plan_event(event, LoadedMapping(spec, "x.yaml", "x", {}, SALESFORCE.values), sink="s", call_time=CALL_TIME),
        CloseCallbacks,
    )
    assert (close.set_properties, close.subject_property, close.subject_prefix) == (
        {"Status": "Cancelled"},
        "Subject",
        "Cancelled (do not call): ",
    )
    off = SALESFORCE.spec.model_copy(
        update={
            "do_not_call": SALESFORCE.spec.do_not_call.model_copy(
                update={"close_open_callbacks": False, "skip_callbacks": False}
            )
        }
    )
    mapping = LoadedMapping(off, "x.yaml", "x", {}, SALESFORCE.values)
    assert actions(plan_event(event, mapping, sink="s", call_time=CALL_TIME), CloseCallbacks) == []
    callback = plan_event(parse_webhook(payload("schedule_call_back", None)), mapping, sink="s", call_time=CALL_TIME)
    assert actions(callback, CreateTask)[0].unless_do_not_call == []


def test_a_bundle_that_sets_do_not_call_plans_no_callback_task() -> None:
    from connector.mapping.loader import LoadedMapping

    spec = HUBSPOT.spec.model_copy(
        update={
            "outcomes": [
                b.model_copy(update={"tasks": ["callback"]}) if b.name == "do_not_call" else b
                for b in HUBSPOT.spec.outcomes
            ]
        }
    )
    mapping = LoadedMapping(spec, "x.yaml", "x", {}, HUBSPOT.values)
    plan = plan_event(parse_webhook(payload("do_not_call", None)), mapping, sink="h", call_time=CALL_TIME)
    assert actions(plan, CreateTask) == [] and len(actions(plan, CloseCallbacks)) == 1
    assert "task callback not planned: this call sets do-not-call" in plan.warnings
