"""Every value fits its field, national-format phones of region-less numbers are matched, and a daily 429 pauses
the HubSpot sink until the daily reset — through the real simple-salesforce / hubspot-api-client against the
emulators over loopback."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import hubspot
import pytest
from hubspot.crm.contacts import SimplePublicObjectInputForCreate
from hypothesis import given
from hypothesis import strategies as st

from connector.emulators.hubspot.server import HubSpotEmulator
from connector.emulators.salesforce.server import SalesforceEmulator
from connector.errors import PermanentError, RateLimited
from connector.payload import MAX_DURATION_S, parse_webhook
from connector.plan import Plan
from connector.sample import sample_payload
from connector.sinks.base import ExecutionContext
from connector.sinks.fit import MARKER, Limit, clamp_number, cut_text, fit_values
from connector.sinks.hubspot.contacts import phone_filter_groups
from connector.sinks.hubspot.errors import until_daily_reset
from connector.sinks.hubspot.schema import MAX_NUMBER, MAX_TEXT
from connector.sinks.hubspot.sink import HubSpotSink
from connector.sinks.salesforce.fields import field_limit
from tests.support import hubspot as hs
from tests.support import salesforce as sf
from tests.support.delivery import ingest, worker_on

LONG_FIRST = "Maximiliana-Alexandrina " * 3  # 72 characters: FirstName holds 40
LONG_LAST = "Featherstonehaugh-" * 5  # 90 characters: LastName holds 80
HUGE = "9" * 4000
REGIONLESS = "+15550102035"  # fictional: phonenumbers places it in no region


@pytest.fixture
def sf_emulator(salesforce_emulator: SalesforceEmulator) -> SalesforceEmulator:  # noqa: F811
    return salesforce_emulator


@pytest.fixture
def hs_emulator(hubspot_emulator: HubSpotEmulator) -> HubSpotEmulator:  # noqa: F811
    return hubspot_emulator


def huge_duration(plan: Plan, field: str) -> Plan:
    """The plan with a 4,000-digit duration in its call activity, as a mapping could render it (normalization caps
    the payload's own duration at a day; the sink must fit whatever reaches it)."""
    activity = plan.actions[1]
    assert activity.key.endswith(":activity")
    wild = activity.model_copy(update={"properties": {**activity.properties, field: HUGE}})
    return plan.model_copy(update={"actions": [plan.actions[0], wild, *plan.actions[2:]]})


def test_an_absurd_duration_is_capped_and_flagged_at_normalization() -> None:
    event = parse_webhook(sample_payload(1, call={"end_reason": "hung_up", "duration": int(HUGE)}))
    assert (event.call.duration_seconds, event.call.duration_ms) == (MAX_DURATION_S, MAX_DURATION_S * 1000)
    assert "duration_capped" in event.flags
    assert "duration_capped" not in parse_webhook(sample_payload(2)).flags


# -- Salesforce -----------------------------------------------------------------------------------


def test_salesforce_cuts_and_clamps_to_the_describe_and_logs_the_call(sf_emulator: SalesforceEmulator) -> None:
    """The issue's dead-lettered calls: a 72-character first name on a new Lead, and a 4,000-digit duration."""
    sink = sf.open_sink(sf_emulator)
    plan = sf.make_plan(501, "+13035550177", record_first_name=LONG_FIRST, record_last_name=LONG_LAST)
    context = sf.run(sink, huge_duration(plan, "CallDurationInSeconds"))
    contact = context.contact()
    assert contact.created and contact.detail["truncated"] == ["FirstName", "LastName"]
    lead = sf_emulator.get("Lead", contact.crm_id)
    assert len(lead["FirstName"]) == 40 and lead["FirstName"].endswith(MARKER)
    assert len(lead["LastName"]) == 80 and lead["LastName"].startswith("Featherstonehaugh")
    [task] = sf.tasks(sf_emulator, "2x-501")
    assert task["CallDurationInSeconds"] == 999_999_999  # describe: int, digits 9
    activity = context.results["2x-501:activity"]
    assert activity.detail["clamped"] == ["CallDurationInSeconds"]
    assert HUGE not in str(activity.detail) and "Maximiliana" not in str(activity.detail)  # names only
    sink.close()


def test_salesforce_batch_path_fits_too(sf_emulator: SalesforceEmulator) -> None:
    sink = sf.open_sink(sf_emulator)
    items = []
    for event_id in (511, 512):
        plan = huge_duration(sf.make_plan(event_id), "CallDurationInSeconds")
        context = ExecutionContext()
        context.results[plan.actions[0].key] = sink.execute(plan.actions[0], context)
        activity = plan.actions[1]
        long_subject = {**activity.properties, "Subject": "S" * 400}
        items.append((activity.model_copy(update={"properties": long_subject}), context))
    results = sink.execute_batch(items)
    assert all(
        r.detail["batch"] == 2
        and r.detail["truncated"] == ["Subject"]
        and r.detail["clamped"] == ["CallDurationInSeconds"]
        for r in results
    )
    for event_id in (511, 512):
        [task] = sf.tasks(sf_emulator, f"2x-{event_id}")
        assert len(task["Subject"]) == 255 and task["CallDurationInSeconds"] == 999_999_999
    sink.close()


def test_salesforce_emulator_refuses_what_does_not_fit(sf_emulator: SalesforceEmulator) -> None:
    """Sent raw, Salesforce's own errors: STRING_TOO_LONG and NUMBER_OUTSIDE_VALID_RANGE (the sink never sends
    these; this proves the emulator would catch it if it did)."""
    sink = sf.open_sink(sf_emulator)
    for body, code in [
        ({"LastName": "x" * 81, "Company": "c"}, "STRING_TOO_LONG"),
        ({"LastName": "x", "Company": "c", "TwoX_Last_Call_Outcome__c": "y" * 256}, "STRING_TOO_LONG"),
    ]:
        with pytest.raises(PermanentError) as caught:
            sink.connection.call(lambda s, b=body: s.restful("sobjects/Lead", method="POST", json=b), where="t")
        assert caught.value.code == code
    with pytest.raises(PermanentError) as caught:
        sink.connection.call(
            lambda s: s.restful(
                "sobjects/Task", method="POST", json={"Subject": "Call", "CallDurationInSeconds": 10**9}
            ),
            where="t",
        )
    assert caught.value.code == "NUMBER_OUTSIDE_VALID_RANGE"
    assert caught.value.crm_message == "Call Duration: value outside of valid range on numeric field: 1000000000"
    sink.close()


NATIONAL = [(REGIONLESS, "(555) 010-2035", "5550102035"), ("+442079460018", "020 7946 0018", "02079460018")]


@pytest.mark.parametrize(("e164", "stored", "term"), NATIONAL, ids=["regionless_us", "uk_trunk_prefix"])
def test_salesforce_matches_a_national_format_number(
    sf_emulator: SalesforceEmulator, e164: str, stored: str, term: str
) -> None:
    """A Contact typed "(555) 010-2035" is the call's +15550102035: matched by SOSL and the shared matcher, no
    duplicate Lead, and the do-not-call lands on that Contact."""
    sink = sf.open_sink(sf_emulator)
    created = sink.connection.call(
        lambda s: s.restful("sobjects/Contact", method="POST", json={"LastName": "National", "Phone": stored}),
        where="seed",
    )
    leads_before = len(sf_emulator.records("Lead"))
    plan = sf.make_plan(521, e164, end_reason="do_not_call")
    context = sf.run(sink, plan)
    assert (context.contact().object, context.contact().crm_id) == ("Contact", created["id"])
    assert not context.contact().created and len(sf_emulator.records("Lead")) == leads_before
    assert sf_emulator.get("Contact", created["id"])["DoNotCall"] is True
    search = [r for r in sf_emulator.request_log if "search" in str(r.get("path", ""))]
    assert search and term in str(search[-1])  # the national digits were among the SOSL terms
    sink.close()


# -- HubSpot --------------------------------------------------------------------------------------


def test_hubspot_cuts_and_clamps_reading_the_properties_once_and_only_when_needed(hs_emulator: HubSpotEmulator) -> None:
    sink = hs.open_sink(hs_emulator)
    hs.run(sink, hs.make_plan(601))  # an ordinary event: no property definitions read
    assert hs_emulator.request_count(path_prefix="/crm/v3/properties") == 0
    for event_id in (602, 603):  # (hs_call_body is cut by the mapping's limits already; the title is not)
        plan = huge_duration(hs.make_plan(event_id), "hs_call_duration")
        activity = plan.actions[1]
        long_title = activity.model_copy(update={"properties": {**activity.properties, "hs_call_title": "t" * 70_000}})
        context = ExecutionContext()
        for action in [plan.actions[0], long_title, *plan.actions[2:]]:
            context.results[action.key] = sink.execute(action, context)
        written = context.results[f"2x-{event_id}:activity"]
        assert written.detail == {"truncated": ["hs_call_title"], "clamped": ["hs_call_duration"]}
        [call] = hs.calls_of(hs_emulator, event_id)
        title = hs_emulator.get("calls", call["id"])["properties"]["hs_call_title"]
        assert len(title) == MAX_TEXT and title.endswith(MARKER)
        assert call["properties"]["hs_call_duration"] == str(MAX_NUMBER)
    assert hs_emulator.request_count(path_prefix="/crm/v3/properties/calls") == 1  # cached for the sink's life
    sink.schema.forget("calls")
    assert not sink.schema.known("calls")
    sink.close()


def test_hubspot_emulator_refuses_what_does_not_fit(hs_emulator: HubSpotEmulator) -> None:
    client = hubspot.Client.create(access_token=hs.TOKEN, host=hs_emulator.url)
    for properties in ({"firstname": "x" * (MAX_TEXT + 1)}, {"twox_last_call_outcome": "y" * (MAX_TEXT + 1)}):
        with pytest.raises(hubspot.crm.contacts.ApiException) as caught:
            client.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties=properties))
        assert caught.value.status == 400 and "MAX_LENGTH_EXCEEDED" in caught.value.body
    with pytest.raises(hubspot.crm.objects.ApiException) as refused:
        client.crm.objects.basic_api.create(
            "calls",
            hubspot.crm.objects.SimplePublicObjectInputForCreate(
                properties={"hs_timestamp": "2026-01-01T00:00:00Z", "hs_call_duration": str(MAX_NUMBER + 1)}
            ),
        )
    assert refused.value.status == 400 and "INVALID_LONG" in refused.value.body


@pytest.mark.parametrize(("e164", "stored", "term"), NATIONAL, ids=["regionless_us", "uk_trunk_prefix"])
def test_hubspot_matches_a_national_format_number(
    hs_emulator: HubSpotEmulator, e164: str, stored: str, term: str
) -> None:
    client = hubspot.Client.create(access_token=hs.TOKEN, host=hs_emulator.url)
    seeded = client.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"lastname": "National", "mobilephone": stored})
    )
    sink = hs.open_sink(hs_emulator)
    context = hs.run(sink, hs.make_plan(611, record_phone_number=e164, end_reason="do_not_call"))
    assert context.contact().crm_id == seeded.id and not context.contact().created
    assert len(hs_emulator.objects("contacts")) == 5  # the four seeds + this one: no duplicate
    assert hs_emulator.get("contacts", seeded.id)["properties"]["twox_do_not_call"] == "true"
    sink.close()


def test_hubspot_phone_search_uses_the_searchable_properties_within_limits() -> None:
    [groups] = phone_filter_groups(["phone", "mobilephone"], REGIONLESS)
    assert [g["filters"][0]["propertyName"] for g in groups] == [
        "phone",
        "mobilephone",
        "hs_searchable_calculated_phone_number",
        "hs_searchable_calculated_mobile_number",
    ]
    assert {g["filters"][0]["value"] for g in groups} == {"5550102035"} and len(groups) <= 5


def test_hubspot_a_contact_from_another_country_with_the_same_national_digits_is_not_matched(
    hs_emulator: HubSpotEmulator,
) -> None:
    """The searchable copies drop the country code: +44 20 2555 0143 shares +1 202 555 0143's national digits, and
    the shared matcher keeps it out."""
    client = hubspot.Client.create(access_token=hs.TOKEN, host=hs_emulator.url)
    client.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"lastname": "London", "phone": "+44 20 3555 0101"})
    )
    sink = hs.open_sink(hs_emulator)
    context = hs.run(sink, hs.make_plan(621, record_phone_number="+12035550101"))
    assert context.contact().created  # a new contact, not the London one
    sink.close()


def test_hubspot_daily_429_pauses_the_sink_until_the_portals_midnight(hs_emulator: HubSpotEmulator) -> None:
    sink = HubSpotSink(
        "hs",
        hs.HubSpotSinkSettings(
            type="hubspot", access_token=hs.TOKEN, base_url=hs_emulator.url, account_time_zone="America/New_York"
        ),
    )
    sink.open(hs.CountingGate())
    hs_emulator.reset_counters()
    hs_emulator.set_daily_usage(500_000, limit=500_000)
    expected = until_daily_reset(datetime.now(UTC), "America/New_York")  # computed first: the wait only shrinks
    with pytest.raises(RateLimited) as caught:
        hs.run(sink, hs.make_plan(631))
    assert caught.value.code == "DAILY" and caught.value.status == 429
    assert expected - 5 <= caught.value.retry_after <= expected
    assert hs_emulator.request_count() == 1  # one refused request, no retry storm inside the sink
    sink.close()
    with pytest.raises(hubspot.crm.contacts.ApiException) as raw:  # what the emulator answers, as HubSpot does
        hubspot.Client.create(access_token=hs.TOKEN, host=hs_emulator.url).crm.contacts.basic_api.get_page(limit=1)
    body = json.loads(raw.value.body)
    assert (raw.value.status, body["policyName"], body["errorType"]) == (429, "DAILY", "RATE_LIMIT")
    assert raw.value.headers["X-HubSpot-RateLimit-Daily"] == "500000"
    assert raw.value.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"


def test_the_engine_holds_every_delivery_until_the_daily_reset(hs_emulator: HubSpotEmulator, tmp_path: Any) -> None:
    """Through the worker: one refused request, then the whole sink waits for the reset (no retry storm)."""
    settings = hs.engine_settings(hs_emulator, tmp_path)
    hs_emulator.set_daily_usage(250_000, limit=250_000)
    with worker_on(settings) as (ledger, worker):
        ids = [ingest(ledger, 700 + i, sinks=("hs",), record_phone_number=f"+1312555{7000 + i}") for i in range(3)]
        before = datetime.now(UTC)
        hs_emulator.reset_counters()
        hs_emulator.set_daily_usage(250_000, limit=250_000)
        worker.run_once()
        refused = hs_emulator.request_count()  # deliveries already in flight each got their 429
        for _ in range(5):
            worker.run_once()
        blocked = ledger.sinks.status("hs").blocked_until
        states = [d["status"] for e in ids for d in ledger.deliveries_for(e)]
    assert blocked is not None
    wait = (blocked.replace(tzinfo=blocked.tzinfo or UTC) - before).total_seconds()
    assert 60 < wait <= until_daily_reset(before, None) + 1  # the next full UTC hour (no zone configured)
    assert 1 <= refused <= len(ids) and hs_emulator.request_count() == refused  # then nothing until the reset
    assert "succeeded" not in states and "dead" not in states


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("now", "zone", "seconds"),
    [
        ("2026-11-26T19:30:00+00:00", "America/New_York", 9.5 * 3600 + 60),  # 14:30 EST → midnight EST is 05:00Z
        ("2026-03-08T06:00:00+00:00", "America/New_York", 22 * 3600 + 60),  # 01:00 EST on a 23-hour (DST) day
        ("2026-11-26T23:59:00+00:00", "Europe/Berlin", 23 * 3600 + 60 + 60),  # 00:59 CET → the next midnight
        ("2026-11-26T19:30:00+00:00", None, 1800 + 60),  # unknown zone: the next full UTC hour
    ],
)
def test_daily_reset_times(now: str, zone: str | None, seconds: float) -> None:
    assert until_daily_reset(_at(now), zone) == seconds


# -- the fitting rules themselves --------------------------------------------------------------------


@given(st.text(max_size=300), st.integers(0, 200))
def test_cut_text_always_fits_and_marks_the_cut(text: str, limit: int) -> None:
    cut = cut_text(text, limit)
    assert len(cut) <= limit
    assert cut == text if len(text) <= limit else (cut.endswith(MARKER) or limit <= len(MARKER))


@given(
    st.one_of(
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers().map(str),
        st.decimals(allow_nan=False, allow_infinity=False).map(str),
    ),
    st.sampled_from(
        [(Decimal(999_999_999), True), (Decimal("9999999999999999.99"), False), (Decimal(2**53 - 1), True)]
    ),
)
def test_a_clamped_number_is_within_its_range_and_keeps_its_json_kind(value: Any, limit: tuple[Decimal, bool]) -> None:
    clamped, changed = clamp_number(value, Limit(maximum=limit[0], integer=limit[1]))
    assert abs(Decimal(str(clamped))) <= limit[0]
    assert type(clamped) is type(value) or (isinstance(value, (int, float)) and isinstance(clamped, (int, float)))
    assert changed == (abs(Decimal(str(value))) > limit[0])


def test_fit_values_keeps_identifiers_and_reports_names_only() -> None:
    limits = {"subject": Limit(max_length=10), "callobject": Limit(max_length=5), "n": Limit(maximum=Decimal(9))}
    fitted = fit_values(
        {"Subject": "s" * 20, "CallObject": "2x-123456", "n": "12", "Other": "o" * 99},
        limits,
        keep=frozenset({"callobject"}),
    )
    assert fitted.values == {"Subject": "s" * 9 + MARKER, "CallObject": "2x-123456", "n": "9", "Other": "o" * 99}
    assert fitted.detail() == {"truncated": ["Subject"], "clamped": ["n"]}


def test_salesforce_describe_limits() -> None:
    assert field_limit({"type": "string", "length": 40}) == Limit(max_length=40)
    assert field_limit({"type": "phone", "length": 40}) is None  # identifiers are never cut
    assert field_limit({"type": "int", "digits": 9}) == Limit(maximum=Decimal(999_999_999), integer=True)
    assert field_limit({"type": "int", "digits": 0}) == Limit(maximum=Decimal(2**31 - 1), integer=True)
    assert field_limit({"type": "currency", "precision": 18, "scale": 2}) == Limit(
        maximum=Decimal("9999999999999999.99")
    )
