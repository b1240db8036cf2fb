"""The Salesforce emulator, driven by the REAL simple-salesforce client over verified HTTPS.

Every assertion is phrased the way a sink sees Salesforce through simple-salesforce: the exception class it
raises (400 SalesforceMalformedRequest, 401 SalesforceExpiredSession, 403 SalesforceRefusedRequest, 404
SalesforceResourceNotFound, other SalesforceGeneralError) and ``exc.content[0]["errorCode"]``, so sink code
written against these tests handles the real org's answers.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import certifi
import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from connector.emulators.salesforce.server import SalesforceEmulator
from connector.sample import SAMPLE_PHONE

VERSION = "62.0"
V = f"/services/data/v{VERSION}"


def connect(emulator: SalesforceEmulator, session_id: str | None = None) -> Salesforce:
    """A client configured the way the brief prescribes (CA file on the session; env CA bundles ignored)."""
    return Salesforce(
        instance_url=emulator.instance_url,
        session_id=session_id or emulator.session_id,
        session=emulator.client_session(),
        version=VERSION,
    )


def error_of(exc_info: pytest.ExceptionInfo[SalesforceError]) -> dict[str, Any]:
    """The first error of the array simple-salesforce parsed into ``content``."""
    content = exc_info.value.content
    assert isinstance(content, list), content
    return content[0]


@pytest.fixture(scope="module")
def emulator() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator() as running:
        yield running


@pytest.fixture()
def sf(emulator: SalesforceEmulator) -> Salesforce:
    return connect(emulator)


# --- transport -----------------------------------------------------------------------------------------------
def test_tls_is_verified_against_the_generated_ca(emulator: SalesforceEmulator) -> None:
    """Clients must trust the emulator's CA explicitly; a default client refuses the certificate."""
    bare = requests.Session()
    bare.trust_env = False
    with pytest.raises(requests.exceptions.SSLError):
        bare.get(emulator.instance_url + "/services/data/", timeout=5)
    with pytest.raises(requests.exceptions.SSLError):
        Salesforce(
            instance_url=emulator.instance_url, session_id=emulator.session_id, version=VERSION, session=bare
        ).query("SELECT Id FROM Contact")
    assert emulator.client_session().get(emulator.instance_url + "/services/data/", timeout=5).status_code == 200


def test_env_ca_bundle_silently_overrides_session_verify(
    emulator: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests prefers REQUESTS_CA_BUNDLE over ``session.verify`` (psf/requests#3829); sinks must not trust env."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    naive = requests.Session()
    naive.verify = emulator.ca_file
    with pytest.raises(requests.exceptions.SSLError):
        naive.get(emulator.instance_url + "/services/data/", timeout=5)
    assert emulator.client_session().get(emulator.instance_url + "/services/data/", timeout=5).status_code == 200


def test_a_silent_client_does_not_block_others(emulator: SalesforceEmulator) -> None:
    """TLS handshakes happen per connection thread, so a peer that never speaks can't stall the emulator."""
    host, port = emulator.instance_url.removeprefix("https://").split(":")
    with socket.create_connection((host, int(port)), timeout=5):
        assert emulator.client_session().get(emulator.instance_url + "/services/data/", timeout=5).ok


def test_versions_list_needs_no_session_and_is_not_counted(emulator: SalesforceEmulator) -> None:
    before = emulator.api_calls()
    versions = emulator.client_session().get(emulator.instance_url + "/services/data/", timeout=5).json()
    assert {"label": "Winter '25", "url": V, "version": VERSION} in versions
    assert any(v["version"] == "59.0" for v in versions)  # simple-salesforce 1.12.6+'s default
    assert emulator.api_calls() == before


# --- sObject rows --------------------------------------------------------------------------------------------
def test_contact_create_get_update_delete(sf: Salesforce, emulator: SalesforceEmulator) -> None:
    created = sf.Contact.create(
        {"firstname": "Zed", "LastName": "Quinn", "Phone": "(555) 010-9999", "HasOptedOutOfEmail": True}
    )
    assert created["success"] is True and created["errors"] == [] and created["id"].startswith("003")
    assert len(created["id"]) == 18
    got = sf.Contact.get(created["id"])
    assert got["attributes"] == {"type": "Contact", "url": f"{V}/sobjects/Contact/{created['id']}"}
    assert (got["Name"], got["FirstName"], got["DoNotCall"]) == ("Zed Quinn", "Zed", False)
    assert got["CreatedDate"].endswith("+0000")
    assert list(sf.Contact.get(created["id"], params={"fields": "Phone,Name"})) == ["attributes", "Phone", "Name", "Id"]
    assert sf.Contact.get(created["id"][:15])["Id"] == created["id"]  # 15-char ids work too
    assert sf.Contact.update(created["id"], {"Phone": "555-010-0000", "TwoX_Last_Call_Outcome__c": "no_answer"}) == 204
    assert emulator.get("Contact", created["id"])["TwoX_Last_Call_Outcome__c"] == "no_answer"
    assert sf.Contact.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound) as missing:
        sf.Contact.get(created["id"])
    assert error_of(missing) == {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}
    with pytest.raises(SalesforceResourceNotFound) as deleted:
        sf.Contact.delete(created["id"])
    assert error_of(deleted)["errorCode"] == "ENTITY_IS_DELETED"
    assert (
        sf.query_all(f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{created['id']}'", include_deleted=True)[
            "records"
        ][0]["IsDeleted"]
        is True
    )


def test_lead_defaults_and_non_restricted_picklists(sf: Salesforce, emulator: SalesforceEmulator) -> None:
    lead_id = sf.Lead.create(
        {
            "LastName": "Unknown (2X)",
            "Company": "[not provided]",
            "FirstName": "",
            "Phone": "+13125550177",
            "LeadSource": "Phone Inquiry",
        }
    )["id"]
    lead = emulator.get("Lead", lead_id)
    assert lead is not None
    assert (lead["Status"], lead["IsConverted"], lead["FirstName"], lead["Name"]) == (
        "Open - Not Contacted",
        False,
        None,
        "Unknown (2X)",
    )  # "" is stored as null, as Salesforce does
    sf.Lead.update(lead_id, {"Status": "Some Custom Status", "LeadSource": "Carrier pigeon"})  # not restricted
    assert emulator.get("Lead", lead_id)["Status"] == "Some Custom Status"


def test_call_task_closes_and_touches_last_activity(sf: Salesforce, emulator: SalesforceEmulator) -> None:
    who = emulator.seed_ids["contact_jane"]
    task_id = sf.Task.create(
        {
            "Subject": "Call: Transferred to sales",
            "TaskSubtype": "Call",
            "Type": "Call",
            "Status": "Completed",
            "Priority": "Normal",
            "CallType": "Outbound",
            "CallDurationInSeconds": 33,
            "CallDisposition": "Transferred",
            "CallObject": "2x-123",
            "ActivityDate": "2031-03-04",
            "Description": "2X agent: Hi\nLead: Hello",
            "WhoId": who,
            "ReminderDateTime": "2031-03-04T15:00:00-05:00",
            "IsReminderSet": True,
        }
    )["id"]
    task = sf.Task.get(task_id)
    assert task["IsClosed"] is True and task["CompletedDateTime"] is not None and task["OwnerId"].startswith("005")
    assert task["ReminderDateTime"] == "2031-03-04T20:00:00.000+0000"
    assert emulator.get("Contact", who)["LastActivityDate"] == "2031-03-04"
    open_task = sf.Task.create({"Subject": "Call back", "WhoId": who[:15]})["id"]
    assert (
        sf.Task.get(open_task)["Status"],
        sf.Task.get(open_task)["Priority"],
        sf.Task.get(open_task)["TaskSubtype"],
        sf.Task.get(open_task)["IsClosed"],
    ) == ("Not Started", "Normal", "Task", False)


def test_describe_reports_what_the_sink_writes(sf: Salesforce) -> None:
    task = sf.Task.describe()
    fields = {f["name"]: f for f in task["fields"]}
    assert (task["name"], task["keyPrefix"], task["createable"]) == ("Task", "00T", True)
    assert fields["TaskSubtype"]["restrictedPicklist"] and fields["TaskSubtype"]["createable"]
    assert not fields["TaskSubtype"]["updateable"]
    assert [p["value"] for p in fields["CallType"]["picklistValues"]] == ["Inbound", "Internal", "Outbound"]
    status = fields["Status"]
    assert (status["nillable"], status["defaultedOnCreate"]) == (False, True)
    assert [p["value"] for p in status["picklistValues"] if p["defaultValue"]] == ["Not Started"]
    assert (fields["Description"]["type"], fields["Description"]["length"]) == ("textarea", 32000)
    assert (fields["Subject"]["type"], fields["Subject"]["length"]) == ("combobox", 255)
    assert fields["WhoId"]["referenceTo"] == ["Contact", "Lead"]
    assert not fields["IsClosed"]["createable"]
    lead = {f["name"]: f for f in sf.Lead.describe()["fields"]}
    assert not lead["IsConverted"]["createable"] and not lead["Company"]["nillable"]
    assert [p["value"] for p in lead["Status"]["picklistValues"] if p["defaultValue"]] == ["Open - Not Contacted"]
    contact = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    assert contact["TwoX_Last_Call_At__c"]["type"] == "datetime" and contact["TwoX_Last_Call_At__c"]["custom"]
    assert contact["TwoX_Wrong_Number__c"]["type"] == "boolean"
    assert sf.Account.describe()["keyPrefix"] == "001"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Opportunity.describe()


def test_without_custom_fields_writes_to_them_fail() -> None:
    with SalesforceEmulator(with_custom_fields=False, seed_records=False) as bare:
        client = connect(bare)
        assert "TwoX_Wrong_Number__c" not in {f["name"] for f in client.Contact.describe()["fields"]}
        with pytest.raises(SalesforceMalformedRequest) as exc:
            client.Contact.create({"LastName": "Doe", "TwoX_Wrong_Number__c": True})
        assert error_of(exc) == {
            "errorCode": "INVALID_FIELD",
            "message": "No such column 'TwoX_Wrong_Number__c' on sobject of type Contact",
        }
        assert bare.records("Contact") == []


# --- validation errors, as simple-salesforce surfaces them ------------------------------------------------------
@pytest.mark.parametrize(
    ("sobject", "body", "code", "fields"),
    [
        ("Lead", {"FirstName": "No"}, "REQUIRED_FIELD_MISSING", ["LastName", "Company"]),
        ("Contact", {"LastName": ""}, "REQUIRED_FIELD_MISSING", ["LastName"]),
        ("Task", {"Subject": "Call", "Foo__c": 1}, "INVALID_FIELD", None),
        (
            "Lead",
            {"LastName": "L", "Company": "C", "IsConverted": True},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ["IsConverted"],
        ),
        ("Task", {"Description": "x" * 32001}, "STRING_TOO_LONG", ["Description"]),
        ("Task", {"CallObject": "2x-" + "9" * 253}, "STRING_TOO_LONG", ["CallObject"]),
        ("Task", {"Subject": "s" * 256}, "STRING_TOO_LONG", ["Subject"]),
        ("Task", {"CallDisposition": "d" * 256}, "STRING_TOO_LONG", ["CallDisposition"]),
        ("Task", {"CallType": "Sideways"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["CallType"]),
        ("Task", {"TaskSubtype": "Fax"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["TaskSubtype"]),
        ("Contact", {"LastName": "D", "DoNotCall": "true"}, "JSON_PARSER_ERROR", None),
        ("Task", {"CallDurationInSeconds": "33"}, "JSON_PARSER_ERROR", None),
        ("Task", {"ActivityDate": "2025-01-02T10:00:00Z"}, "JSON_PARSER_ERROR", None),
        ("Task", {"ReminderDateTime": "2025-01-02 10:00:00"}, "JSON_PARSER_ERROR", None),
        ("Task", {"ReminderDateTime": "2025-01-02T10:00:00"}, "JSON_PARSER_ERROR", None),
        ("Task", {"WhoId": "not-an-id"}, "MALFORMED_ID", ["WhoId"]),
        ("Task", {"WhoId": "003000000000000AAA"}, "INVALID_CROSS_REFERENCE_KEY", ["WhoId"]),
        ("Task", {"WhoId": "SEED:account_acme"}, "FIELD_INTEGRITY_EXCEPTION", ["WhoId"]),
        ("Task", {"Id": "00T000000000000AAA"}, "INVALID_FIELD", None),
    ],
)
def test_create_rejections(
    sf: Salesforce,
    emulator: SalesforceEmulator,
    sobject: str,
    body: dict[str, Any],
    code: str,
    fields: list[str] | None,
) -> None:
    body = {k: emulator.seed_ids[v[5:]] if isinstance(v, str) and v.startswith("SEED:") else v for k, v in body.items()}
    before = len(emulator.records(sobject))
    with pytest.raises(SalesforceMalformedRequest) as exc:
        getattr(sf, sobject).create(body)
    error = error_of(exc)
    assert error["errorCode"] == code
    assert error.get("fields") == fields
    assert len(emulator.records(sobject)) == before


def test_rejection_texts_match_salesforce(sf: Salesforce) -> None:
    """The exact texts sinks log and (sometimes) parse."""
    with pytest.raises(SalesforceMalformedRequest) as missing:
        sf.Lead.create({"FirstName": "No"})
    assert error_of(missing)["message"] == "Required fields are missing: [LastName, Company]"
    with pytest.raises(SalesforceMalformedRequest) as too_long:
        sf.Task.create({"CallObject": "x" * 256})
    assert (
        error_of(too_long)["message"] == f"Call Object Identifier: data value too large: {'x' * 256} (max length=255)"
    )
    with pytest.raises(SalesforceMalformedRequest) as picklist:
        sf.Task.create({"CallType": "Sideways"})
    assert error_of(picklist)["message"] == "Call Type: bad value for restricted picklist field: Sideways"
    with pytest.raises(SalesforceMalformedRequest) as parse:
        sf.Contact.create({"LastName": "D", "DoNotCall": "yes"})
    assert error_of(parse)["message"].startswith(
        "Cannot deserialize instance of boolean from VALUE_STRING value yes or request may be missing a required "
        "field at [line:1, column:"
    )
    with pytest.raises(SalesforceMalformedRequest) as who:
        sf.Task.create({"WhoId": "006000000000000AAA"})
    assert error_of(who)["message"] == "Name ID: id value of incorrect type: 006000000000000AAA"


def test_update_rejections(sf: Salesforce, emulator: SalesforceEmulator) -> None:
    task_id = sf.Task.create({"Subject": "Call", "TaskSubtype": "Call"})["id"]
    with pytest.raises(SalesforceMalformedRequest) as subtype:
        sf.Task.update(task_id, {"TaskSubtype": "Email"})
    assert error_of(subtype)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert error_of(subtype)["fields"] == ["TaskSubtype"]
    with pytest.raises(SalesforceMalformedRequest) as required:
        sf.Contact.update(emulator.seed_ids["contact_john"], {"LastName": None})
    assert error_of(required)["errorCode"] == "REQUIRED_FIELD_MISSING"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Task.update("00T000000000000AAA", {"Subject": "x"})
    raw = emulator.client_session().patch(
        f"{emulator.instance_url}{V}/sobjects/Task/{task_id}",
        data="{Subject: x",
        headers={"Authorization": f"Bearer {emulator.session_id}", "Content-Type": "application/json"},
        timeout=5,
    )
    assert raw.status_code == 400 and raw.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert emulator.get("Task", task_id)["TaskSubtype"] == "Call"


# --- SOQL ----------------------------------------------------------------------------------------------------
def test_soql_subset(sf: Salesforce, emulator: SalesforceEmulator) -> None:
    john = emulator.seed_ids["contact_john"]
    result = sf.query("SELECT Id, Name, Phone FROM Contact WHERE Phone = '(202) 555-0143'")
    assert result["totalSize"] == 1 and result["done"] is True
    assert result["records"][0] == {
        "attributes": {"type": "Contact", "url": f"{V}/sobjects/Contact/{john}"},
        "Id": john,
        "Name": "John Doe",
        "Phone": "(202) 555-0143",
    }
    assert sf.query(f"select id from contact where phone = '{SAMPLE_PHONE}'")["totalSize"] == 0  # stored verbatim
    assert sf.query("SELECT Id FROM Contact WHERE Phone LIKE '%555-0143'")["totalSize"] == 1
    assert sf.query("SELECT Id FROM Contact WHERE lastname = 'DOE' AND DoNotCall = false")["totalSize"] == 1
    names = [
        r["LastName"]
        for r in sf.query(
            "SELECT LastName FROM Contact WHERE LastName IN ('Doe', 'Roe', 'Smith') ORDER BY CreatedDate DESC LIMIT 2"
        )["records"]
    ]
    assert names == ["Smith", "Roe"]
    assert sf.query("SELECT Id FROM Lead WHERE IsConverted = true OR Status = 'Closed - Converted'")["totalSize"] == 1
    assert (
        sf.query("SELECT Id FROM Lead WHERE (IsConverted = false) AND LastName != null AND FirstName != 'x'")[
            "totalSize"
        ]
        >= 1
    )
    assert sf.query(f"SELECT COUNT() FROM Contact WHERE Id = '{john[:15]}'")["totalSize"] == 1
    sf.Lead.create({"LastName": "O'Brien", "Company": "C"})
    assert sf.query(r"SELECT Id FROM Lead WHERE LastName = 'O\'Brien'")["totalSize"] == 1
    assert sf.query("SELECT Id FROM Contact WHERE CreatedDate < 2023-06-01T00:00:00Z")["totalSize"] == 1
    assert (
        sf.query("SELECT Id FROM Contact WHERE LastActivityDate > 2024-06-01 AND CreatedDate = LAST_N_DAYS:99999")[
            "totalSize"
        ]
        >= 2
    )


@pytest.mark.parametrize(
    ("soql", "code", "detail"),
    [
        ("SELECT Id, Foo__c FROM Task", "INVALID_FIELD", "No such column 'Foo__c' on entity 'Task'."),
        ("SELECT Id FROM Opportunity", "INVALID_TYPE", "sObject type 'Opportunity' is not supported."),
        ("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY", "unexpected token: <EOF>"),
        ("SELECT FROM Contact", "MALFORMED_QUERY", "unexpected token: 'FROM'"),
        (
            "SELECT Id FROM Contact WHERE LastName = 'a' AND DoNotCall = true OR Phone = 'x'",
            "MALFORMED_QUERY",
            "unexpected token: 'OR'",
        ),
        ("SELECT Id FROM Contact WHERE LastName = 'unterminated", "MALFORMED_QUERY", "unexpected token"),
        (
            "SELECT Id FROM Contact WHERE DoNotCall = 'true'",
            "INVALID_QUERY_FILTER_OPERATOR",
            "value of filter criterion for field 'DoNotCall' must be of type boolean and should not be enclosed in quotes",
        ),
        ("SELECT Id FROM Task WHERE Description = 'x'", "INVALID_FIELD", "field 'Description' can not be filtered"),
        ("SELECT Id FROM Contact WHERE Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: abc"),
    ],
)
def test_soql_errors(sf: Salesforce, soql: str, code: str, detail: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query(soql)
    assert error_of(exc)["errorCode"] == code
    assert detail in error_of(exc)["message"]


def test_soql_error_carries_salesforce_position_preamble(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id, Foo__c FROM Task")
    assert error_of(exc)["message"].startswith(
        "\nSELECT Id, Foo__c FROM Task\n           ^\nERROR at Row:1:Column:12\n"
    )


def test_query_pages_at_2000_rows_with_a_path_next_url() -> None:
    with SalesforceEmulator(seed_records=False) as big:
        client = connect(big)
        for start in range(0, 2100, 200):
            records = [
                {"attributes": {"type": "Task"}, "Subject": f"T{i}"} for i in range(start, min(start + 200, 2100))
            ]
            assert all(
                r["success"] for r in client.restful("composite/sobjects", method="POST", json={"records": records})
            )
        first = client.query("SELECT Id, Subject FROM Task")
        assert (first["totalSize"], first["done"], len(first["records"])) == (2100, False, 2000)
        assert first["nextRecordsUrl"].startswith(f"{V}/query/01g")
        second = client.query_more(first["nextRecordsUrl"], identifier_is_url=True)
        assert (second["done"], len(second["records"])) == (True, 100)
        assert len(client.query_all("SELECT Id FROM Task")["records"]) == 2100
        calls = big.api_calls()
        small = connect(big).query("SELECT Id FROM Task", headers={"Sforce-Query-Options": "batchSize=500"})
        assert len(small["records"]) == 500 and big.api_calls() == calls + 1


# --- SOSL ----------------------------------------------------------------------------------------------------
PHONE_SEARCH = (
    "FIND {{{digits}}} IN PHONE FIELDS RETURNING Contact(Id, Name, Phone, MobilePhone, LastActivityDate), "
    "Lead(Id, Name, Phone, MobilePhone WHERE IsConverted = false)"
)


def test_sosl_matches_formatted_phones_by_digits(sf: Salesforce, emulator: SalesforceEmulator) -> None:
    by_e164 = sf.search(PHONE_SEARCH.format(digits=SAMPLE_PHONE.lstrip("+")))["searchRecords"]
    assert [(r["attributes"]["type"], r["Id"]) for r in by_e164] == [("Contact", emulator.seed_ids["contact_john"])]
    assert sf.search(PHONE_SEARCH.format(digits="2025550143"))["searchRecords"][0]["Phone"] == "(202) 555-0143"
    assert [r["Id"] for r in sf.search(PHONE_SEARCH.format(digits=r"\+12125550188"))["searchRecords"]] == [
        emulator.seed_ids["contact_ann"]
    ]
    jane = sf.search(PHONE_SEARCH.format(digits="4155550100"))["searchRecords"]
    assert [r["Id"] for r in jane] == [emulator.seed_ids["contact_jane"]]  # her converted Lead is excluded
    with_converted = sf.search("FIND {4155550100} IN PHONE FIELDS RETURNING Lead(Id, IsConverted)")["searchRecords"]
    assert [r["Id"] for r in with_converted] == [emulator.seed_ids["lead_jane_converted"]]
    assert sf.search(PHONE_SEARCH.format(digits="9995550100"))["searchRecords"] == []
    assert sf.quick_search("Bob")["searchRecords"][0]["Id"] == emulator.seed_ids["lead_bob"]


def test_sosl_errors(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as unescaped:
        sf.search(PHONE_SEARCH.format(digits=SAMPLE_PHONE))  # a leading '+' must be escaped
    assert error_of(unescaped)["errorCode"] == "MALFORMED_SEARCH"
    with pytest.raises(SalesforceMalformedRequest) as bad_type:
        sf.search("FIND {2025550143} RETURNING Opportunity(Id)")
    assert error_of(bad_type)["errorCode"] == "INVALID_TYPE"
    with pytest.raises(SalesforceMalformedRequest) as bad_field:
        sf.search("FIND {2025550143} RETURNING Contact(Id, Foo__c)")
    assert error_of(bad_field)["errorCode"] == "INVALID_FIELD"


def test_sosl_index_lag_hides_new_records() -> None:
    with SalesforceEmulator(seed_records=False) as lagging:
        client = connect(lagging)
        client.Lead.create({"LastName": "New", "Company": "C", "Phone": "(303) 555-0111"})
        lagging.set_search_lag(60)
        assert client.search(PHONE_SEARCH.format(digits="3035550111"))["searchRecords"] == []
        assert client.query("SELECT Id FROM Lead WHERE Phone = '(303) 555-0111'")["totalSize"] == 1  # SOQL: no lag
        lagging.set_search_lag(0)
        assert len(client.search(PHONE_SEARCH.format(digits="3035550111"))["searchRecords"]) == 1


def test_parameterized_search(sf: Salesforce, emulator: SalesforceEmulator) -> None:
    found = sf.restful(
        "parameterizedSearch",
        params={"q": "2025550143", "in": "PHONE", "sobject": "Contact", "Contact.fields": "Id,Phone"},
    )
    assert [(r["Id"], r["Phone"]) for r in found["searchRecords"]] == [
        (emulator.seed_ids["contact_john"], "(202) 555-0143")
    ]


# --- composite and collections ---------------------------------------------------------------------------------
def composite(sf: Salesforce, all_or_none: bool, *subrequests: dict[str, Any]) -> list[dict[str, Any]]:
    answer = sf.restful(
        "composite", method="POST", json={"allOrNone": all_or_none, "compositeRequest": list(subrequests)}
    )
    return answer["compositeResponse"]


def test_composite_resolves_references_and_counts_once(sf: Salesforce, emulator: SalesforceEmulator) -> None:
    before = emulator.api_calls()
    responses = composite(
        sf,
        True,
        {
            "method": "POST",
            "url": f"{V}/sobjects/Lead",
            "referenceId": "newLead",
            "body": {"LastName": "Ref", "Company": "Co", "Phone": "(404) 555-0100"},
        },
        {
            "method": "POST",
            "url": f"{V}/sobjects/Task",
            "referenceId": "newTask",
            "body": {"WhoId": "@{newLead.id}", "Subject": "Call", "Status": "Completed", "CallObject": "2x-ref"},
        },
        {
            "method": "PATCH",
            "url": f"{V}/sobjects/Lead/@{{newLead.id}}",
            "referenceId": "touch",
            "body": {"Status": "Working - Contacted"},
        },
        {
            "method": "GET",
            "url": f"{V}/query/?q=SELECT+Id,WhoId+FROM+Task+WHERE+CallObject='2x-ref'",
            "referenceId": "find",
        },
        {"method": "GET", "url": f"{V}/sobjects/Task/@{{find.records[0].Id}}?fields=Subject", "referenceId": "read"},
    )
    assert emulator.api_calls() == before + 1
    assert [r["httpStatusCode"] for r in responses] == [201, 201, 204, 200, 200]
    lead_id = responses[0]["body"]["id"]
    assert responses[0]["httpHeaders"] == {"Location": f"{V}/sobjects/Lead/{lead_id}"}
    assert responses[3]["body"]["records"][0]["WhoId"] == lead_id
    assert responses[4]["body"]["Subject"] == "Call" and responses[4]["referenceId"] == "read"
    assert emulator.get("Lead", lead_id)["Status"] == "Working - Contacted"


def test_composite_all_or_none_rolls_back(sf: Salesforce, emulator: SalesforceEmulator) -> None:
    leads, tasks = len(emulator.records("Lead")), len(emulator.records("Task"))
    responses = composite(
        sf,
        True,
        {
            "method": "POST",
            "url": f"{V}/sobjects/Lead",
            "referenceId": "lead",
            "body": {"LastName": "A", "Company": "B"},
        },
        {
            "method": "POST",
            "url": f"{V}/sobjects/Task",
            "referenceId": "task",
            "body": {"WhoId": "@{lead.id}", "Subject": "Call", "CallType": "Sideways"},
        },
        {"method": "POST", "url": f"{V}/sobjects/Task", "referenceId": "after", "body": {"Subject": "x"}},
    )
    assert [r["httpStatusCode"] for r in responses] == [400, 400, 400]
    assert responses[1]["body"][0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    for halted in (responses[0], responses[2]):
        assert halted["body"] == [
            {
                "errorCode": "PROCESSING_HALTED",
                "message": ("The transaction was rolled back since another operation in the same transaction failed."),
            }
        ]
    assert (len(emulator.records("Lead")), len(emulator.records("Task"))) == (leads, tasks)


def test_composite_all_or_none_covers_collection_subrequests(sf: Salesforce, emulator: SalesforceEmulator) -> None:
    """A collection answers 200 with a failed record; inside an allOrNone composite that still rolls back all."""
    tasks = len(emulator.records("Task"))
    responses = composite(
        sf,
        True,
        {"method": "POST", "url": f"{V}/sobjects/Task", "referenceId": "single", "body": {"Subject": "a"}},
        {
            "method": "POST",
            "url": f"{V}/composite/sobjects",
            "referenceId": "many",
            "body": {
                "allOrNone": False,
                "records": [
                    {"attributes": {"type": "Task"}, "Subject": "b"},
                    {"attributes": {"type": "Task"}, "CallType": "Sideways"},
                ],
            },
        },
    )
    assert responses[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert [r["success"] for r in responses[1]["body"]] == [False, False]  # allOrNone forced on the collection
    assert len(emulator.records("Task")) == tasks


def test_composite_without_all_or_none_halts_only_dependents(sf: Salesforce, emulator: SalesforceEmulator) -> None:
    responses = composite(
        sf,
        False,
        {"method": "POST", "url": f"{V}/sobjects/Lead", "referenceId": "bad", "body": {"LastName": "NoCompany"}},
        {"method": "POST", "url": f"{V}/sobjects/Task", "referenceId": "dependent", "body": {"WhoId": "@{bad.id}"}},
        {"method": "POST", "url": f"{V}/sobjects/Task", "referenceId": "independent", "body": {"Subject": "ok"}},
        {"method": "GET", "url": f"{V}/sobjects/Task/@{{independent.Id}}", "referenceId": "wrongCase"},
    )
    assert [r["httpStatusCode"] for r in responses] == [400, 400, 201, 400]
    assert responses[0]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert responses[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert responses[1]["body"][0]["message"].startswith(
        "Invalid reference specified. No value for bad.id found in bad."
    )
    assert "independent.Id" in responses[3]["body"][0]["message"]  # references are case-sensitive: it's "id"
    assert emulator.get("Task", responses[2]["body"]["id"]) is not None


def test_composite_rejects_bad_reference_ids_and_too_many_subrequests(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as bad_reference:
        composite(sf, False, {"method": "GET", "url": f"{V}/limits", "referenceId": "ref[1]"})
    assert error_of(bad_reference)["errorCode"] == "JSON_PARSER_ERROR"
    with pytest.raises(SalesforceMalformedRequest):
        composite(
            sf,
            False,
            *(
                {"method": "POST", "url": f"{V}/sobjects/Task", "referenceId": f"t{i}", "body": {"Subject": "x"}}
                for i in range(26)
            ),
        )


def test_collections_create_and_update_report_per_record(sf: Salesforce, emulator: SalesforceEmulator) -> None:
    created = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Task"}, "Subject": "Call", "CallObject": "2x-c1"},
                {"attributes": {"type": "Lead"}, "LastName": "Missing company"},
                {"attributes": {"type": "Contact"}, "LastName": "Col", "Phone": "(505) 555-0100"},
            ],
        },
    )
    assert [r["success"] for r in created] == [True, False, True]
    assert created[1] == {
        "success": False,
        "errors": [
            {
                "statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [Company]",
                "fields": ["Company"],
            }
        ],
    }
    task_id, contact_id = created[0]["id"], created[2]["id"]
    updated = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Task"}, "id": task_id, "Status": "Completed"},
                {"attributes": {"type": "Contact"}, "id": task_id, "LastName": "Wrong type"},
                {"attributes": {"type": "Contact"}, "LastName": "No id"},
                {"attributes": {"type": "Contact"}, "id": contact_id, "TwoX_Wrong_Number__c": True},
            ]
        },
    )
    assert [r["success"] for r in updated] == [True, False, False, True]
    assert updated[1]["errors"][0] == {
        "statusCode": "MALFORMED_ID",
        "fields": ["Id"],
        "message": f"Contact ID: id value of incorrect type: {task_id}",
    }
    assert updated[2]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    assert emulator.get("Task", task_id)["IsClosed"] is True
    assert emulator.get("Contact", contact_id)["TwoX_Wrong_Number__c"] is True


def test_collections_all_or_none_rolls_back(sf: Salesforce, emulator: SalesforceEmulator) -> None:
    before = len(emulator.records("Task"))
    results = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "Task"}, "Subject": "ok"},
                {"attributes": {"type": "Task"}, "TaskSubtype": "Fax"},
            ],
        },
    )
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert len(emulator.records("Task")) == before
    with pytest.raises(SalesforceMalformedRequest) as deserialize:  # a type error refuses the whole request
        sf.restful(
            "composite/sobjects",
            method="POST",
            json={
                "records": [
                    {"attributes": {"type": "Task"}, "Subject": "ok"},
                    {"attributes": {"type": "Task"}, "CallDurationInSeconds": "33"},
                ]
            },
        )
    assert error_of(deserialize)["errorCode"] == "JSON_PARSER_ERROR"
    assert len(emulator.records("Task")) == before


# --- limits, sessions, faults ----------------------------------------------------------------------------------
def test_limits_and_api_usage_header(sf: Salesforce, emulator: SalesforceEmulator) -> None:
    limits = sf.limits()
    used = emulator.api_calls()
    assert limits["DailyApiRequests"] == {"Max": 100_000, "Remaining": 100_000 - used}
    sf.query("SELECT Id FROM Account")
    assert sf.api_usage["api-usage"].used == used + 1 == emulator.api_calls()
    assert sf.api_usage["api-usage"].total == 100_000


def test_expired_session_raises_expired_session() -> None:
    with SalesforceEmulator(session_ids=["first"]) as org:
        client = connect(org, "first")
        client.query("SELECT Id FROM Contact")
        org.expire_sessions()
        with pytest.raises(SalesforceExpiredSession) as exc:
            client.query("SELECT Id FROM Contact")
        assert exc.value.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
        with pytest.raises(SalesforceExpiredSession):
            connect(org, "never-issued").Contact.create({"LastName": "x"})
        org.add_session("second")
        assert connect(org, "second").query("SELECT Id FROM Contact")["totalSize"] == 3
        assert org.api_calls() == 2  # refused requests are not counted


def test_daily_limit_refuses_with_request_limit_exceeded() -> None:
    with SalesforceEmulator(daily_limit=3) as org:
        client = connect(org)
        for _ in range(3):
            client.query("SELECT Id FROM Lead")
        assert client.api_usage["api-usage"] == (3, 3)
        with pytest.raises(SalesforceRefusedRequest) as exc:
            client.Lead.create({"LastName": "L", "Company": "C"})
        assert error_of(exc) == {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        assert org.api_calls() == 3 and len(org.records("Lead")) == 2


def test_fail_next_unable_to_lock_row(emulator: SalesforceEmulator, sf: Salesforce) -> None:
    lead = emulator.seed_ids["lead_bob"]
    emulator.fail_next(path_contains=f"/sobjects/Lead/{lead}")
    sf.query("SELECT Id FROM Lead")  # other paths are unaffected
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Lead.update(lead, {"Status": "Working - Contacted"})
    assert error_of(exc) == {
        "errorCode": "UNABLE_TO_LOCK_ROW",
        "fields": [],
        "message": f"unable to obtain exclusive access to this record or 1 records: {lead}",
    }
    assert sf.Lead.update(lead, {"Status": "Working - Contacted"}) == 204  # the retry succeeds
    emulator.fail_next(2, status=503, error_code="SERVER_UNAVAILABLE")
    for _ in range(2):
        with pytest.raises(SalesforceGeneralError) as unavailable:
            sf.query("SELECT Id FROM Lead")
        assert unavailable.value.status == 503
    assert sf.query("SELECT Id FROM Lead")["totalSize"] >= 2


def test_fail_next_inside_composite_triggers_rollback(emulator: SalesforceEmulator, sf: Salesforce) -> None:
    leads = len(emulator.records("Lead"))
    emulator.fail_next(path_contains="/sobjects/Task")
    responses = composite(
        sf,
        True,
        {
            "method": "POST",
            "url": f"{V}/sobjects/Lead",
            "referenceId": "lead",
            "body": {"LastName": "A", "Company": "B"},
        },
        {"method": "POST", "url": f"{V}/sobjects/Task", "referenceId": "task", "body": {"WhoId": "@{lead.id}"}},
    )
    assert [r["body"][0]["errorCode"] for r in responses] == ["PROCESSING_HALTED", "UNABLE_TO_LOCK_ROW"]
    assert len(emulator.records("Lead")) == leads


def test_unexpected_errors_are_salesforce_shaped(
    emulator: SalesforceEmulator, sf: Salesforce, monkeypatch: pytest.MonkeyPatch
) -> None:
    import connector.emulators.salesforce.rest as rest

    def boom(org: Any) -> Any:
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(rest, "limits", boom)
    with pytest.raises(SalesforceGeneralError) as exc:
        sf.limits()
    assert exc.value.status == 500
    assert error_of(exc)["errorCode"] == "UNKNOWN_EXCEPTION"
    assert "internal detail" not in json.dumps(exc.value.content) and "Traceback" not in json.dumps(exc.value.content)


def test_request_log_records_bodies_and_counts(emulator: SalesforceEmulator, sf: Salesforce) -> None:
    sf.Task.create({"Subject": "logged", "CallObject": "2x-log"})
    entry = emulator.request_log[-1]
    assert (entry["method"], entry["path"], entry["status"], entry["counted"]) == (
        "POST",
        f"{V}/sobjects/Task/",
        201,
        True,
    )
    assert entry["body"] == {"Subject": "logged", "CallObject": "2x-log"}


def test_module_main_prints_connection_details() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "connector.emulators.salesforce.server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert lines[0].startswith("instance_url: https://127.0.0.1:")
    assert lines[1].startswith("ca_file:") and lines[1].strip().endswith("ca.pem")
    assert lines[2].strip() == "session_id:   sandbox-salesforce-session"
    assert process.returncode == 0 and not Path(lines[1].split(":", 1)[1].strip()).exists()  # SIGTERM cleans up


# --- set-up surfaces: Tooling API fields, field-level security, permissions, userinfo ----------------------------
CHECKBOX = {
    "FullName": "Contact.TwoX_Wrong_Number__c",
    "Metadata": {"type": "Checkbox", "label": "2X Wrong Number", "defaultValue": "false"},
}


def test_a_tooling_field_is_invisible_until_a_permission_set_grants_it() -> None:
    with SalesforceEmulator(with_custom_fields=False) as bare:
        sf = connect(bare)
        created = sf.toolingexecute("sobjects/CustomField/", method="POST", data=CHECKBOX)
        assert created["success"] and created["id"].startswith("00N")
        with pytest.raises(SalesforceMalformedRequest) as duplicate:
            sf.toolingexecute("sobjects/CustomField/", method="POST", data=CHECKBOX)
        assert error_of(duplicate)["errorCode"] == "DUPLICATE_DEVELOPER_NAME"
        listed = sf.toolingexecute(
            "query/",
            params={"q": "SELECT Id, DeveloperName, TableEnumOrId FROM CustomField WHERE TableEnumOrId = 'Contact'"},
        )
        assert [(r["DeveloperName"], r["TableEnumOrId"]) for r in listed["records"]] == [
            ("TwoX_Wrong_Number", "Contact")
        ]

        john = bare.seed_ids["contact_john"]  # no field-level security yet: as if the field did not exist
        assert "TwoX_Wrong_Number__c" not in {f["name"] for f in sf.Contact.describe()["fields"]}
        with pytest.raises(SalesforceMalformedRequest) as write:
            sf.Contact.update(john, {"TwoX_Wrong_Number__c": True})
        assert error_of(write) == {
            "errorCode": "INVALID_FIELD",
            "message": "No such column 'TwoX_Wrong_Number__c' on sobject of type Contact",
        }
        with pytest.raises(SalesforceMalformedRequest) as select:
            sf.query("SELECT TwoX_Wrong_Number__c FROM Contact")
        assert error_of(select)["errorCode"] == "INVALID_FIELD"
        assert "If you are attempting to use a custom field, be sure to append the '__c'" in error_of(select)["message"]

        permission_set = sf.PermissionSet.create({"Name": "TwoX_Connector", "Label": "2X Connector"})["id"]
        grant = sf.FieldPermissions.create(
            {
                "ParentId": permission_set,
                "SobjectType": "Contact",
                "PermissionsRead": True,
                "Field": "Contact.TwoX_Wrong_Number__c",
            }
        )["id"]
        user = sf.oauth2("userinfo")["user_id"]
        assert user.startswith("005")
        with pytest.raises(SalesforceMalformedRequest):  # granted, but not assigned to the user: still invisible
            sf.Contact.update(john, {"TwoX_Wrong_Number__c": True})
        sf.PermissionSetAssignment.create({"PermissionSetId": permission_set, "AssigneeId": user})
        with pytest.raises(SalesforceMalformedRequest) as read_only:
            sf.Contact.update(john, {"TwoX_Wrong_Number__c": True})
        assert error_of(read_only)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
        assert (
            sf.query(f"SELECT TwoX_Wrong_Number__c FROM Contact WHERE Id = '{john}'")["records"][0][
                "TwoX_Wrong_Number__c"
            ]
            is False
        )  # readable: existing rows hold the checkbox's default
        sf.FieldPermissions.update(grant, {"PermissionsEdit": True})
        sf.Contact.update(john, {"TwoX_Wrong_Number__c": True})
        assert bare.get("Contact", john)["TwoX_Wrong_Number__c"] is True
        with pytest.raises(SalesforceMalformedRequest) as again:
            sf.PermissionSetAssignment.create({"PermissionSetId": permission_set, "AssigneeId": user})
        assert error_of(again)["errorCode"] == "DUPLICATE_VALUE"


def test_a_user_without_setup_permissions_is_refused() -> None:
    with SalesforceEmulator(with_custom_fields=False) as bare:
        bare.set_user_permissions(customize_application=False, manage_users=False)
        sf = connect(bare)
        with pytest.raises(SalesforceMalformedRequest) as field:
            sf.toolingexecute("sobjects/CustomField/", method="POST", data=CHECKBOX)
        with pytest.raises(SalesforceMalformedRequest) as permission_set:
            sf.PermissionSet.create({"Name": "TwoX_Connector", "Label": "2X Connector"})
        refused = "INSUFFICIENT_ACCESS_OR_READONLY"
        assert error_of(field)["errorCode"] == error_of(permission_set)["errorCode"] == refused
        assert bare.custom_fields() == [] and bare.records("PermissionSet") == []
        with pytest.raises(SalesforceMalformedRequest) as text_field:  # a Text field needs its length
            bare.set_user_permissions()
            sf.toolingexecute(
                "sobjects/CustomField/",
                method="POST",
                data={"FullName": "Lead.TwoX_Last_Call_Outcome__c", "Metadata": {"type": "Text", "label": "x"}},
            )
        assert error_of(text_field)["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
