"""The Salesforce sink with the real simple-salesforce over loopback HTTPS against the Salesforce emulator.

Why the real client and real plans: its refresh loop, missing timeouts, exceptions and URLs, and the planner's actual
actions (string-typed values included), are what production runs. Login hosts cannot be pointed at loopback, so
`responses` answers them with the real SOAP/OAuth shapes while every REST call passes through to the emulator.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connector.config import parse_settings
from connector.emulators.salesforce.server import SalesforceEmulator
from connector.engine.worker import Worker
from connector.errors import AuthError, PermanentError, RateLimited, StaleContact, TransientError
from connector.ledger import Ledger
from connector.ledger.schema import ActionStatus
from connector.ops.replay import replay_event
from connector.plan import CreateActivity, CreateTask
from connector.sinks import registry
from connector.sinks.base import ExecutionContext
from connector.sinks.salesforce.fields import coerce
from connector.sinks.salesforce.sink import SalesforceSink
from tests.support.delivery import drain, ingest, statuses
from tests.support.salesforce import CountingGate, client, make_plan, open_sink, run, tasks

SOAP_URL = "https://login.salesforce.com/services/Soap/u/62.0"
E = TypeVar("E", bound=Exception)


@pytest.fixture
def emulator() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator() as running:
        yield running


@pytest.fixture
def sink(emulator: SalesforceEmulator) -> Iterator[SalesforceSink]:
    yield (opened := open_sink(emulator))
    opened.close()


def fails(kind: type[E], call: Callable[..., Any], *args: Any) -> E:
    with pytest.raises(kind) as caught:
        call(*args)
    return caught.value


OUTCOMES = [  # (overrides, bundle, contact fields that become true)
    ({"end_reason": "do_not_call"}, "do_not_call", ["DoNotCall"]),
    ({"end_reason": "wrong_number"}, "wrong_number", ["TwoX_Wrong_Number__c"]),
    ({"failure_reason": "invalid_number"}, "invalid_number", ["TwoX_Number_Invalid__c"]),
    ({"failure_reason": "unreachable"}, "unreachable", []),
    ({"end_reason": "call_transferred"}, "transferred", []),
    ({"end_reason": "schedule_call_back"}, "callback", []),
    ({"end_reason": "not_interested"}, "not_interested", []),
    ({"end_reason": "end_call"}, "conversation_ended", []),
    ({"end_reason": "hung_up"}, "hung_up", []),
    ({"end_reason": "voicemail_detected", "message_left": "Y"}, "voicemail_left", []),
    ({"end_reason": "voicemail_detected"}, "voicemail", []),
    ({"end_reason": "no_answer"}, "no_answer", []),
    ({"end_reason": "alien_reason"}, "unrecognized", []),
]
FLAGS = ["DoNotCall", "TwoX_Wrong_Number__c", "TwoX_Number_Invalid__c"]


@pytest.fixture(scope="module")  # one org for the outcome matrix, a Contact per case: an emulator takes 0.5 s to stop
def shared_org() -> Iterator[tuple[SalesforceEmulator, SalesforceSink]]:
    with SalesforceEmulator() as running:
        yield running, open_sink(running)


@pytest.mark.parametrize(("overrides", "bundle", "flags"), OUTCOMES, ids=[o[1] for o in OUTCOMES])
def test_each_outcome_lands_the_documented_state(
    shared_org: tuple[SalesforceEmulator, SalesforceSink], overrides: dict[str, Any], bundle: str, flags: list[str]
) -> None:
    emulator, sink = shared_org
    n = 100 + [o[1] for o in OUTCOMES].index(bundle)
    who = client(emulator).Contact.create({"LastName": "Roe", "Phone": f"(312) 555-0{n}"})["id"]  # typed by a human
    plan = make_plan(n, phone=f"+13125550{n}", **overrides)
    context = run(sink, plan)
    assert (context.contact().crm_id, context.contact().object, context.contact().created) == (who, "Contact", False)
    contact = emulator.get("Contact", who)
    assert [contact[f] for f in ("TwoX_Last_Call_Outcome__c", "TwoX_Workflow_Ended__c", "TwoX_Last_Call_At__c")] == [
        bundle,
        True,
        "2026-11-27T03:30:00.000+0000",
    ]
    assert {f: contact[f] for f in FLAGS} == {f: f in flags for f in FLAGS}
    [call] = tasks(emulator, f"2x-{n}")
    assert (call["WhoId"], call["TaskSubtype"], call["Status"], call["Type"]) == (who, "Call", "Completed", "Call")
    duration = 0 if "failure_reason" in overrides else 33  # ActivityDate: the lead's local date, not the UTC (27th)
    assert (call["CallDurationInSeconds"], call["ActivityDate"]) == (duration, "2026-11-26")
    assert "Hi, is John available?" in call["Description"] and call["IsClosed"] is True
    follow_up = [t for t in emulator.records("Task") if t["WhoId"] == who and t["CallObject"] != f"2x-{n}"]
    if bundle != "callback":
        assert follow_up == []
        return
    planned = next(a for a in plan.actions if isinstance(a, CreateTask))
    [task] = follow_up
    assert task["CallObject"] == f"2x-{n}:task:callback"
    assert (task["Status"], task["WhoId"], task["IsReminderSet"]) == ("Not Started", who, True)
    assert (task["ActivityDate"], task["ReminderDateTime"]) == (planned.due_local_date, "2026-11-27T15:00:00.000+0000")
    assert contact["TwoX_Callback_Due__c"] == "2026-11-27T15:00:00.000+0000"


def test_resolution_by_phone(emulator: SalesforceEmulator, sink: SalesforceSink) -> None:
    bob = emulator.seed_ids["lead_bob"]  # "(646) 555-0123"
    run(sink, make_plan(5, phone="+16465550123", end_reason="do_not_call"))
    assert [emulator.get("Lead", bob)[f] for f in ("DoNotCall", "Status")] == [True, "Closed - Not Converted"]
    assert tasks(emulator, "2x-5")[0]["WhoId"] == bob
    john = emulator.seed_ids["contact_john"]  # Phone typed "(202) 555-0143", the sample's +12025550143
    context = run(sink, make_plan(6, end_reason="hung_up"))  # a Contact: Lead Status is never sent (INVALID_FIELD)
    assert context.contact().crm_id == john and emulator.get("Contact", john)["TwoX_Last_Call_Outcome__c"] == "hung_up"
    assert context.results["2x-6:contact-update"].detail["fields"] == [
        "TwoX_Last_Call_At__c",
        "TwoX_Last_Call_Outcome__c",
        "TwoX_Workflow_Ended__c",
    ]
    [search] = [r["query"]["q"][0] for r in emulator.request_log if r["path"].endswith("/search/")][-1:]
    assert search.startswith("FIND {12025550143 OR 2025550143} IN PHONE FIELDS RETURNING Contact(")
    jane, converted = emulator.seed_ids["contact_jane"], emulator.seed_ids["lead_jane_converted"]
    assert run(sink, make_plan(7, phone="+14155550100")).contact().crm_id == jane  # one candidate: not ambiguous
    client(emulator).Contact.delete(jane)
    context = run(open_sink(emulator), make_plan(8, phone="+14155550100"))
    assert context.contact().created and context.contact().crm_id != converted
    sf = client(emulator)  # several Contacts share the number
    newer = sf.Contact.create({"LastName": "Doe", "Phone": "202-555-0143"})["id"]
    sf.Task.create({"WhoId": newer, "Subject": "Call", "Status": "Completed", "ActivityDate": "2026-12-01"})
    resolve = make_plan(12).actions[0]
    for policy, expected in [("oldest", emulator.seed_ids["contact_john"]), ("most_recently_active", newer)]:
        found = open_sink(emulator).execute(resolve.model_copy(update={"on_multiple": policy}), ExecutionContext())
        assert found.crm_id == expected and found.detail["candidates"] == 2
    held = resolve.model_copy(update={"on_multiple": "hold"})
    caught = fails(PermanentError, open_sink(emulator).execute, held, ExecutionContext())
    assert caught.code == "AMBIGUOUS_CONTACT" and "2 Contact records" in caught.crm_message


def test_a_contact_deleted_in_salesforce_is_resolved_again(emulator: SalesforceEmulator, sink: SalesforceSink) -> None:
    """The engine (and the sink, for an hour) keep a number's contact; once Salesforce deleted it, a write says
    StaleContact, so the engine forgets it and resolves again, instead of dead-lettering every later event."""
    cached = run(sink, make_plan(40, end_reason="hung_up")).contact()
    assert cached.crm_id == emulator.seed_ids["contact_john"]
    client(emulator).Contact.delete(cached.crm_id)
    plan = make_plan(41, end_reason="hung_up")
    context = ExecutionContext()
    context.results[plan.actions[0].key] = cached  # what the engine's contact cache answers
    single = fails(StaleContact, sink.execute_many, plan.actions[1:], context)
    batched = sink.execute_batch([(action, context) for action in plan.actions[1:]])  # the backlog path
    assert single.code in ("ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY")
    assert [type(r) for r in batched] == [StaleContact, StaleContact] and tasks(emulator, "2x-41") == []
    callback = make_plan(42, end_reason="schedule_call_back").actions[-1]
    assert isinstance(callback, CreateTask) and callback.unless_do_not_call
    fails(StaleContact, sink.do_not_call_set, callback, context)  # the do-not-call read before a callback Task
    again = run(sink, plan)  # the engine resolves again: the sink forgot the dead id too
    assert again.contact().crm_id != cached.crm_id and again.contact().created
    assert tasks(emulator, "2x-41")[0]["WhoId"] == again.contact().crm_id


def test_a_new_number_creates_one_lead_despite_search_lag(emulator: SalesforceEmulator, sink: SalesforceSink) -> None:
    emulator.set_search_lag(60)  # nothing written now is searchable during this test
    first = run(sink, make_plan(9, phone="+13125550199")).contact()
    assert (first.object, first.created) == ("Lead", True)
    assert [emulator.get("Lead", first.crm_id)[f] for f in ("LastName", "Company", "Phone", "Status")] == [
        "Doe",
        "[not provided]",
        "+13125550199",
        "Working - Contacted",
    ]
    assert run(sink, make_plan(10, phone="+13125550199")).contact().crm_id == first.crm_id  # the sink's cache
    resolve = make_plan(11, phone="+13125550199").actions[0]
    assert open_sink(emulator).lookup(resolve, ExecutionContext()).crm_id == first.crm_id  # crash: exact SOQL
    assert len([r for r in emulator.records("Lead") if r["Phone"] == "+13125550199"]) == 1


def test_meta_ids_are_checked_once_and_bad_ones_fall_back(emulator: SalesforceEmulator, sink: SalesforceSink) -> None:
    ann, john = emulator.seed_ids["contact_ann"], emulator.seed_ids["contact_john"]
    run(sink, make_plan(13, phone="+19995550100"))  # warm-up: the one-time describe composite
    counts = []
    for event_id in (14, 15):
        before = emulator.api_calls()
        assert run(sink, make_plan(event_id, meta={"salesforce_contact_id": ann})).contact().crm_id == ann
        counts.append(emulator.api_calls() - before)
    assert counts == [2, 1] and tasks(emulator, "2x-15")[0]["WhoId"] == ann  # GET + composite, then composite
    for event_id, bad in [(16, "003000000000000AAA"), (17, "not-an-id")]:
        context = run(sink, make_plan(event_id, meta={"salesforce_contact_id": bad}))
        assert context.contact().crm_id == john and context.contact().detail["matched_by"] == "phone"


def test_redelivery_and_lost_answers_never_write_twice(
    emulator: SalesforceEmulator, sink: SalesforceSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = make_plan(20, end_reason="schedule_call_back")
    first = run(sink, plan)
    fresh = open_sink(emulator)  # after a crash: another process, nothing in memory
    found = [getattr(fresh.lookup(a, first), "crm_id", None) for a in plan.actions[1:]]  # update: None, runs again
    assert found == [
        first.results[a.key].crm_id if isinstance(a, (CreateActivity, CreateTask)) else None for a in plan.actions[1:]
    ]
    assert len(tasks(emulator, "2x-20")) == len(tasks(emulator, "2x-20:task:callback")) == 1
    assert fresh.lookup(make_plan(21).actions[1], first) is None  # never written: the engine writes it
    plan = make_plan(22, end_reason="schedule_call_back")  # a lost answer: Salesforce committed, we timed out
    context = run(sink, plan, upto=1)
    http, real = sink.connection._http, sink.connection._http.request

    def commit_then_time_out(*args: Any, **kwargs: Any) -> requests.Response:
        real(*args, **kwargs)
        raise requests.ReadTimeout("read timed out")

    monkeypatch.setattr(http, "request", commit_then_time_out)
    fails(TransientError, sink.execute_many, plan.actions[1:], context)
    monkeypatch.setattr(http, "request", real)
    again = sink.execute_many(plan.actions[1:], context)  # the engine's quick retry: no lookup of its own
    assert again[0].crm_id == tasks(emulator, "2x-22")[0]["Id"] and again[0].detail == {"found_by": "CallObject"}
    assert len(tasks(emulator, "2x-22")) == len(tasks(emulator, "2x-22:task:callback")) == 1


def test_transient_errors_and_limits(emulator: SalesforceEmulator, sink: SalesforceSink) -> None:
    plan = make_plan(30)
    run(sink, make_plan(29))  # warm: describes, contact cache
    for status in (400, 500):
        emulator.fail_next(status=status, error_code="UNABLE_TO_LOCK_ROW")
        caught = fails(TransientError, run, sink, plan)
        assert caught.code == "UNABLE_TO_LOCK_ROW" and not isinstance(caught, RateLimited)
    emulator.fail_next(status=400, error_code="UNABLE_TO_LOCK_ROW", path_contains="/sobjects/Contact/")
    fails(TransientError, run, sink, plan)  # inside the composite: rolled back, safe to retry
    assert tasks(emulator, "2x-30") == []
    emulator.fail_next(status=403, error_code="REQUEST_LIMIT_EXCEEDED")
    limited = fails(TransientError, run, sink, plan)
    assert isinstance(limited, RateLimited) and (limited.retry_after, limited.crm_message) == (
        900,
        "TotalRequests Limit exceeded.",
    )
    assert [run(sink, plan).results["2x-30:activity"].crm_id] == [t["Id"] for t in tasks(emulator, "2x-30")]


REJECTIONS = [  # (Task property, value, errorCode, Salesforce's message); None: a validation rule in the org
    # (text too long is no longer a rejection: the sink cuts it to the describe's length, tests/sinks/test_fitting.py)
    # (an unknown field, INVALID_FIELD, is schema drift: left out, the rest written — tests/sinks/test_schema_drift.py)
    # (a value its field cannot take, a restricted picklist's or a type's, costs that field only:
    # tests/sinks/test_salesforce_batching.py::test_a_value_the_field_cannot_take_costs_that_field_not_the_call)
    (None, None, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Calls need a result"),
]


@pytest.mark.parametrize(("field", "value", "code", "message"), REJECTIONS, ids=[r[2] for r in REJECTIONS])
def test_rejections_roll_everything_back(
    emulator: SalesforceEmulator, sink: SalesforceSink, field: str | None, value: Any, code: str, message: str
) -> None:
    plan = make_plan(31, end_reason="schedule_call_back")
    context = run(sink, plan, upto=1)
    activity = plan.actions[1].model_copy(update={"properties": {**plan.actions[1].properties, field or "": value}})
    if field is None:
        activity = plan.actions[1]
        emulator.fail_next(status=400, error_code=code, message=message, path_contains="/sobjects/Task")
    # the contact update goes first, and is rolled back (allOrNone) when the Task fails
    caught = fails(PermanentError, sink.execute_many, [plan.actions[2], activity, plan.actions[3]], context)
    assert (caught.code, caught.crm_message, caught.status) == (code, message, 400)
    assert "x" * 20 not in str(caught)  # the value (could be a transcript) stays out of the log text
    assert emulator.records("Task") == []  # never cut and sent anyway, nothing half-written
    assert emulator.get("Contact", emulator.seed_ids["contact_john"])["TwoX_Last_Call_Outcome__c"] is None


def test_values_are_coerced_and_requests_gated_with_timeouts(
    emulator: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = [
        ("int", "33", 33),
        ("int", 33.0, 33),
        ("boolean", "TRUE", True),
        ("date", "", None),
        ("string", 7, 7),
        ("double", "2.5", 2.5),
        ("datetime", " ", None),
        ("int", "n/a", "n/a"),
    ]  # unconvertible: Salesforce says
    assert [coerce(kind, value) for kind, value, _ in cases] == [expected for _, _, expected in cases]
    seen: list[Any] = []
    send = requests.adapters.HTTPAdapter.send
    monkeypatch.setattr(
        requests.adapters.HTTPAdapter,
        "send",
        lambda self, request, **kw: seen.append(kw.get("timeout")) or send(self, request, **kw),
    )
    gate = CountingGate()
    sink = open_sink(emulator, gate)
    plan = make_plan(33)
    context = run(sink, plan, upto=1)
    strings = {"CallDurationInSeconds": "33", "IsReminderSet": "true", "ReminderDateTime": "", "ActivityDate": ""}
    sink.execute(plan.actions[1].model_copy(update={"properties": {**plan.actions[1].properties, **strings}}), context)
    [task] = tasks(emulator, "2x-33")
    assert (task["CallDurationInSeconds"], task["IsReminderSet"], task["ReminderDateTime"]) == (33, True, None)
    describes = [
        [s["url"] for s in r["subrequests"]] for r in emulator.request_log if "describe" in json.dumps(r["body"])
    ]
    assert describes == [[f"/services/data/v62.0/sobjects/{o}/describe" for o in ("Task", "Contact", "Lead")]]
    assert gate.waits == len(emulator.request_log) == len(seen) == 3 and set(seen) == {(5.0, 30.0)}  # SOSL+2 composites


def soap(body: str) -> str:
    """A SOAP answer of login.salesforce.com (what simple-salesforce's soap_login parses)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/'
        'envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:sf="urn:fault.partner.soap.sforce.com">'
        f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    )


def test_expired_sessions(emulator: SalesforceEmulator, sink: SalesforceSink) -> None:
    """A session id cannot be refreshed: pause (AuthError) until the probe passes; a login mode logs in ONCE more."""
    emulator.expire_sessions()
    caught = fails(AuthError, run, sink, make_plan(40))
    assert (caught.status, caught.code) == (401, "INVALID_SESSION_ID")
    fails(AuthError, sink.check_auth)
    emulator.add_session(emulator.session_id)
    sink.check_auth()
    assert len(emulator.request_log) == 3  # no refresh loop: one request per call
    issued = iter(["sid-1", "sid-2", "sid-3"])
    with responses.RequestsMock(passthru_prefixes=(emulator.instance_url,)) as mock:
        mock.add_callback(
            responses.POST,
            SOAP_URL,
            callback=lambda request: (
                200,
                {"Content-Type": "text/xml"},
                soap(
                    f"<loginResponse><result><passwordExpired>false</passwordExpired><serverUrl>{emulator.instance_url}/"
                    f"services/Soap/u/62.0/00D000000000001</serverUrl><sessionId>{next(issued)}</sessionId><userId>"
                    "0058d00000AbCdEAAV</userId></result></loginResponse>"
                ),
            ),
        )
        sink = open_sink(emulator, username="ops@acme.example", password="pw", security_token="tok")
        emulator.add_session("sid-1")
        run(sink, make_plan(41))
        emulator.expire_sessions()
        emulator.add_session("sid-2")
        run(sink, make_plan(42))  # 401 → one login → the request once more
        assert sink.connection.logins == 2 and len(tasks(emulator, "2x-42")) == 1
        emulator.expire_sessions()  # sid-3 is never accepted
        fails(AuthError, run, sink, make_plan(43))
        assert sink.connection.logins == 3  # exactly one re-login, no loop
        login = next(c.request for c in mock.calls if c.request.url == SOAP_URL)
        assert "<n1:password>pwtok</n1:password>" in login.body and login.headers["SOAPAction"] == "login"
        mock.replace(
            responses.POST,
            SOAP_URL,
            status=500,
            content_type="text/xml",
            body=soap(
                "<soapenv:Fault><faultcode>INVALID_LOGIN</faultcode><detail><sf:LoginFault><sf:exceptionCode>INVALID_LOGIN"
                "</sf:exceptionCode><sf:exceptionMessage>Invalid username, password, security token; or user locked out."
                "</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault>"
            ),
        )
        caught = fails(AuthError, sink.check_auth)
        assert caught.code == "INVALID_LOGIN" and "locked out" in caught.crm_message


@pytest.mark.parametrize("flow", ["client_credentials", "jwt"])
def test_oauth_flows(emulator: SalesforceEmulator, tmp_path: Path, flow: str) -> None:
    (tmp_path / "k.pem").write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    auth = (
        {"consumer_key": "ck", "consumer_secret": "cs", "domain": "acme.my"}
        if flow == "client_credentials"
        else {"username": "ops@acme.example", "consumer_key": "ck", "private_key_file": str(tmp_path / "k.pem")}
    )
    token_url = f"https://{'acme.my' if flow == 'client_credentials' else 'login'}.salesforce.com/services/oauth2/token"
    emulator.add_session("oauth-token")
    with responses.RequestsMock(passthru_prefixes=(emulator.instance_url,)) as mock:
        mock.add(
            responses.POST,
            token_url,
            json={
                "access_token": "oauth-token",
                "instance_url": emulator.instance_url,
                "token_type": "Bearer",
                "id": "https://login.salesforce.com/id/00D000000000001/0058d00000AbCdEAAV",
                "issued_at": "1764000000000",
            },
        )
        open_sink(emulator, **auth).check_auth()
        grant = mock.calls[0].request.body
    assert ("grant_type=client_credentials" if flow == "client_credentials" else "jwt-bearer") in grant


def test_the_engine_delivers_with_one_api_call_per_event(
    emulator: SalesforceEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = EntryPoint(name="salesforce", value="connector.sinks.salesforce.sink:factory", group=registry.GROUP)
    monkeypatch.setattr(registry, "installed_sink_types", lambda: {"salesforce": entry})
    settings = parse_settings(
        {
            "receiver": {"auth": {"tokens": ["t" * 32]}},
            "store": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
            "sinks": {
                "sf": {
                    "type": "salesforce",
                    "instance_url": emulator.instance_url,
                    "ca_bundle": emulator.ca_file,
                    "auth": {"session_id": emulator.session_id},
                }
            },
            "worker": {"poll_interval_s": 0.05, "lease_s": 10, "retry": {"schedule_s": [0.2], "jitter": 0}},
        },
        source="t",
        base_dir=Path("."),
        environ={},
    )
    ledger = Ledger.open(settings.store)
    (worker := Worker(settings, ledger=ledger)).open()
    try:
        ingest(ledger, 50, sinks=("sf",), end_reason="not_interested")
        drain(worker)
        warm = emulator.api_calls()  # SOSL + one describe composite + the event's composite
        reasons = ["no_answer", "schedule_call_back", "do_not_call", "hung_up", "end_call", "voicemail_detected"]
        ids = [ingest(ledger, 51 + i, sinks=("sf",), end_reason=r) for i, r in enumerate(reasons)]
        drain(worker)
        per_event = (emulator.api_calls() - warm) / len(ids)
        # one composite per event, plus one SOQL with which the do-not-call looks for open callback Tasks to close
        # (do-not-call is delivered first, so the callback's Task is then refused by the ledger, with no read)
        assert warm == 3 and per_event <= 7 / 6 and all(statuses(ledger, i) == ["succeeded"] for i in ids)
        callback = ledger.deliveries_for(ids[1])[0]["id"]  # a crash after the composite: the journal says in flight
        for key, kind in [("2x-52:activity", "create_activity"), ("2x-52:task:callback", "create_task")]:
            ledger.deliveries.journal_mark(callback, key, kind, ActionStatus.IN_FLIGHT)
        ledger.deliveries.requeue(event_id=ids[1])
        replay_event(ledger, settings, ids[0])
        before = len(emulator.request_log)
        drain(worker)
        assert statuses(ledger, ids[1]) == statuses(ledger, ids[0]) == ["succeeded"]
        assert [r["query"]["q"][0].split("IN ")[1] for r in emulator.request_log[before:]] == [
            "('2x-52') ORDER BY CreatedDate LIMIT 200",
            "('2x-52:task:callback') ORDER BY CreatedDate LIMIT 200",
        ]
    finally:
        worker.close()
        ledger.dispose()
    assert all(len(tasks(emulator, f"2x-{i}")) == 1 for i in ["50", *ids])
    assert tasks(emulator, "2x-52:task:callback") == []  # John asked not to be called: no callback Task
    contact = emulator.get("Contact", emulator.seed_ids["contact_john"])
    assert contact["DoNotCall"] is True and contact["TwoX_Last_Call_Outcome__c"] == "voicemail"
