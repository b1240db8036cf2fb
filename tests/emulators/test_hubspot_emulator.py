"""The HubSpot emulator, driven by the real hubspot-api-client v12.

Why the real SDK: the SDK maps each endpoint's expected status to a model and silently returns None for any other
2xx, raises per-status exception classes, and serializes query lists its own way. A fake that only a hand-written
HTTP client has talked to would hide exactly the mismatches the HubSpot sink would hit in production.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import hubspot
import pytest
from hubspot.crm.associations.v4 import AssociationSpec
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import NotFoundException, ServiceException, UnauthorizedException
from hubspot.crm.objects.calls import SimplePublicObjectInputForCreate as CallInput
from hubspot.crm.objects.tasks import SimplePublicObjectInputForCreate as TaskInput
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate

from connector.emulators.hubspot.server import HubSpotEmulator

TOKEN = "test-hubspot-token"
SAMPLE_E164 = "+12025550143"  # the connector's sample number; seeded as "(202) 555-0143"


@pytest.fixture(scope="module")
def emulator() -> Iterator[HubSpotEmulator]:
    """One emulator for the module. Search pacing is off and the burst limit high so tests do not trip limits
    meant for the dedicated tests below."""
    with HubSpotEmulator(tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None) as running:
        yield running


@pytest.fixture(scope="module")
def client(emulator: HubSpotEmulator) -> hubspot.Client:
    return hubspot.Client.create(access_token=TOKEN, host=emulator.url)


def client_for(emulator: HubSpotEmulator, token: str = TOKEN) -> hubspot.Client:
    return hubspot.Client.create(access_token=token, host=emulator.url)


def error_of(exc: Any, status: int) -> dict[str, Any]:
    """HubSpot's error body as the SDK surfaces it, with the fields every HubSpot error carries."""
    assert exc.status == status
    body = json.loads(exc.body)
    assert body["status"] == "error"
    assert isinstance(body["message"], str) and body["message"]
    uuid.UUID(body["correlationId"])
    return body


def unique_email() -> str:
    return f"{uuid.uuid4().hex[:12]}@example.com"


def new_contact(client: hubspot.Client, **properties: str) -> Any:
    created = client.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties=properties))
    assert created is not None, "create must answer 201 or the SDK returns None"
    return created


def search(client: hubspot.Client, filters: list[dict[str, Any]], **kwargs: Any) -> Any:
    request = PublicObjectSearchRequest(filter_groups=[{"filters": filters}], **kwargs)
    return client.crm.contacts.search_api.do_search(public_object_search_request=request)


# -- contacts: create, read, update, search ---------------------------------------------------------


def test_create_read_update_round_trip(client: hubspot.Client, emulator: HubSpotEmulator) -> None:
    """201 on create (else the SDK returns None); values come back as strings; "" clears; a requested but
    undefined property is omitted while a defined unset one is null."""
    created = new_contact(client, email=unique_email(), firstname="Ada", zip="02139", hs_lead_status="NEW")
    props = created.properties
    assert props["hs_object_id"] == created.id and props["createdate"] and props["lastmodifieddate"]
    assert created.created_at is not None and created.archived is False

    read = client.crm.contacts.basic_api.get_by_id(created.id, properties=["firstname", "lastname", "no_such"])
    assert read.properties["firstname"] == "Ada"
    assert read.properties["lastname"] is None
    assert "no_such" not in read.properties

    updated = client.crm.contacts.basic_api.update(
        created.id, SimplePublicObjectInput(properties={"firstname": "", "hs_lead_status": "CONNECTED"})
    )
    assert updated is not None
    assert "firstname" not in updated.properties and updated.properties["hs_lead_status"] == "CONNECTED"
    assert emulator.get("contacts", created.id)["properties"]["hs_lead_status"] == "CONNECTED"


@pytest.mark.parametrize("value", [SAMPLE_E164, "2025550143", "202-555-0143"])
def test_phone_search_matches_formatted_number(client: hubspot.Client, value: str) -> None:
    """A contact typed as "(202) 555-0143" is found by the E.164 number: HubSpot compares phones through their
    national digits (search guide, "Limits")."""
    found = search(client, [{"propertyName": "phone", "operator": "EQ", "value": value}], properties=["phone"])
    assert found.total == 1
    assert found.results[0].properties["phone"] == "(202) 555-0143"


def test_phone_or_mobilephone_groups_are_ored(client: hubspot.Client) -> None:
    request = PublicObjectSearchRequest(
        filter_groups=[
            {"filters": [{"propertyName": "phone", "operator": "EQ", "value": "+13125550199"}]},
            {"filters": [{"propertyName": "mobilephone", "operator": "EQ", "value": "+13125550199"}]},
        ],
        properties=["mobilephone", "phone"],
    )
    found = client.crm.contacts.search_api.do_search(public_object_search_request=request)
    assert [r.properties["mobilephone"] for r in found.results] == ["(312) 555-0199"]
    assert found.results[0].properties["phone"] is None


def test_search_operators_sorting_and_paging(client: hubspot.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    ids = [new_contact(client, email=unique_email(), lastname=f"Zed{tag}", zip=str(90000 + i)).id for i in range(5)]
    base = [{"propertyName": "lastname", "operator": "EQ", "value": f"zed{tag}"}]  # text EQ ignores case
    assert search(client, base).total == 5
    assert search(client, [*base, {"propertyName": "zip", "operator": "IN", "values": ["90001", "90003"]}]).total == 2
    between = {"propertyName": "zip", "operator": "BETWEEN", "value": "90001", "highValue": "90003"}
    assert search(client, [*base, between]).total == 3
    assert search(client, [*base, {"propertyName": "hs_lead_status", "operator": "NOT_HAS_PROPERTY"}]).total == 5
    assert (
        search(client, [{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@example.com"}, *base]).total
        == 5
    )

    first = search(client, base, sorts=["-createdate"], limit=2)
    assert [r.id for r in first.results] == ids[::-1][:2]
    assert first.paging.next.after == "2"
    rest = search(client, base, sorts=[{"propertyName": "zip", "direction": "DESCENDING"}], limit=2, after="4")
    assert [r.id for r in rest.results] == [ids[0]] and rest.paging is None


def test_search_limits_are_enforced(client: hubspot.Client) -> None:
    """5 filter groups, 6 filters per group, 18 filters in all (search guide); BETWEEN needs a highValue."""
    eq = {"propertyName": "zip", "operator": "EQ", "value": "1"}
    too_many_groups = PublicObjectSearchRequest(filter_groups=[{"filters": [eq]}] * 6)
    with pytest.raises(ApiException) as caught:
        client.crm.contacts.search_api.do_search(public_object_search_request=too_many_groups)
    assert error_of(caught.value, 400)["category"] == "VALIDATION_ERROR"
    with pytest.raises(ApiException) as caught:
        search(client, [eq] * 7)
    assert error_of(caught.value, 400)["category"] == "VALIDATION_ERROR"
    with pytest.raises(ApiException) as caught:
        search(client, [{"propertyName": "zip", "operator": "BETWEEN", "value": "1"}])
    assert "operator BETWEEN requires a highValue" in error_of(caught.value, 400)["message"]
    with pytest.raises(ApiException) as caught:
        search(client, [eq], limit=201)
    error_of(caught.value, 400)


def test_list_pages_by_cursor(client: hubspot.Client) -> None:
    first = client.crm.contacts.basic_api.get_page(limit=2, properties=["email"])
    assert len(first.results) == 2 and first.paging.next.after
    second = client.crm.contacts.basic_api.get_page(limit=2, after=first.paging.next.after)
    assert {r.id for r in first.results}.isdisjoint({r.id for r in second.results})


def test_archive_hides_from_reads_and_search(client: hubspot.Client, emulator: HubSpotEmulator) -> None:
    contact = new_contact(client, email=unique_email(), lastname="Gone")
    assert client.crm.contacts.basic_api.archive(contact.id) is None
    with pytest.raises(NotFoundException):
        client.crm.contacts.basic_api.get_by_id(contact.id)
    assert search(client, [{"propertyName": "hs_object_id", "operator": "EQ", "value": contact.id}]).total == 0
    assert emulator.get("contacts", contact.id)["archived"] is True


# -- activities and associations ------------------------------------------------------------------


def test_call_with_inline_association(client: hubspot.Client, emulator: HubSpotEmulator) -> None:
    """The sink's main write: a call on the contact's timeline (association type 194), read back through v4."""
    contact = new_contact(client, email=unique_email())
    call = client.crm.objects.calls.basic_api.create(
        CallInput(
            properties={
                "hs_timestamp": "1714564800000",
                "hs_call_title": "2X call",
                "hs_call_duration": 61000,
                "hs_call_direction": "OUTBOUND",
                "hs_call_status": "COMPLETED",
                "hs_call_body": "<p>Hi</p>",
            },
            associations=[
                {
                    "to": {"id": contact.id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}],
                }
            ],
        )
    )
    assert call is not None
    assert call.properties["hs_timestamp"] == "2024-05-01T12:00:00Z"  # epoch ms in, ISO out
    assert call.properties["hs_call_duration"] == "61000"

    page = client.crm.associations.v4.basic_api.get_page("calls", call.id, "contacts")
    assert [(int(r.to_object_id), [t.type_id for t in r.association_types]) for r in page.results] == [
        (int(contact.id), [194])
    ]
    back = client.crm.associations.v4.basic_api.get_page("contacts", contact.id, "calls")
    assert [t.type_id for t in back.results[0].association_types] == [193]
    read = client.crm.objects.calls.basic_api.get_by_id(call.id, associations=["contacts"])
    assert read.associations["contacts"].results[0].id == contact.id
    assert read.associations["contacts"].results[0].type == "call_to_contact"
    assert emulator.associations("calls", call.id, "contacts") == [contact.id]
    assert emulator.get("calls", call.id)["associations"] == {"contacts": [contact.id]}


def test_tasks_found_by_associated_contact(client: hubspot.Client) -> None:
    contact = new_contact(client, email=unique_email())
    task = client.crm.objects.tasks.basic_api.create(
        TaskInput(
            properties={
                "hs_timestamp": "2030-01-02T10:00:00Z",
                "hs_task_subject": "Call back",
                "hs_task_status": "NOT_STARTED",
                "hs_task_priority": "HIGH",
                "hs_task_type": "CALL",
            },
            associations=[
                {
                    "to": {"id": contact.id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}],
                }
            ],
        )
    )
    from hubspot.crm.objects.tasks import PublicObjectSearchRequest as TaskSearch

    found = client.crm.objects.tasks.search_api.do_search(
        public_object_search_request=TaskSearch(
            filter_groups=[
                {"filters": [{"propertyName": "associations.contact", "operator": "EQ", "value": contact.id}]}
            ],
            properties=["hs_task_subject"],
        )
    )
    assert [r.id for r in found.results] == [task.id]
    assert found.results[0].properties["hs_task_subject"] == "Call back"


def test_inline_association_to_missing_contact_is_rejected(client: hubspot.Client, emulator: HubSpotEmulator) -> None:
    from hubspot.crm.objects.calls import ApiException as CallsApiException

    before = len(emulator.objects("calls"))
    with pytest.raises(CallsApiException) as caught:
        client.crm.objects.calls.basic_api.create(
            CallInput(
                properties={"hs_timestamp": "2024-05-01T12:00:00Z"},
                associations=[
                    {
                        "to": {"id": "999999"},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}],
                    }
                ],
            )
        )
    body = error_of(caught.value, 400)
    assert body["message"] == "One or more associations are invalid"
    assert body["context"] == {"INVALID_OBJECT_IDS": ["CONTACT=999999 is not valid"]}
    assert len(emulator.objects("calls")) == before  # nothing written


def test_v4_default_and_labelled_associations(client: hubspot.Client, emulator: HubSpotEmulator) -> None:
    contact = new_contact(client, email=unique_email())
    call = client.crm.objects.calls.basic_api.create(CallInput(properties={"hs_timestamp": "2024-05-01T12:00:00Z"}))
    result = client.crm.associations.v4.basic_api.create_default("calls", call.id, "contacts", contact.id)
    assert result is not None and result.status == "COMPLETE"
    assert emulator.associations("contacts", contact.id, "calls") == [call.id]

    task = client.crm.objects.tasks.basic_api.create(TaskInput(properties={"hs_timestamp": "2024-05-01T12:00:00Z"}))
    pair = client.crm.associations.v4.basic_api.create(
        "tasks",
        task.id,
        "contacts",
        contact.id,
        [AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=204)],
    )
    assert pair is not None and pair.to_object_type_id == "0-1" and pair.from_object_type_id == "0-27"
    assert emulator.associations("tasks", task.id, "contacts") == [contact.id]


# -- batch ------------------------------------------------------------------------------------------


def test_batch_create_update_read_with_partial_errors(client: hubspot.Client) -> None:
    created = client.crm.contacts.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                {"properties": {"email": unique_email(), "firstname": "One"}},
                {"properties": {"email": unique_email(), "firstname": "Two"}},
            ]
        )
    )
    assert created is not None, "batch create must answer 201"
    ids = [r.id for r in created.results]
    assert len(ids) == 2

    updated = client.crm.contacts.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[
                {"id": ids[0], "properties": {"lastname": "Batch"}},
                {"id": "987654", "properties": {"lastname": "X"}},
            ]
        )
    )
    assert updated is not None, "a partial failure is a 207 the SDK maps to ...WithErrors"
    assert [r.id for r in updated.results] == [ids[0]]
    assert updated.num_errors == 1
    assert updated.errors[0].category == "OBJECT_NOT_FOUND" and updated.errors[0].context == {"ids": ["987654"]}

    read = client.crm.contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": ids[0]}, {"id": ids[1]}, {"id": "987654"}],
            properties=["lastname"],
            properties_with_history=[],
        )
    )
    assert sorted((r.id, r.properties["lastname"]) for r in read.results) == sorted([(ids[0], "Batch"), (ids[1], None)])
    assert read.errors[0].context == {"ids": ["987654"]}


def test_batch_rejects_more_than_100_inputs_and_invalid_values(client: hubspot.Client) -> None:
    inputs = [{"properties": {"email": unique_email()}} for _ in range(101)]
    with pytest.raises(ApiException) as caught:
        client.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs))
    error_of(caught.value, 400)
    with pytest.raises(ApiException) as caught:
        client.crm.contacts.batch_api.create(
            BatchInputSimplePublicObjectBatchInputForCreate(
                inputs=[
                    {"properties": {"email": unique_email()}},
                    {"properties": {"hs_lead_status": "new"}},
                ]
            )
        )
    assert error_of(caught.value, 400)["errors"][0]["code"] == "INVALID_OPTION"


# -- properties -------------------------------------------------------------------------------------


def test_properties_list_create_and_conflict(client: hubspot.Client) -> None:
    from hubspot.crm.properties import ApiException as PropertiesApiException

    listed = {p.name: p for p in client.crm.properties.core_api.get_all("contacts").results}
    assert {"NEW", "ATTEMPTED_TO_CONTACT", "BAD_TIMING"} <= {o.value for o in listed["hs_lead_status"].options}
    assert "twox_do_not_call" not in listed  # created by crm-setup, not seeded
    assert "twox" not in {g.name for g in client.crm.properties.groups_api.get_all("contacts").results}  # a new portal
    client.crm.properties.groups_api.create("contacts", PropertyGroupCreate(name="twox", label="2X calls"))
    definition = PropertyCreate(
        name="twox_do_not_call",
        label="2X: do not call",
        type="bool",
        field_type="booleancheckbox",
        group_name="no_such_group",
    )
    with pytest.raises(PropertiesApiException) as caught:
        client.crm.properties.core_api.create("contacts", definition)
    assert error_of(caught.value, 400)["category"] == "VALIDATION_ERROR"

    definition = PropertyCreate(
        name="twox_do_not_call", label="2X: do not call", type="bool", field_type="booleancheckbox", group_name="twox"
    )
    created = client.crm.properties.core_api.create("contacts", definition)
    assert created is not None and created.name == "twox_do_not_call" and created.type == "bool"
    assert client.crm.properties.core_api.get_by_name("contacts", "twox_do_not_call").group_name == "twox"
    with pytest.raises(PropertiesApiException) as caught:
        client.crm.properties.core_api.create("contacts", definition)
    assert error_of(caught.value, 409)["category"] == "OBJECT_ALREADY_EXISTS"

    bad_pair = PropertyCreate(name="twox_x", label="x", type="number", field_type="text", group_name="twox")
    with pytest.raises(PropertiesApiException) as caught:
        client.crm.properties.core_api.create("contacts", bad_pair)
    error_of(caught.value, 400)
    with pytest.raises(PropertiesApiException) as caught:
        client.crm.properties.core_api.create("contacts", {"name": "twox_y", "type": "string"})
    assert "Some required fields were not set" in error_of(caught.value, 400)["message"]

    contact = new_contact(client, email=unique_email(), twox_do_not_call="true")
    assert contact.properties["twox_do_not_call"] == "true"


# -- validation errors, as the SDK surfaces them ----------------------------------------------------

CONTACT_REJECTIONS = [
    ({"favourite_colour": "blue"}, "PROPERTY_DOESNT_EXIST", 'Property "favourite_colour" does not exist'),
    ({"hs_lead_status": "new"}, "INVALID_OPTION", "new was not one of the allowed options: [NEW, OPEN,"),
    ({"hubspot_owner_id": "29947847357121"}, "INVALID_INTEGER", "was not a valid integer (for owner ID)."),
    ({"email": "not-an-email"}, "INVALID_EMAIL", "Email address not-an-email is invalid"),
    ({"hs_object_id": "5"}, "READ_ONLY_VALUE", "calculated property"),
    ({"hs_lead_status": " NEW"}, "LEADING_TRAILING_WHITESPACE", "includes leading or trailing whitespace"),
    ({"message": "x" * 65_537}, "MAX_LENGTH_EXCEEDED", "65536"),
]


@pytest.mark.parametrize(("properties", "code", "text"), CONTACT_REJECTIONS)
def test_contact_rejections(client: hubspot.Client, properties: dict[str, str], code: str, text: str) -> None:
    with pytest.raises(ApiException) as caught:
        new_contact(client, **properties)
    body = error_of(caught.value, 400)
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: [{")
    name = next(iter(properties))
    assert body["errors"] == [
        {"message": body["errors"][0]["message"], "code": code, "context": {"propertyName": [name]}}
    ]
    assert text in body["errors"][0]["message"]
    embedded = json.loads(body["message"].removeprefix("Property values were not valid: "))
    assert embedded[0]["error"] == code and embedded[0]["name"] == name and embedded[0]["isValid"] is False


CALL_REJECTIONS = [
    ({"hs_timestamp": "yesterday"}, "INVALID_LONG"),
    ({"hs_timestamp": "2024-05-01T12:00:00Z", "hs_call_duration": "a minute"}, "INVALID_LONG"),
    ({"hs_timestamp": "2024-05-01T12:00:00Z", "hs_call_status": "completed"}, "INVALID_OPTION"),
    ({"hs_timestamp": "2024-05-01T12:00:00Z", "hs_call_has_voicemail": "yes"}, "INVALID_OPTION"),
]


@pytest.mark.parametrize(("properties", "code"), CALL_REJECTIONS)
def test_call_rejections(client: hubspot.Client, properties: dict[str, str], code: str) -> None:
    from hubspot.crm.objects.calls import ApiException as CallsApiException

    with pytest.raises(CallsApiException) as caught:
        client.crm.objects.calls.basic_api.create(CallInput(properties=properties))
    assert error_of(caught.value, 400)["errors"][0]["code"] == code


def test_activity_without_hs_timestamp_is_rejected(client: hubspot.Client) -> None:
    from hubspot.crm.objects.tasks import ApiException as TasksApiException

    with pytest.raises(TasksApiException) as caught:
        client.crm.objects.tasks.basic_api.create(TaskInput(properties={"hs_task_subject": "No due date"}))
    body = error_of(caught.value, 400)
    assert body["message"] == "Error creating TASK. Some required properties were not set."
    assert body["context"] == {"properties": ["hs_timestamp"]} and body["category"] == "VALIDATION_ERROR"


def test_date_property_must_be_midnight_utc(client: hubspot.Client) -> None:
    client.crm.properties.core_api.create(
        "contacts",
        PropertyCreate(
            name="twox_test_date", label="d", type="date", field_type="date", group_name="contactinformation"
        ),
    )
    ok = new_contact(client, email=unique_email(), twox_test_date="1714521600000")
    assert ok.properties["twox_test_date"] == "2024-05-01"
    with pytest.raises(ApiException) as caught:
        new_contact(client, email=unique_email(), twox_test_date="1714564800000")
    body = error_of(caught.value, 400)
    assert body["errors"][0]["code"] == "INVALID_DATE"
    assert body["errors"][0]["message"] == "1714564800000 is at 12:0:0.0 UTC, not midnight!"


def test_duplicate_email_is_a_conflict(client: hubspot.Client) -> None:
    email = unique_email()
    first = new_contact(client, email=email)
    with pytest.raises(ApiException) as caught:
        new_contact(client, email=email.upper())
    body = error_of(caught.value, 409)
    assert body["message"] == f"Contact already exists. Existing ID: {first.id}"
    assert body["category"] == "CONFLICT"


def test_not_found(client: hubspot.Client) -> None:
    with pytest.raises(NotFoundException) as caught:
        client.crm.contacts.basic_api.get_by_id("424242")
    assert error_of(caught.value, 404)["message"] == "resource not found"
    with pytest.raises(NotFoundException) as caught:
        client.crm.contacts.basic_api.update("abc", SimplePublicObjectInput(properties={"zip": "1"}))
    body = error_of(caught.value, 404)
    assert body["category"] == "OBJECT_NOT_FOUND" and body["context"] == {"id": ["abc"]}


def test_bad_token_and_rotation(emulator: HubSpotEmulator) -> None:
    with pytest.raises(UnauthorizedException) as caught:
        client_for(emulator, "wrong").crm.contacts.basic_api.get_by_id("1001")
    body = error_of(caught.value, 401)
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["message"].startswith("Authentication credentials not found. This API supports OAuth 2.0")
    emulator.set_tokens([TOKEN, "rotated"])
    try:
        assert client_for(emulator, "rotated").crm.contacts.basic_api.get_by_id("1001").id == "1001"
    finally:
        emulator.set_tokens([TOKEN])


def test_unexpected_failure_is_a_hubspot_500(
    client: hubspot.Client, emulator: HubSpotEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(emulator._store, "indexed", broken)
    with pytest.raises(ServiceException) as caught:
        search(client, [])
    body = error_of(caught.value, 500)
    assert "Traceback" not in str(caught.value.body) and body["category"] == "INTERNAL_ERROR"


# -- limits, lag, injected failures, counting -------------------------------------------------------


def test_ten_secondly_rate_limit() -> None:
    with HubSpotEmulator(tokens=[TOKEN], rate_limit=3, rate_window_s=10.0) as limited:
        client = client_for(limited)
        for remaining in ("2", "1", "0"):
            response = client.crm.contacts.basic_api.get_by_id_with_http_info("1001")
            headers = response[2]
            assert headers["X-HubSpot-RateLimit-Max"] == "3"
            assert headers["X-HubSpot-RateLimit-Remaining"] == remaining
            assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
            assert "X-HubSpot-RateLimit-Daily-Remaining" in headers
        with pytest.raises(ApiException) as caught:
            client.crm.contacts.basic_api.get_by_id("1001")
        assert caught.value.status == 429
        body = json.loads(caught.value.body)
        assert body["message"] == "You have reached your ten_secondly_rolling limit."
        assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
        uuid.UUID(body["correlationId"])
        assert caught.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
        assert "Retry-After" not in caught.value.headers
        assert [r.counted for r in limited.request_log] == [True, True, True, False]


def test_search_has_its_own_secondly_limit() -> None:
    with HubSpotEmulator(tokens=[TOKEN], rate_limit=1, search_rate_per_s=2) as limited:
        client = client_for(limited)
        for _ in range(2):
            response = client.crm.contacts.search_api.do_search_with_http_info(PublicObjectSearchRequest())
            assert not any(h.lower().startswith("x-hubspot-ratelimit") for h in response[2])
        with pytest.raises(ApiException) as caught:
            client.crm.contacts.search_api.do_search(PublicObjectSearchRequest())
        assert caught.value.status == 429
        assert json.loads(caught.value.body)["message"] == "You have reached your secondly limit."
        assert client.crm.contacts.basic_api.get_by_id("1001") is not None  # the burst bucket is separate


def test_search_lag_hides_new_records_from_search_only() -> None:
    """The cause of duplicate contacts: search right after create misses the record; reads by id see it."""
    with HubSpotEmulator(tokens=[TOKEN], search_lag_s=0.4, search_rate_per_s=None) as lagging:
        client = client_for(lagging)
        contact = new_contact(client, phone="+1 646 555 0123")
        by_phone = [{"propertyName": "phone", "operator": "EQ", "value": "6465550123"}]
        assert search(client, by_phone).total == 0
        assert client.crm.contacts.basic_api.get_by_id(contact.id).id == contact.id
        assert search(client, [{"propertyName": "phone", "operator": "EQ", "value": SAMPLE_E164}]).total == 1
        time.sleep(0.45)
        assert search(client, by_phone).total == 1
        lagging.set_search_lag(0)
        client.crm.contacts.basic_api.update(contact.id, SimplePublicObjectInput(properties={"zip": "10001"}))
        assert search(client, [{"propertyName": "zip", "operator": "EQ", "value": "10001"}]).total == 2


def test_fail_next_injects_hubspot_shaped_failures(client: hubspot.Client, emulator: HubSpotEmulator) -> None:
    emulator.fail_next(1, status=503)
    with pytest.raises(ServiceException) as caught:
        client.crm.contacts.basic_api.get_by_id("1001")
    assert error_of(caught.value, 503)["category"] == "SERVICE_UNAVAILABLE"
    assert client.crm.contacts.basic_api.get_by_id("1001") is not None  # only the next one failed

    from hubspot.crm.objects.calls import ApiException as CallsApiException  # each SDK module has its own class

    emulator.fail_next(1, status=429, retry_after=2, path_contains="/objects/calls")
    assert client.crm.contacts.basic_api.get_by_id("1001") is not None  # other paths are untouched
    with pytest.raises(CallsApiException) as caught:
        client.crm.objects.calls.basic_api.create(CallInput(properties={"hs_timestamp": "2024-05-01T12:00:00Z"}))
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "2"

    emulator.fail_next(1, status=423)
    with pytest.raises(ApiException) as caught:
        client.crm.contacts.basic_api.update("1001", SimplePublicObjectInput(properties={"zip": "20001"}))
    error_of(caught.value, 423)


def test_sdk_retries_a_get_that_carries_retry_after(client: hubspot.Client, emulator: HubSpotEmulator) -> None:
    """Worth knowing for the sink: urllib3's default Retry (used by the SDK when no ``retry`` is given) honours
    Retry-After on 429/503 for GET, so such a GET succeeds after a pause; POST and PATCH are never retried."""
    emulator.reset_counters()
    emulator.fail_next(1, status=503, retry_after=0.2)  # sent as "1": Retry-After takes whole seconds
    assert client.crm.contacts.basic_api.get_by_id("1001").id == "1001"
    assert [r.status for r in emulator.request_log] == [503, 200]


def test_request_counting(client: hubspot.Client, emulator: HubSpotEmulator) -> None:
    emulator.reset_counters()
    client.crm.contacts.basic_api.get_by_id("1001")
    client.crm.contacts.basic_api.get_by_id("1002")
    search(client, [])
    assert emulator.request_count() == 3
    assert emulator.request_count(path_prefix="/crm/v3/objects/contacts/1", method="GET") == 2
    assert emulator.request_count(path_prefix="/crm/v3/objects/contacts/search", method="POST") == 1
    assert emulator.request_log[0].status == 200 and emulator.request_log[0].counted


def test_seeded_contacts_and_standalone_main() -> None:
    """``python -m connector.emulators.hubspot.server`` serves and prints its URL; the seed has human-typed phones."""
    process = subprocess.Popen(
        [sys.executable, "-m", "connector.emulators.hubspot.server", "--port", "0", "--token", "cli-token"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(
            f"{url}/crm/v3/objects/contacts?limit=10&properties=phone,mobilephone",
            headers={"Authorization": "Bearer cli-token"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
            phones = [r["properties"] for r in json.load(response)["results"]]
        assert [p["phone"] for p in phones] == ["(202) 555-0143", "+1 415 555 0100", "212.555.0188", None]
        assert phones[3]["mobilephone"] == "(312) 555-0199"
    finally:
        process.terminate()
        process.wait(timeout=5)
