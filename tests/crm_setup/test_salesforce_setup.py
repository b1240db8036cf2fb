"""The Salesforce schema check and set-up instructions, with the real simple-salesforce against the emulator.

An org without the connector's fields (``with_custom_fields=False``) is a customer's org on day one; one with them
is what an admin leaves after following the instructions.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.config import SalesforceSinkSettings
from connector.crm_setup import Finding, SchemaAccessError
from connector.crm_setup.salesforce import (
    METADATA_NS,
    PERMISSION_SET,
    salesforce_setup_instructions,
    validate_against_salesforce,
)
from connector.default_mappings import default_mapping_path
from connector.emulators.salesforce import SalesforceEmulator
from connector.mapping.loader import LoadedMapping, load_mapping
from tests.conftest import free_port

MAPPING = load_mapping(default_mapping_path("salesforce"))
TWOX_FIELDS = {  # what the default mapping writes on Contact and Lead, with the type to create
    "TwoX_Wrong_Number__c": "Checkbox", "TwoX_Number_Invalid__c": "Checkbox", "TwoX_Workflow_Ended__c": "Checkbox",
    "TwoX_Last_Call_Outcome__c": "Text", "TwoX_Last_Call_At__c": "DateTime", "TwoX_Callback_Due__c": "DateTime",
}
HINT = "run `connector crm-setup --sink sf` for instructions"
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
    return SalesforceSinkSettings(type="salesforce", instance_url=org.instance_url, ca_bundle=org.ca_file,
                                  auth={"session_id": session_id or org.session_id})


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


def test_instructions_list_the_missing_fields_with_types_and_steps(bare_org: SalesforceEmulator,
                                                                   tmp_path: Path) -> None:
    report = salesforce_setup_instructions(settings_for(bare_org), MAPPING, sink="sf", out=tmp_path / "pkg")

    assert not report.ok and report.dry_run and report.problems == [] and report.already_present == []
    assert sorted(report.created) == sorted(f"{o}.{n}" for o in ("Contact", "Lead") for n in TWOX_FIELDS)
    assert {(s.object, s.name, s.type) for s in report.fields} == {
        (o, n, t) for o in ("Contact", "Lead") for n, t in TWOX_FIELDS.items()}
    outcome = next(s for s in report.fields if (s.object, s.name) == ("Contact", "TwoX_Last_Call_Outcome__c"))
    assert (outcome.label, outcome.setup_type, outcome.length) == ("2X Last Call Outcome", "Text(255)", 255)
    assert outcome.steps()[0] == "Setup → Object Manager → Contact → Fields & Relationships → New"
    text = report.render()
    assert "Lead.TwoX_Wrong_Number__c  (Checkbox, label '2X Wrong Number')" in text
    assert "Default Value: Unchecked" in text and "Data type: Date/Time" in text and "Map Lead Fields" in text
    assert report.to_dict()["fields"][0]["steps"] and report.to_dict()["ok"] is False  # an admin must act first

    package = ET.parse(tmp_path / "pkg" / "package.xml").getroot()
    members = {t.findtext("md:name", namespaces=NS): [m.text for m in t.findall("md:members", NS)]
               for t in package.findall("md:types", NS)}
    assert sorted(members["CustomField"]) == sorted(report.created) and members["PermissionSet"] == [PERMISSION_SET]
    assert package.findtext("md:version", namespaces=NS) == "62.0"
    contact = ET.parse(tmp_path / "pkg" / "objects" / "Contact.object").getroot()
    fields = {f.findtext("md:fullName", namespaces=NS): f for f in contact.findall("md:fields", NS)}
    assert set(fields) == set(TWOX_FIELDS)
    flag = fields["TwoX_Wrong_Number__c"]
    assert [c.tag.split("}")[1] for c in flag] == ["fullName", "defaultValue", "description", "externalId", "label",
                                                   "trackHistory", "type"]  # the order a deploy insists on
    assert (flag.findtext("md:type", namespaces=NS), flag.findtext("md:defaultValue", namespaces=NS)) == (
        "Checkbox", "false")
    assert fields["TwoX_Last_Call_Outcome__c"].findtext("md:length", namespaces=NS) == "255"
    grants = ET.parse(tmp_path / "pkg" / "permissionsets" / f"{PERMISSION_SET}.permissionset").getroot()
    assert {g.findtext("md:field", namespaces=NS) for g in grants.findall("md:fieldPermissions", NS)} == set(
        report.created)


# -- after set-up -------------------------------------------------------------------------------------------------


def test_the_default_mapping_is_clean_on_a_ready_org(ready_org: SalesforceEmulator, tmp_path: Path) -> None:
    assert validate_against_salesforce(settings_for(ready_org), MAPPING, sink="sf") == []
    report = salesforce_setup_instructions(settings_for(ready_org), MAPPING, sink="sf", out=tmp_path)
    assert report.ok and report.fields == [] and report.created == [] and report.files == []
    assert len(report.already_present) == 12 and "exists in the org" in report.render()
    assert list(tmp_path.iterdir()) == []  # nothing to deploy


def test_picklist_literals_are_checked_against_the_active_values(ready_org: SalesforceEmulator,
                                                                 tmp_path: Path) -> None:
    mapping = edited(tmp_path,
                     ('Status: {value: "Working - Contacted", objects: [Lead]}\n      TwoX_Callback_Due__c',
                      'Status: {value: "Qualified Maybe", objects: [Lead]}\n      TwoX_Callback_Due__c'),
                     ("    TaskSubtype: Call\n    Type: Call\n    Status: Completed",
                      "    TaskSubtype: Meeting\n    Type: Visit\n    Status: completed"))

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
        ("contact_updates:\n", ('contact_updates:\n  Name: "{{ record.first_name }}"\n'
                               '  FirstName: "Called by 2X - {{ outcome.label }}"\n'
                               f'  Title: "{"x" * 130}{{{{ record.last_name }}}}"\n')),
        ("    Priority: Normal\n", "    Priority: Normal\n    IsClosed: true\n    Descripton: x\n"),
        ("CallDurationInSeconds: \"{{ call.duration_seconds | duration('seconds') or 0 }}\"",
         "CallDurationInSeconds: true"),
        ("      TwoX_Wrong_Number__c: true\n", "      TwoX_Wrong_Number__c: true\n      TwoX_Last_Call_Outcome__c: true\n"),
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
        salesforce_setup_instructions(settings_for(f"https://127.0.0.1:{free_port()}"), MAPPING, sink="sf")
    assert caught.value.unreachable


def test_rejected_credentials_are_one_error(ready_org: SalesforceEmulator) -> None:
    [finding] = validate_against_salesforce(settings_for(ready_org, session_id="expired"), MAPPING, sink="sf")
    assert finding.level == "error" and "rejected the credentials (INVALID_SESSION_ID)" in finding.message
    assert "sinks.sf.auth" in finding.message
