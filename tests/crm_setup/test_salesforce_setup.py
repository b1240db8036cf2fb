"""The Salesforce schema check and `crm-setup`, with the real simple-salesforce against the emulator.

An org without the connector's fields (``with_custom_fields=False``) is a customer's org on day one; one with them
(writable through the profile) is what an admin leaves after doing it by hand.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connector.config import SalesforceSinkSettings
from connector.default_mappings import default_mapping_path
from connector.emulators.salesforce.server import SalesforceEmulator
from connector.mapping.loader import LoadedMapping, load_mapping
from connector.mapping.planner import plan_event
from connector.ops.crm_setup import Finding, SchemaAccessError
from connector.payload import parse_webhook
from connector.sample import sample_payload
from connector.sinks.base import ExecutionContext
from connector.sinks.salesforce.setup import METADATA_NS, PERMISSION_SET, validate_against_salesforce
from connector.sinks.salesforce.setup_apply import run_salesforce_setup
from connector.sinks.salesforce.sink import SalesforceSink
from tests.support.net import free_port

MAPPING = load_mapping(default_mapping_path("salesforce"))
TWOX_FIELDS = {  # what the default mapping writes on Contact and Lead, with the type to create
    "TwoX_Wrong_Number__c": "Checkbox",
    "TwoX_Number_Invalid__c": "Checkbox",
    "TwoX_Workflow_Ended__c": "Checkbox",
    "TwoX_Last_Call_Outcome__c": "Text",
    "TwoX_Last_Call_At__c": "DateTime",
    "TwoX_Callback_Due__c": "DateTime",
}
HINT = "run `connector crm-setup --config FILE --sink sf`"  # no config file loaded in these tests
NS = {"md": METADATA_NS}


@pytest.fixture(scope="module")
def bare_org() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(with_custom_fields=False) as running:
        yield running


@pytest.fixture(scope="module")
def ready_org() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(with_custom_fields=True) as running:
        yield running


def settings_for(org: SalesforceEmulator | str, session_id: str | None = None) -> SalesforceSinkSettings:
    if isinstance(org, str):
        return SalesforceSinkSettings(type="salesforce", instance_url=org, auth={"session_id": "any"})
    return SalesforceSinkSettings(
        type="salesforce",
        instance_url=org.instance_url,
        ca_bundle=org.ca_file,
        auth={"session_id": session_id or org.session_id},
    )


class _Gate:
    def wait(self, cost: int = 1) -> None: ...


def org_client(org: SalesforceEmulator) -> Salesforce:
    return Salesforce(
        instance_url=org.instance_url, session_id=org.session_id, session=org.client_session(), version="62.0"
    )


def writes(org: SalesforceEmulator, since: int) -> list[str]:
    """Requests after ``since`` that could change the org (the describes are a Composite POST of GETs)."""
    return [
        e["path"]
        for e in org.request_log[since:]
        if e["method"] != "GET"
        and not (e["path"].endswith("/composite") and all(r["method"] == "GET" for r in e["body"]["compositeRequest"]))
    ]


def edited(tmp_path: Path, *changes: tuple[str, str]) -> LoadedMapping:
    """A copy of the default mapping with some lines changed (the way a customer edits theirs)."""
    text = default_mapping_path("salesforce").read_text()
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    (path := tmp_path / "mapping.yaml").write_text(text)
    return load_mapping(path)


def by_field(findings: list[Finding]) -> dict[tuple[str | None, str | None], Finding]:
    found = {(f.object, f.property): f for f in findings}
    assert len(found) == len(findings), findings
    return found


# -- day one: the org lacks the connector's fields ----------------------------------------------------------------


def test_validate_reports_each_missing_field_with_the_hint(bare_org: SalesforceEmulator) -> None:
    before = bare_org.api_calls()
    findings = validate_against_salesforce(settings_for(bare_org), MAPPING, sink="sf")

    assert bare_org.api_calls() - before == 1  # the describes of Contact, Lead and Task in one composite
    assert set(by_field(findings)) == {(o, n) for o in ("Contact", "Lead") for n in TWOX_FIELDS}
    assert all(f.level == "error" and HINT in f.message for f in findings)
    wrong = by_field(findings)[("Lead", "TwoX_Wrong_Number__c")]
    assert wrong.places == ("outcomes[1].contact.TwoX_Wrong_Number__c",)
    assert "field-level security" in wrong.message  # an invisible field looks missing too


def test_setup_creates_fields_and_access_then_a_delivery_writes_them(tmp_path: Path) -> None:
    with SalesforceEmulator(with_custom_fields=False) as org:
        report = run_salesforce_setup(settings_for(org), MAPPING, sink="sf")

        expected = sorted(f"{o}.{n}" for o in ("Contact", "Lead") for n in TWOX_FIELDS)
        assert report.ok and not report.dry_run and report.problems == [] and report.manual == []
        assert sorted(report.created) == expected == sorted(report.granted) and report.already_present == []
        assert report.created_permission_set and report.assigned
        assert sorted(org.custom_fields()) == expected
        creates = [e for e in org.request_log if e["path"].endswith("/tooling/sobjects/CustomField/")]
        flag = next(e["body"] for e in creates if e["body"]["FullName"] == "Contact.TwoX_Wrong_Number__c")
        assert flag["Metadata"]["type"] == "Checkbox" and flag["Metadata"]["defaultValue"] == "false"
        text = next(e["body"] for e in creates if e["body"]["FullName"] == "Lead.TwoX_Last_Call_Outcome__c")
        assert (text["Metadata"]["type"], text["Metadata"]["length"], text["Metadata"]["label"]) == (
            "Text",
            255,
            "2X Last Call Outcome",
        )
        [permission_set] = org.records("PermissionSet")
        assert (permission_set["Name"], permission_set["Label"]) == (PERMISSION_SET, "2X Connector")
        grants = org.records("FieldPermissions")
        assert sorted(g["Field"] for g in grants) == expected
        assert all(
            g["PermissionsRead"] and g["PermissionsEdit"] and g["ParentId"] == permission_set["Id"] for g in grants
        )
        [assignment] = org.records("PermissionSetAssignment")
        assert assignment["PermissionSetId"] == permission_set["Id"] and assignment["AssigneeId"].startswith("005")
        assert validate_against_salesforce(settings_for(org), MAPPING, sink="sf") == []

        sink = SalesforceSink("sf", settings_for(org))  # the real sink writes the new fields
        sink.open(_Gate())
        try:
            plan = plan_event(
                parse_webhook(sample_payload(70, end_reason="wrong_number")),
                MAPPING,
                sink="sf",
                call_time=datetime(2026, 11, 27, 3, 30, tzinfo=UTC),
            )
            context = ExecutionContext()
            context.results[plan.actions[0].key] = sink.execute(plan.actions[0], context)
            for action, result in zip(plan.actions[1:], sink.execute_many(plan.actions[1:], context), strict=True):
                context.results[action.key] = result
        finally:
            sink.close()
        john = org.get("Contact", org.seed_ids["contact_john"])
        assert john is not None and john["TwoX_Wrong_Number__c"] is True
        assert john["TwoX_Last_Call_Outcome__c"] == "wrong_number" and john["TwoX_Workflow_Ended__c"] is True

        before = len(org.request_log)
        again = run_salesforce_setup(settings_for(org), MAPPING, sink="sf")
        assert again.ok and not again.changed and sorted(again.already_present) == expected
        assert writes(org, before) == []  # a second run only reads
        assert len(org.records("FieldPermissions")) == 12 and len(org.records("PermissionSetAssignment")) == 1


def test_without_userinfo_the_user_comes_from_chatter_users_me() -> None:
    with SalesforceEmulator(with_custom_fields=False) as org:
        org.refuse_userinfo()
        report = run_salesforce_setup(settings_for(org), MAPPING, sink="sf")
        assert report.ok and report.assigned
        assert any(e["path"].endswith("/chatter/users/me") for e in org.request_log)
        [assignment] = org.records("PermissionSetAssignment")
        assert assignment["AssigneeId"] == org_client(org).restful("chatter/users/me")["id"]


def test_dry_run_plans_and_changes_nothing(bare_org: SalesforceEmulator, tmp_path: Path) -> None:
    before = len(bare_org.request_log)
    report = run_salesforce_setup(settings_for(bare_org), MAPPING, sink="sf", dry_run=True, out=tmp_path / "pkg")

    assert report.ok and report.dry_run and report.problems == []
    assert len(report.created) == len(report.granted) == 12 and report.created_permission_set and report.assigned
    assert "Would create 12 field(s)" in report.render() and "Would assign" in report.render()
    assert writes(bare_org, before) == []
    assert bare_org.custom_fields() == [] and bare_org.records("PermissionSet") == []
    package = ET.parse(tmp_path / "pkg" / "package.xml").getroot()  # the package for admins who deploy instead
    members = {
        t.findtext("md:name", namespaces=NS): [m.text for m in t.findall("md:members", NS)]
        for t in package.findall("md:types", NS)
    }
    assert sorted(members["CustomField"]) == sorted(report.created) and members["PermissionSet"] == [PERMISSION_SET]
    contact = ET.parse(tmp_path / "pkg" / "objects" / "Contact.object").getroot()
    fields = {f.findtext("md:fullName", namespaces=NS): f for f in contact.findall("md:fields", NS)}
    assert set(fields) == set(TWOX_FIELDS)
    assert [c.tag.split("}")[1] for c in fields["TwoX_Wrong_Number__c"]] == [
        "fullName",
        "defaultValue",
        "description",
        "externalId",
        "label",
        "trackHistory",
        "type",
    ]
    grants = ET.parse(tmp_path / "pkg" / "permissionsets" / f"{PERMISSION_SET}.permissionset").getroot()
    assert {g.findtext("md:field", namespaces=NS) for g in grants.findall("md:fieldPermissions", NS)} == set(
        report.created
    )


def test_a_user_without_permissions_gets_the_manual_steps_for_those_items_only() -> None:
    with SalesforceEmulator(with_custom_fields=False) as org:
        org.set_user_permissions(customize_application=False, manage_users=False)
        report = run_salesforce_setup(settings_for(org), MAPPING, sink="sf")
        assert not report.ok and report.created == [] and org.custom_fields() == []
        assert sorted(s.full_name for s in report.fields) == sorted(
            f"{o}.{n}" for o in ("Contact", "Lead") for n in TWOX_FIELDS
        )
        assert report.manual == [] and report.problems == []  # field steps include the field-level security click
        assert "Setup → Object Manager → Contact → Fields & Relationships → New" in report.render()

        org.set_user_permissions(customize_application=True, manage_users=False)  # fields yes, permission sets no
        report = run_salesforce_setup(settings_for(org), MAPPING, sink="sf")
        assert not report.ok and len(report.created) == 12 and report.fields == [] and report.granted == []
        assert report.manual[0].startswith("Setup → Permission Sets → New: Label 2X Connector, API Name TwoX_Connector")
        assert report.manual[-1].endswith("Manage Assignments → Add Assignment → the connector's user → Assign")
        assert len(report.manual) == 14 and "Object Manager" not in "".join(report.manual)
        assert report.problems == []  # the invisible fields are the manual items, not extra errors

        org.set_user_permissions()  # an admin grants the permissions: the next run finishes the job
        report = run_salesforce_setup(settings_for(org), MAPPING, sink="sf")
        assert report.ok and report.created == [] and len(report.granted) == 12 and report.assigned


def test_existing_fields_without_access_and_read_only_grants_are_fixed() -> None:
    with SalesforceEmulator(with_custom_fields=False) as org:
        sf = org_client(org)
        for spec in ("Contact.TwoX_Wrong_Number__c", "Contact.TwoX_Last_Call_Outcome__c"):  # an admin made these
            metadata = (
                {"type": "Checkbox", "label": "x", "defaultValue": "false"}
                if "Wrong" in spec
                else {"type": "Text", "label": "x", "length": 255}
            )
            sf.toolingexecute("sobjects/CustomField/", method="POST", data={"FullName": spec, "Metadata": metadata})
        permission_set = sf.PermissionSet.create({"Name": PERMISSION_SET, "Label": "2X Connector"})["id"]
        read_only = sf.FieldPermissions.create(
            {
                "ParentId": permission_set,
                "SobjectType": "Contact",
                "PermissionsRead": True,
                "Field": "Contact.TwoX_Wrong_Number__c",
            }
        )["id"]

        report = run_salesforce_setup(settings_for(org), MAPPING, sink="sf")

        assert report.ok and len(report.created) == 10 and not report.created_permission_set
        assert {"Contact.TwoX_Wrong_Number__c", "Contact.TwoX_Last_Call_Outcome__c"} <= set(report.already_present)
        assert len(report.granted) == 12 and org.get("FieldPermissions", read_only)["PermissionsEdit"] is True
        assert len(org.records("PermissionSet")) == 1


def test_a_field_without_access_is_refused_like_salesforce_does() -> None:
    with SalesforceEmulator(with_custom_fields=False) as org:
        sf = org_client(org)
        sf.toolingexecute(
            "sobjects/CustomField/",
            method="POST",
            data={
                "FullName": "Contact.TwoX_Wrong_Number__c",
                "Metadata": {"type": "Checkbox", "label": "x", "defaultValue": "false"},
            },
        )
        with pytest.raises(SalesforceMalformedRequest) as caught:
            sf.Contact.update(org.seed_ids["contact_john"], {"TwoX_Wrong_Number__c": True})
        assert caught.value.content[0]["errorCode"] == "INVALID_FIELD"
        findings = validate_against_salesforce(settings_for(org), MAPPING, sink="sf")
        assert "field-level security" in by_field(findings)[("Contact", "TwoX_Wrong_Number__c")].message


def test_picklist_literals_are_checked_against_the_active_values(ready_org: SalesforceEmulator, tmp_path: Path) -> None:
    mapping = edited(
        tmp_path,
        (
            'Status: {value: "Working - Contacted", objects: [Lead]}\n      TwoX_Callback_Due__c',
            'Status: {value: "Qualified Maybe", objects: [Lead]}\n      TwoX_Callback_Due__c',
        ),
        (
            "    TaskSubtype: Call\n    Type: Call\n    Status: Completed",
            "    TaskSubtype: Meeting\n    Type: Visit\n    Status: completed",
        ),
    )

    found = by_field(validate_against_salesforce(settings_for(ready_org), mapping, sink="sf"))

    status = found[("Lead", "Status")]
    assert status.level == "error" and "'Qualified Maybe' is not an active value" in status.message
    assert "Open - Not Contacted, Working - Contacted, Closed - Converted, Closed - Not Converted" in status.message
    assert status.places == ("outcomes[5].contact.Status",)  # where the bad value is written
    subtype = found[("Task", "TaskSubtype")]  # a restricted picklist: Salesforce refuses the Task
    assert subtype.level == "error" and "a restricted picklist: Salesforce refuses" in subtype.message
    assert found[("Task", "Type")].level == "warning"  # unrestricted: stored, but no value of the list
    assert "did you mean Completed?" in found[("Task", "Status")].message
    assert set(found) == {("Lead", "Status"), ("Task", "TaskSubtype"), ("Task", "Type"), ("Task", "Status")}


def test_types_writability_names_and_lengths(ready_org: SalesforceEmulator, tmp_path: Path) -> None:
    mapping = edited(
        tmp_path,
        (
            "contact_updates:\n",
            (
                'contact_updates:\n  Name: "{{ record.first_name }}"\n'
                '  FirstName: "Called by 2X - {{ outcome.label }}"\n'
                f'  Title: "{"x" * 130}{{{{ record.last_name }}}}"\n'
            ),
        ),
        ("    Priority: Normal\n", "    Priority: Normal\n    IsClosed: true\n    Descripton: x\n"),
        (
            "CallDurationInSeconds: \"{{ call.duration_seconds | duration('seconds') or 0 }}\"",
            "CallDurationInSeconds: true",
        ),
        (
            "      TwoX_Wrong_Number__c: true\n",
            "      TwoX_Wrong_Number__c: true\n      TwoX_Last_Call_Outcome__c: true\n",
        ),
        ("CallDisposition: {max_length: 255", "CallDisposition: {max_length: 300"),
    )

    found = by_field(validate_against_salesforce(settings_for(ready_org), mapping, sink="sf"))

    assert "cannot be updated" in found[("Contact", "Name")].message  # calculated
    assert "cannot be set on create" in found[("Task", "IsClosed")].message
    assert found[("Task", "CallDurationInSeconds")].level == "error"  # true into an int field
    assert found[("Contact", "TwoX_Last_Call_Outcome__c")].level == "warning"  # true into text: the text 'true'
    assert "did you mean Description?" in found[("Task", "Descripton")].message
    first_name = found[("Lead", "FirstName")]  # 40 characters; the longest outcome label makes 41
    assert first_name.level == "warning" and "renders up to 41 characters; the field holds 40" in first_name.message
    assert "renders at least 130 characters; the field holds 128" in found[("Contact", "Title")].message
    assert "lower it to 255" in found[("Task", "CallDisposition")].message
    assert all(f.level == "error" for k, f in found.items() if k[1] in ("Name", "IsClosed", "Descripton"))


# -- when the org cannot be asked ---------------------------------------------------------------------------------


def test_an_unreachable_org_is_one_warning() -> None:
    [finding] = validate_against_salesforce(settings_for(f"https://127.0.0.1:{free_port()}"), MAPPING, sink="sf")
    assert finding.level == "warning" and finding.message.startswith("Salesforce not reachable: schema not checked")
    with pytest.raises(SchemaAccessError) as caught:
        run_salesforce_setup(settings_for(f"https://127.0.0.1:{free_port()}"), MAPPING, sink="sf")
    assert caught.value.unreachable


def test_rejected_credentials_are_one_error(ready_org: SalesforceEmulator) -> None:
    [finding] = validate_against_salesforce(settings_for(ready_org, session_id="expired"), MAPPING, sink="sf")
    assert finding.level == "error" and "rejected the credentials (INVALID_SESSION_ID)" in finding.message
    assert "sinks.sf.auth" in finding.message


def test_custom_task_fields_the_mapping_writes_are_created_too(tmp_path: Path) -> None:
    mapping = edited(
        tmp_path, ("    Status: Completed\n", '    Status: Completed\n    TwoX_Event_Id__c: "{{ event.id }}"\n')
    )
    with SalesforceEmulator(with_custom_fields=True) as org:
        report = run_salesforce_setup(settings_for(org), mapping, sink="sf")
        assert report.ok and report.created == ["Task.TwoX_Event_Id__c"] == report.granted
        assert len(report.already_present) == 12  # the Contact/Lead fields were writable already
        task = {f["name"]: f for f in org_client(org).Task.describe()["fields"]}["TwoX_Event_Id__c"]
        assert (task["type"], task["length"], task["updateable"]) == ("string", 255, True)


def test_question_fields_the_mapping_names_are_created_with_access(tmp_path: Path) -> None:
    """Answers go to the call Task's Description by default; a mapping that names custom fields per question gets
    them created: `map` entries whatever their name, and a `wildcard` field for each question seen."""
    mapping = edited(
        tmp_path,
        (
            "  map: {}                      # e.g.  case_number: {property: Case_Number__c}\n"
            '  wildcard: null               # or "TwoX_Q_{name}__c" once such fields exist\n',
            '  map: {case_number: {property: Case_Number__c}}\n  wildcard: "TwoX_Q_{name}__c"\n',
        ),
    )
    with SalesforceEmulator(with_custom_fields=True) as org:
        report = run_salesforce_setup(settings_for(org), mapping, sink="sf", questions=["budget", "case_number"])
        expected = sorted(
            f"{obj}.{name}" for obj in ("Contact", "Lead") for name in ("Case_Number__c", "TwoX_Q_budget__c")
        )
        assert report.ok, report
        assert sorted(report.created) == expected == sorted(report.granted)
        again = run_salesforce_setup(settings_for(org), mapping, sink="sf", questions=["budget", "case_number"])
        assert again.ok and again.created == [] and again.granted == []
        fields = {f["name"] for f in org_client(org).Contact.describe()["fields"]}
        assert {"Case_Number__c", "TwoX_Q_budget__c"} <= fields
