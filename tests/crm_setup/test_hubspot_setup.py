"""`crm-setup` and the schema check for HubSpot, with the real hubspot-api-client v12 against the HubSpot emulator.

A fresh emulated portal (``seed_custom_properties=False``) lacks the connector's ``twox_*`` properties, exactly
like a customer's portal on day one; the tests read the result back through the emulator's properties API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hubspot
import pytest

from connector.config import HubSpotSinkSettings, StoreSettings
from connector.default_mappings import default_mapping_path
from connector.emulators.hubspot.server import HubSpotEmulator
from connector.ledger import Ledger
from connector.mapping.loader import LoadedMapping, load_mapping
from connector.mapping.planner import plan_event
from connector.ops.crm_setup import (
    plan_hubspot_setup,
    run_hubspot_setup,
    seen_question_names,
    validate_against_hubspot,
)
from connector.payload import parse_webhook
from connector.plan import UpdateContact
from connector.receiver.ingest import content_hash
from connector.sample import sample_payload
from connector.sinks.base import ExecutionContext
from connector.sinks.hubspot.setup import GROUP_LABEL, GROUP_NAME
from connector.sinks.hubspot.sink import HubSpotSink
from tests.support.net import free_port

TOKEN = "crm-setup-test-token"
MAPPING = load_mapping(default_mapping_path("hubspot"))
CONTACT_PROPERTIES = {  # what the default mapping writes in the connector's namespace, with HubSpot's types
    "twox_do_not_call": ("bool", "booleancheckbox"),
    "twox_wrong_number": ("bool", "booleancheckbox"),
    "twox_number_invalid": ("bool", "booleancheckbox"),
    "twox_workflow_ended": ("bool", "booleancheckbox"),
    "twox_last_call_outcome": ("string", "text"),
    "twox_last_call_at": ("datetime", "date"),
    "twox_callback_due": ("datetime", "date"),
}
HINT = "run `connector crm-setup --config FILE --sink hubspot`"  # no config file loaded in these tests


class _OpenGate:
    """The sink's rate gate, never waiting (the emulator's limit is raised for these tests)."""

    def wait(self, cost: int = 1) -> None:
        return None


@pytest.fixture
def portal() -> Iterator[HubSpotEmulator]:
    """A fresh portal: standard properties only, like a customer's on the day they install the connector."""
    with HubSpotEmulator(
        tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None, seed_custom_properties=False
    ) as running:
        yield running


def settings_for(portal: HubSpotEmulator | str, token: str = TOKEN, **extra: object) -> HubSpotSinkSettings:
    url = portal if isinstance(portal, str) else portal.url
    return HubSpotSinkSettings(type="hubspot", access_token=token, base_url=url, **extra)  # type: ignore[arg-type]


def edited_mapping(tmp_path: Path, old: str, new: str) -> LoadedMapping:
    """A copy of the default mapping with one line changed (the way a customer edits theirs)."""
    text = default_mapping_path("hubspot").read_text()
    assert old in text
    path = tmp_path / "mapping.yaml"
    path.write_text(text.replace(old, new, 1))
    return load_mapping(path)


# -- crm-setup -----------------------------------------------------------------------------------------


def test_setup_creates_the_connector_properties_with_their_types(portal: HubSpotEmulator) -> None:
    report = run_hubspot_setup(settings_for(portal), MAPPING)

    assert report.ok and report.problems == [] and not report.dry_run
    contacts = portal.properties("contacts")
    for name, (type_, field_type) in CONTACT_PROPERTIES.items():
        assert (contacts[name]["type"], contacts[name]["fieldType"], contacts[name]["groupName"]) == (
            type_,
            field_type,
            GROUP_NAME,
        ), name
    assert [o["value"] for o in contacts["twox_do_not_call"]["options"]] == ["true", "false"]
    task_key = portal.properties("tasks")["twox_task_key"]
    assert (task_key["type"], task_key["fieldType"], task_key["groupName"]) == ("string", "text", GROUP_NAME)
    assert sorted(report.created) == sorted([f"contacts.{n}" for n in CONTACT_PROPERTIES] + ["tasks.twox_task_key"])
    # A new portal has no `twox` group on either object: both are created before their properties.
    assert report.created_groups == ["contacts", "tasks"]
    client = hubspot.Client.create(access_token=TOKEN, host=portal.url)
    for obj in ("contacts", "tasks"):
        groups = {g.name: g.label for g in client.crm.properties.groups_api.get_all(obj).results}
        assert groups[GROUP_NAME] == GROUP_LABEL
    # Standard properties are never created, and the mapping's standard ones exist: nothing to report.
    assert not [name for name in portal.properties("calls") if name.startswith("twox_")]


def test_a_second_run_creates_nothing_and_only_reads(portal: HubSpotEmulator) -> None:
    run_hubspot_setup(settings_for(portal), MAPPING, extra_questions=["case_number"])
    portal.reset_counters()

    again = run_hubspot_setup(settings_for(portal), MAPPING, extra_questions=["case_number"])

    assert again.created == [] and again.created_groups == [] and again.problems == []
    assert sorted(again.already_present) == sorted(
        [f"contacts.{n}" for n in CONTACT_PROPERTIES] + ["contacts.twox_q_case_number", "tasks.twox_task_key"]
    )
    methods = [r.method for r in portal.request_log]
    assert methods and set(methods) == {"GET"}
    assert len(methods) == 3  # one property listing per object: calls, contacts, tasks
    assert again.render() == "Every custom property the mapping of sink 'hubspot' writes exists: nothing to do."


def test_question_names_become_text_properties(portal: HubSpotEmulator) -> None:
    report = run_hubspot_setup(
        settings_for(portal), MAPPING, extra_questions=["case_number", "Budget (USD)?", "Kündigungsgrund"]
    )

    contacts = portal.properties("contacts")
    for name in ("twox_q_case_number", "twox_q_budget_usd", "twox_q_kundigungsgrund"):
        assert (contacts[name]["type"], contacts[name]["fieldType"]) == ("string", "text"), name
        assert f"contacts.{name}" in report.created
    assert contacts["twox_q_budget_usd"]["label"] == "2X answer: Budget (USD)?"


def test_a_property_the_question_map_names_is_created_like_on_salesforce(
    portal: HubSpotEmulator, tmp_path: Path
) -> None:
    """The mapping guide says crm-setup creates every `question_fields.map` field; on HubSpot it refused any name
    outside `twox_*` (while Salesforce created it), and `status` told to run crm-setup for it all the same."""
    mapping = edited_mapping(
        tmp_path,
        "  map: {}",
        "  map: {industry: {property: industry_vertical}, seats: {property: seats, transform: number}}",
    )
    report = run_hubspot_setup(settings_for(portal), mapping)
    contacts = portal.properties("contacts")
    assert report.ok, report.render()
    assert (contacts["industry_vertical"]["type"], contacts["seats"]["type"]) == ("string", "number")
    assert {"contacts.industry_vertical", "contacts.seats"} <= set(report.created)


def test_a_409_on_create_counts_as_already_there(portal: HubSpotEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A person (or a concurrent run) creates a property between our listing and our create."""
    from hubspot.crm.properties import PropertyCreate

    from connector.sinks.hubspot.setup_api import HubSpotSchemaApi

    listing = HubSpotSchemaApi.properties

    def list_then_race(api: HubSpotSchemaApi, object_type: str) -> list[dict[str, object]]:
        found = listing(api, object_type)
        if object_type == "contacts" and "twox_last_call_at" not in portal.properties("contacts"):
            hubspot.Client.create(access_token=TOKEN, host=portal.url).crm.properties.core_api.create(
                "contacts",
                PropertyCreate(
                    name="twox_last_call_at",
                    label="Last 2X call",
                    type="datetime",
                    field_type="date",
                    group_name="contactinformation",
                ),
            )
        return found

    monkeypatch.setattr(HubSpotSchemaApi, "properties", list_then_race)
    report = run_hubspot_setup(settings_for(portal), MAPPING)

    assert report.ok and "contacts.twox_last_call_at" in report.already_present
    assert "contacts.twox_last_call_at" not in report.created and len(report.created) == len(CONTACT_PROPERTIES)
    assert portal.properties("contacts")["twox_last_call_at"]["label"] == "Last 2X call"  # theirs is kept


def test_the_plan_reports_a_connector_property_of_the_wrong_type() -> None:
    """Someone created `twox_do_not_call` as a number by hand: creating it again is impossible, say so."""
    wrong = {"name": "twox_do_not_call", "type": "number", "fieldType": "number", "options": []}
    plan = plan_hubspot_setup(MAPPING, {"contacts": [wrong]}, groups_by_object={"contacts": {GROUP_NAME}})

    assert "contacts.twox_do_not_call" in plan.present
    assert "twox_do_not_call" not in [s.name for s in plan.create]
    assert plan.groups == ["tasks"]  # contacts has its group; calls get no connector property
    [problem] = [p for p in plan.problems if p.property == "twox_do_not_call"]
    assert problem.level == "error" and "'true' written to a number property" in problem.message


def test_dry_run_lists_what_it_would_create_and_writes_nothing(portal: HubSpotEmulator) -> None:
    report = run_hubspot_setup(settings_for(portal), MAPPING, extra_questions=["case_number"], dry_run=True)

    assert report.dry_run and "contacts.twox_q_case_number" in report.created and "tasks" in report.created_groups
    assert portal.request_count(method="POST") == 0
    assert report.render().splitlines()[0] == "Would create the connector's HubSpot property group on: contacts, tasks"
    assert "twox_do_not_call" not in portal.properties("contacts")


def test_setup_reports_but_never_creates_a_property_outside_its_namespace(
    portal: HubSpotEmulator, tmp_path: Path
) -> None:
    mapping = edited_mapping(tmp_path, "hs_call_title:", "hs_call_titel:")

    report = run_hubspot_setup(settings_for(portal), mapping)

    assert not report.ok
    [problem] = report.problems
    assert (problem.level, problem.object, problem.property) == ("error", "calls", "hs_call_titel")
    assert "did you mean hs_call_title" in problem.message
    assert "hs_call_titel" not in portal.properties("calls")


def test_a_rejected_token_is_a_clear_error(portal: HubSpotEmulator) -> None:
    from connector.ops.crm_setup import SchemaAccessError

    with pytest.raises(SchemaAccessError, match=r"token rejected \(401\).*sinks\.hubspot\.access_token"):
        run_hubspot_setup(settings_for(portal, token="wrong"), MAPPING)


# -- validate against the portal ------------------------------------------------------------------------


def test_validate_on_a_fresh_portal_asks_for_crm_setup(portal: HubSpotEmulator) -> None:
    findings = validate_against_hubspot(settings_for(portal), MAPPING)

    missing = {(f.object, f.property) for f in findings}
    assert missing == {("contacts", n) for n in CONTACT_PROPERTIES} | {("tasks", "twox_task_key")}
    assert all(f.level == "error" and HINT in f.message for f in findings)
    do_not_call = next(f for f in findings if f.property == "twox_do_not_call")
    assert do_not_call.places == ("outcomes[0].contact.twox_do_not_call",)


def test_validate_after_setup_reports_nothing(portal: HubSpotEmulator) -> None:
    run_hubspot_setup(settings_for(portal), MAPPING, extra_questions=["case_number"])

    assert validate_against_hubspot(settings_for(portal), MAPPING, question_names=["case_number"]) == []
    # A question 2X started asking after the last set-up: its property is missing.
    [late] = validate_against_hubspot(settings_for(portal), MAPPING, question_names=["case_number", "new_one"])
    assert (late.level, late.property) == ("error", "twox_q_new_one") and HINT in late.message


def test_validate_flags_an_enumeration_literal_that_is_not_an_option(portal: HubSpotEmulator, tmp_path: Path) -> None:
    run_hubspot_setup(settings_for(portal), MAPPING)
    mapping = edited_mapping(
        tmp_path, "contact: {hs_lead_status: CONNECTED}", "contact: {hs_lead_status: QUALIFIED_LEAD}"
    )

    [finding] = validate_against_hubspot(settings_for(portal), mapping)

    assert (finding.level, finding.object, finding.property) == ("error", "contacts", "hs_lead_status")
    assert "'QUALIFIED_LEAD' is not an option of contacts.hs_lead_status" in finding.message
    assert "NEW, OPEN, IN_PROGRESS" in finding.message and "CONNECTED" in finding.message
    assert "outcomes[4].contact.hs_lead_status" in finding.places


def test_validate_hints_at_case_for_options_and_checks_tasks_and_calls(portal: HubSpotEmulator, tmp_path: Path) -> None:
    run_hubspot_setup(settings_for(portal), MAPPING)
    mapping = edited_mapping(tmp_path, "hs_task_priority: HIGH", "hs_task_priority: High")

    [finding] = validate_against_hubspot(settings_for(portal), mapping)

    assert finding.property == "hs_task_priority" and "did you mean HIGH?" in finding.message


def test_validate_flags_an_unknown_standard_property(portal: HubSpotEmulator, tmp_path: Path) -> None:
    run_hubspot_setup(settings_for(portal), MAPPING)
    mapping = edited_mapping(tmp_path, "hs_call_title:", "hs_call_titel:")

    [finding] = validate_against_hubspot(settings_for(portal), mapping)

    assert (finding.level, finding.object, finding.property) == ("error", "calls", "hs_call_titel")
    assert "did you mean hs_call_title?" in finding.message and HINT not in finding.message


def test_validate_flags_read_only_properties_and_type_mismatches(portal: HubSpotEmulator, tmp_path: Path) -> None:
    run_hubspot_setup(settings_for(portal), MAPPING)
    text = (
        default_mapping_path("hubspot")
        .read_text()
        .replace(
            "contact: {twox_do_not_call: true, hs_lead_status: UNQUALIFIED, twox_callback_due: null}",
            "contact: {twox_do_not_call: true, hs_lead_status: UNQUALIFIED, hs_email_domain: x, "
            "num_contacted_notes: 1, jobtitle: true, twox_last_call_at: soon}",
            1,
        )
    )
    (tmp_path / "m.yaml").write_text(text)

    findings = {
        f.property: f for f in validate_against_hubspot(settings_for(portal), load_mapping(tmp_path / "m.yaml"))
    }

    assert "read-only" in findings["hs_email_domain"].message and findings["hs_email_domain"].level == "error"
    assert "read-only" in findings["num_contacted_notes"].message
    assert findings["jobtitle"].level == "warning"  # true into a text property: stored as the text "true"
    assert findings["twox_last_call_at"].level == "error" and "'soon'" in findings["twox_last_call_at"].message


def test_validate_on_an_unreachable_portal_is_one_warning() -> None:
    findings = validate_against_hubspot(settings_for(f"http://127.0.0.1:{free_port()}"), MAPPING)

    assert len(findings) == 1
    assert findings[0].level == "warning" and "HubSpot not reachable: schema not checked" in findings[0].message


def test_validate_with_a_rejected_token_is_one_error(portal: HubSpotEmulator) -> None:
    [finding] = validate_against_hubspot(settings_for(portal, token="wrong"), MAPPING)
    assert finding.level == "error" and "token rejected" in finding.message


# -- question names from the ledger ---------------------------------------------------------------------


def test_seen_question_names_reads_the_stored_events(tmp_path: Path) -> None:
    ledger = Ledger.open(StoreSettings(url=f"sqlite:///{tmp_path / 'ledger.db'}"))
    try:
        for event_id, questions in [(1, {"case_number": "1"}), (2, {"Budget?": "9", "case_number": "2"}), (3, {})]:
            document = sample_payload(event_id, question_fields=questions)
            ledger.record_event(
                parse_webhook(document),
                body=json.dumps(document).encode(),
                content_type="application/json",
                content_hash=content_hash(document),
                sinks=[],
            )
        assert seen_question_names(ledger) == ["Budget?", "case_number"]
        assert seen_question_names(ledger, limit=1) == []  # the newest event asked nothing
    finally:
        ledger.dispose()
    never_migrated = Ledger.open(StoreSettings(url=f"sqlite:///{tmp_path / 'new.db'}"), migrate_schema=False)
    try:
        assert seen_question_names(never_migrated) == []  # crm-setup before the first `connector serve`
    finally:
        never_migrated.dispose()


# -- end to end: set-up, then the sink writes the answers -----------------------------------------------


def test_after_setup_the_sink_writes_question_answers(portal: HubSpotEmulator) -> None:
    run_hubspot_setup(settings_for(portal), MAPPING, extra_questions=["case_number"])
    portal.reset_counters()
    call_time = datetime.now(UTC) - timedelta(minutes=1)
    plan = plan_event(
        parse_webhook(sample_payload(501, end_reason="schedule_call_back")), MAPPING, sink="hs", call_time=call_time
    )
    [update] = [a for a in plan.actions if isinstance(a, UpdateContact)]
    assert "twox_q_case_number" in {f.property for f in update.fields}
    # The sink's own safety net (creating a missing twox_q_* on the fly) is off: set-up alone must suffice.
    sink = HubSpotSink("hs", settings_for(portal, auto_create_question_properties=False))
    sink.open(_OpenGate())
    try:
        context = ExecutionContext()
        for action in plan.actions:
            context.results[action.key] = sink.execute(action, context)
    finally:
        sink.close()

    contact = portal.get("contacts", context.contact().crm_id)["properties"]
    assert contact["twox_q_case_number"] == "8057" and contact["twox_last_call_outcome"] == "callback"
    assert datetime.fromisoformat(contact["twox_callback_due"]) > call_time
    assert [t["properties"]["twox_task_key"] for t in portal.objects("tasks")] == ["2x-501:task:callback"]
    assert [r for r in portal.request_log if r.status >= 400] == []  # no PROPERTY_DOESNT_EXIST, nothing refused
    assert portal.request_count(path_prefix="/crm/v3/properties") == 0
