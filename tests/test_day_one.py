"""Day one, as a customer lives it (issue 10, "done when"): a HubSpot portal and a Salesforce org that have none of
the connector's custom fields; `connector validate` names what is missing, `connector crm-setup` creates it (a second
run changes nothing), then `connector serve` receives a mixed batch of real webhooks over HTTP and its embedded worker
delivers every call to both CRMs.

Everything runs as a user runs it: the `connector` command in subprocesses, webhooks posted to the real receiver,
delivery state read with `connector status --json`, and the result read from the emulators' own state (both CRMs
are driven over loopback by the real hubspot-api-client and simple-salesforce).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import hubspot
import pytest
import requests
import yaml
from hubspot.crm.contacts import SimplePublicObjectInputForCreate
from simple_salesforce import Salesforce

from connector.emulators.hubspot.server import HubSpotEmulator
from connector.emulators.salesforce.server import SalesforceEmulator
from connector.payload import MAX_DURATION_S
from connector.sample import sample_payload
from tests.support.net import free_port
from tests.support.processes import CONNECTOR, serving, stop, wait_until
from tests.support.settings import TOKEN

pytestmark = pytest.mark.slow

HS_TOKEN = "day-one-hubspot-token"
LONG_FIRST = "Maximiliana-Alexandrina Bartholomew-Featherstonehaugh Montgomery-Jon"  # 68; Salesforce FirstName: 40
HUGE_DURATION = int("9" * 4000)  # a JSON number, as 2X sends durations (a numeric string this long is a 422)

# The people both CRMs already know (seeded through each CRM's own API before set-up), and the calls 2X makes.
# The national-format contact: +1 555 010 2035 is a number phonenumbers places in no region.
NATIONAL = ("Nadia", "National", "(555) 010-2035", "+15550102035")
SEEDED = {  # key: (first name, last name, phone as stored in the CRM, E.164 2X sends)
    "dnc": ("Dora", "Nocall", "+1 202 555 0161", "+12025550161"),
    "wrong": ("Walt", "Wrongnum", "202.555.0162", "+12025550162"),
    "callback": ("Cleo", "Callback", "(202) 555-0163", "+12025550163"),
    "callback_then_dnc": ("Ciro", "Changed", "(202) 555-0164", "+12025550164"),
    "callback_closed": ("Cora", "Closed", "(202) 555-0168", "+12025550168"),
    "invalid": ("Ivo", "Invalid", "(202) 555-0165", "+12025550165"),
    "answers": ("Ana", "Answers", "(202) 555-0166", "+12025550166"),
    "misc": ("Milo", "Misc", "(202) 555-0167", "+12025550167"),
    "national": NATIONAL,
}
NEW_NUMBER = "+13125550177"  # neither CRM knows it: the first call creates it, the second finds it
LONG_NAME_NUMBER = "+13125550178"
LEAD_TZ = "America/Los_Angeles"
SEARCH_LAG_S = 2.0
ANSWERS = {
    "case_number": "8057",
    "preferred_product": "Solar panels",
    "budget_range": "About 20k",
    "best_time_to_reach": "Evenings after 6",
}
"""Several answers to the script's questions (none of them has a twox_q_* property before the first call)."""


def _call(event_id: int, key_or_phone: str, end_reason: str | None, **overrides: Any) -> dict[str, Any]:
    phone = SEEDED[key_or_phone][3] if key_or_phone in SEEDED else key_or_phone
    first, last = SEEDED[key_or_phone][:2] if key_or_phone in SEEDED else ("Newton", "Newcomer")
    document = sample_payload(
        event_id,
        end_reason=end_reason or "end_call",
        record_phone_number=phone,
        record_first_name=first,
        record_last_name=last,
        question_fields={"case_number": str(event_id)},
    )
    call = {**document["call"], **overrides.pop("call", {})}
    if end_reason is None:
        del call["end_reason"]
    document["call"] = call
    document.update(overrides)
    return document


def mixed_batch() -> list[dict[str, Any]]:
    """One of each thing 2X sends on a normal day, and the awkward ones (ids 9001…)."""
    return [
        _call(9001, "dnc", "do_not_call"),
        _call(9002, "wrong", "wrong_number"),
        _call(
            9003,
            "callback",
            "schedule_call_back",
            record_timezone=LEAD_TZ,
            question_fields={"callback_time": "tomorrow 3am"},
        ),
        _call(9004, "misc", "not_interested"),
        _call(9005, "misc", "no_answer", call={"answered": False, "duration": HUGE_DURATION}, transcript=[]),
        _call(9006, "misc", "voicemail_detected", message_left="Y", call={"answered": False}),
        _call(
            9007,
            "invalid",
            None,
            call={"failure_reason": "invalid_number", "answered": False, "duration": 0},
            transcript=[],
        ),
        _call(9008, "misc", "mystery_new_reason"),
        _call(9009, "answers", "call_transferred", question_fields=dict(ANSWERS)),
        _call(9010, LONG_NAME_NUMBER, "end_call", record_first_name=LONG_FIRST),
        _call(9011, "national", "hung_up"),
        _call(
            9012,
            "callback_then_dnc",
            "schedule_call_back",
            record_timezone=LEAD_TZ,
            question_fields={"callback_time": "tomorrow 11am"},
        ),
        _call(9013, "callback_then_dnc", "do_not_call"),  # in the same batch: delivered first (do-not-call priority)
        _call(9014, NEW_NUMBER, "end_call"),
        _call(9015, NEW_NUMBER, "no_answer", call={"answered": False}),
        _call(
            9016,
            "callback_closed",
            "schedule_call_back",
            record_timezone="UTC-5",
            question_fields={"callback_time": "Monday 10am"},
        ),
    ]


LATER = [_call(9017, "callback_closed", "do_not_call")]
"""Posted once the first batch is delivered: this do-not-call must close the callback task 9016 created."""


# -- the CRMs as a customer has them on day one ------------------------------------------------------------------


@pytest.fixture
def portal() -> Iterator[HubSpotEmulator]:
    """A portal with HubSpot's standard properties only (the emulator's default: no `--custom-properties`)."""
    with HubSpotEmulator(tokens=[HS_TOKEN]) as running:
        assert not [n for n in running.properties("contacts") if n.startswith("twox_")]
        client = hubspot.Client.create(access_token=HS_TOKEN, host=running.url)
        for first, last, phone, _ in SEEDED.values():
            client.crm.contacts.basic_api.create(
                SimplePublicObjectInputForCreate(properties={"firstname": first, "lastname": last, "phone": phone})
            )
        yield running


@pytest.fixture
def org() -> Iterator[SalesforceEmulator]:
    """An org without the TwoX_*__c fields, with our people as Contacts (the national one as a Lead)."""
    with SalesforceEmulator(with_custom_fields=False) as running:
        assert running.custom_fields() == []
        sf = Salesforce(
            instance_url=running.instance_url,
            session_id=running.session_id,
            session=running.client_session(),
            version="62.0",
        )
        for key, (first, last, phone, _) in SEEDED.items():
            if key == "national":
                sf.Lead.create({"FirstName": first, "LastName": last, "Phone": phone, "Company": "Nat Co"})
            else:
                sf.Contact.create({"FirstName": first, "LastName": last, "Phone": phone})
        yield running


def write_config(folder: Path, port: int, store_url: str, portal: HubSpotEmulator, org: SalesforceEmulator) -> Path:
    config = folder / "connector.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {"port": port, "auth": {"header": "X-2X-Token", "tokens": [TOKEN]}},
                "store": {"url": store_url},
                "serve": {"workers": 2},
                "worker": {"poll_interval_s": 0.1},
                "sinks": {
                    "hubspot": {"type": "hubspot", "access_token": HS_TOKEN, "base_url": portal.url},
                    "salesforce": {
                        "type": "salesforce",
                        "instance_url": org.instance_url,
                        "ca_bundle": org.ca_file,
                        "auth": {"session_id": org.session_id},
                    },
                },
            }
        )
    )
    return config


def connector(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CONNECTOR, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def writes(portal: HubSpotEmulator, org: SalesforceEmulator, hs_since: int, sf_since: int) -> list[str]:
    """Requests since the marks that could change either CRM (a Salesforce Composite of GETs only reads)."""
    hs = [f"{r.method} {r.path}" for r in portal.request_log[hs_since:] if r.method.upper() != "GET"]
    sf = [
        f"{e['method']} {e['path']}"
        for e in org.request_log[sf_since:]
        if e["method"] != "GET"
        and not (e["path"].endswith("/composite") and all(r["method"] == "GET" for r in e["body"]["compositeRequest"]))
    ]
    return hs + sf


# -- the walk ------------------------------------------------------------------------------------------------------


def test_day_one_crm_setup_then_serve_delivers_a_mixed_batch_to_both_crms(
    tmp_path: Path, store_url: str, portal: HubSpotEmulator, org: SalesforceEmulator
) -> None:
    started = time.monotonic()  # the fixtures seeded both CRMs before this
    empty_store(store_url)
    port = free_port()
    config = write_config(tmp_path, port, store_url, portal, org)

    # 1. validate names every missing field and the complete command that fixes it.
    checked = connector("validate", "--config", str(config), cwd=tmp_path)
    assert checked.returncode == 1, checked.stderr
    for field in ("contacts.twox_do_not_call", "tasks.twox_task_key", "Lead.TwoX_Wrong_Number__c"):
        assert field in checked.stderr, (field, checked.stderr)
    for sink in ("hubspot", "salesforce"):
        assert f"connector crm-setup --config {config} --sink {sink}" in checked.stderr, checked.stderr

    # 2. crm-setup creates them; a second run exits 0 and writes nothing.
    setup = connector("crm-setup", "--config", str(config), cwd=tmp_path)
    assert setup.returncode == 0, setup.stderr
    first = {r["sink"]: r for r in json.loads(setup.stdout)}
    assert first["hubspot"]["ok"] and "contacts.twox_do_not_call" in first["hubspot"]["created"]
    assert first["hubspot"]["created_groups"] == ["contacts", "tasks"]  # a new portal has no `twox` group
    assert "Created 8 HubSpot properties: contacts.twox_callback_due" in setup.stderr  # the person running it is told
    assert first["salesforce"]["ok"] and "Lead.TwoX_Wrong_Number__c" in first["salesforce"]["created"]
    for created in first["hubspot"]["created"] + first["salesforce"]["created"]:  # validate had named each one
        assert created in checked.stderr, (created, checked.stderr)
    hs_mark, sf_mark = len(portal.request_log), len(org.request_log)
    again = connector("crm-setup", "--config", str(config), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    second = {r["sink"]: r for r in json.loads(again.stdout)}
    assert all(r["ok"] and r["created"] == [] for r in second.values()), second
    assert second["hubspot"]["created_groups"] == []
    assert sorted(second["salesforce"]["already_present"]) == sorted(first["salesforce"]["created"])
    assert writes(portal, org, hs_mark, sf_mark) == []
    assert "Every custom property the mapping of sink 'hubspot' writes exists: nothing to do." in again.stderr
    assert "Every custom field the mapping of sink 'salesforce' writes exists and is writable" in again.stderr
    assert connector("validate", "--config", str(config), cwd=tmp_path).returncode == 0

    # 3. serve, and 2X posts the day's calls to the real receiver. Both CRMs' search indexes lag writes (emulated as
    # the emulators' modules describe: hubspot.search, salesforce.sosl; the length is UNVERIFIED, no vendor gives a
    # bound), so a number called twice in the batch must still become one record.
    time.sleep(max(0.0, SEARCH_LAG_S - (time.monotonic() - started)))  # the seeded people are indexed by now
    portal.set_search_lag(SEARCH_LAG_S)
    org.set_search_lag(SEARCH_LAG_S)
    log = tmp_path / "serve.log"
    batch = mixed_batch()
    with serving(["serve", "--config", str(config)], tmp_path, port, log) as server:
        post_all(port, batch)
        wait_delivered(config, tmp_path, len(batch))
        assert len(open_callbacks(portal, org)) == 2 * 2  # 9003 and 9016, in each CRM
        post_all(port, LATER)
        wait_delivered(config, tmp_path, len(batch) + len(LATER))
        code = stop(server)
    batch += LATER
    output = log.read_text(errors="replace")
    assert code == 0, output
    assert "Traceback" not in output, output

    # After the day's calls (their question names are in the store now) crm-setup still has nothing to do.
    hs_mark, sf_mark = len(portal.request_log), len(org.request_log)
    after = connector("crm-setup", "--config", str(config), cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert all(r["ok"] and r["created"] == [] for r in json.loads(after.stdout)), after.stdout
    assert writes(portal, org, hs_mark, sf_mark) == []

    # 4. what the CRMs show.
    check_hubspot(portal, batch)
    check_salesforce(org, batch)


def empty_store(store_url: str) -> None:
    """The PostgreSQL database is shared by the test session: start from empty tables."""
    from tests.support.ledger import empty_store

    empty_store(store_url)


def post_all(port: int, documents: list[dict[str, Any]]) -> None:
    url = f"http://127.0.0.1:{port}/webhooks/2x/post-call"
    for document in documents:
        answer = requests.post(url, json=document, headers={"X-2X-Token": TOKEN}, timeout=10)
        assert answer.status_code == 202, (document["id"], answer.status_code, answer.text)


def wait_delivered(config: Path, cwd: Path, expected: int) -> None:
    delivered = wait_until(lambda: all_succeeded(config, cwd, expected), 45, "every delivery to succeed", every_s=0.5)
    assert delivered == {"hubspot": {"succeeded": expected}, "salesforce": {"succeeded": expected}}


def open_callbacks(portal: HubSpotEmulator, org: SalesforceEmulator) -> list[str]:
    """Keys of the open callback tasks in both CRMs."""
    hubspot_keys = [
        t["properties"]["twox_task_key"]
        for t in portal.objects("tasks")
        if (t["properties"].get("twox_task_key") or "").endswith(":task:callback")
        and t["properties"].get("hs_task_status") != "COMPLETED"
    ]
    salesforce_keys = [
        t["CallObject"]
        for t in org.records("Task")
        if (t["CallObject"] or "").endswith(":task:callback") and not t["IsClosed"]
    ]
    return hubspot_keys + salesforce_keys


def all_succeeded(config: Path, cwd: Path, expected: int) -> dict[str, dict[str, int]] | None:
    answer = connector("status", "--json", "--config", str(config), cwd=cwd)
    assert answer.returncode == 0, answer.stderr
    sinks = json.loads(answer.stdout)["sinks"]
    counts = {name: sink["deliveries"] for name, sink in sinks.items()}
    for name, sink in sinks.items():
        assert not sink["deliveries"].get("dead"), (name, sink)
        # crm-setup left nothing for a delivery to skip or pause on.
        assert (sink["paused"], sink["missing_fields"], sink["warning"]) == (False, {}, None), (name, sink)
    done = all(c == {"succeeded": expected} for c in counts.values()) and len(counts) == 2
    return counts if done else None


# -- HubSpot -------------------------------------------------------------------------------------------------------


def _digits(value: str | None) -> str:
    return "".join(ch for ch in value or "" if ch.isdigit())


def check_hubspot(portal: HubSpotEmulator, batch: list[dict[str, Any]]) -> None:
    contacts = portal.objects("contacts")
    by_phone: dict[str, list[dict[str, Any]]] = {}
    for contact in contacts:
        by_phone.setdefault(_digits(contact["properties"].get("phone"))[-10:], []).append(contact)

    def contact(e164: str) -> dict[str, Any]:
        [found] = by_phone[e164[-10:]]  # exactly one: matched, never duplicated
        return found

    calls = portal.objects("calls")
    external = [c["properties"].get("hs_call_external_id") for c in calls]
    assert sorted(external) == sorted(f"2x-{d['id']}" for d in batch)  # one Call per call, none twice
    call = {c["properties"]["hs_call_external_id"]: c for c in calls}
    for document in batch:  # each on the right contact's timeline
        [associated] = call[f"2x-{document['id']}"]["associations"]["contacts"]
        assert associated == contact(document["record_phone_number"])["id"]

    assert contact(SEEDED["dnc"][3])["properties"]["twox_do_not_call"] == "true"
    assert contact(SEEDED["callback_then_dnc"][3])["properties"]["twox_do_not_call"] == "true"
    assert contact(SEEDED["callback_closed"][3])["properties"]["twox_do_not_call"] == "true"
    assert contact(SEEDED["dnc"][3])["properties"]["hs_lead_status"] == "UNQUALIFIED"
    assert contact(SEEDED["wrong"][3])["properties"]["twox_wrong_number"] == "true"
    assert contact(SEEDED["invalid"][3])["properties"]["twox_number_invalid"] == "true"
    assert call["2x-9007"]["properties"]["hs_call_status"] == "FAILED"
    assert call["2x-9008"]["properties"]["hs_call_title"] == "2X call: unrecognized outcome mystery_new_reason"
    misc = contact(SEEDED["misc"][3])["properties"]  # not interested outranks the no-answer and voicemail calls
    assert (misc["hs_lead_status"], misc["twox_workflow_ended"]) == ("UNQUALIFIED", "true")
    assert misc["twox_last_call_outcome"] in {"not_interested", "no_answer", "voicemail_left", "unrecognized"}

    # Callbacks: one open task for the lead who asked, due in their business hours; none left for the one who then
    # said do-not-call.
    tasks = [t for t in portal.objects("tasks") if t["properties"].get("twox_task_key")]
    open_tasks = [t for t in tasks if t["properties"].get("hs_task_status") != "COMPLETED"]
    assert [t["properties"]["twox_task_key"] for t in open_tasks] == ["2x-9003:task:callback"]
    closed = {t["properties"]["twox_task_key"]: t for t in tasks if t not in open_tasks}
    # 9012's callback was never created when its do-not-call (9013) was claimed first, or was created and then
    # closed when the worker took 9012 before 9013 arrived: either way it is not open.
    assert "2x-9016:task:callback" in closed and set(closed) <= {"2x-9016:task:callback", "2x-9012:task:callback"}
    assert_requested_time(closed["2x-9016:task:callback"]["properties"]["hs_timestamp"])
    [task] = open_tasks
    assert portal.associations("tasks", task["id"], "contacts") == [contact(SEEDED["callback"][3])["id"]]
    assert_business_hours(task["properties"]["hs_timestamp"])
    due_local = datetime.fromisoformat(task["properties"]["hs_timestamp"].replace("Z", "+00:00")).astimezone(
        ZoneInfo(LEAD_TZ)
    )
    assert task["properties"]["hs_task_subject"] == f"Call back Cleo ({due_local:%a %d %b %H:%M} their time)"

    # Answers: in the call's notes and on the contact.
    answered = contact(SEEDED["answers"][3])["properties"]
    for name, value in ANSWERS.items():
        assert value in call["2x-9009"]["properties"]["hs_call_body"]
        assert answered[f"twox_q_{name}"] == value
    assert "Answers" in call["2x-9009"]["properties"]["hs_call_body"]

    assert int(call["2x-9005"]["properties"]["hs_call_duration"]) == MAX_DURATION_S * 1000  # clamped, not refused
    assert contact(LONG_NAME_NUMBER)["properties"]["firstname"] == LONG_FIRST  # HubSpot text holds 65,536
    assert contact(NEW_NUMBER)["properties"]["firstname"] == "Newton"  # created once, found the second time
    assert contact(NATIONAL[3])["properties"]["phone"] == NATIONAL[2]  # matched as stored: no duplicate
    assert len(contacts) == 4 + len(SEEDED) + 2  # the emulator's 4 sample contacts, ours, and the two new numbers


# -- Salesforce ----------------------------------------------------------------------------------------------------


def check_salesforce(org: SalesforceEmulator, batch: list[dict[str, Any]]) -> None:
    people = [(kind, r) for kind in ("Contact", "Lead") for r in org.records(kind) if not r.get("IsConverted")]
    by_phone: dict[str, list[dict[str, Any]]] = {}
    for kind, record in people:
        for field in ("Phone", "MobilePhone"):
            if record.get(field):
                by_phone.setdefault(_digits(record[field])[-10:], []).append({**record, "kind": kind})

    def person(e164: str) -> dict[str, Any]:
        [found] = by_phone[e164[-10:]]
        return found

    tasks = org.records("Task")
    activities = [t for t in tasks if t["CallObject"] and ":task:" not in t["CallObject"]]
    assert sorted(t["CallObject"] for t in activities) == sorted(f"2x-{d['id']}" for d in batch)
    call = {t["CallObject"]: t for t in activities}
    for document in batch:
        assert call[f"2x-{document['id']}"]["WhoId"] == person(document["record_phone_number"])["Id"]

    assert person(SEEDED["dnc"][3])["DoNotCall"] is True
    assert person(SEEDED["callback_then_dnc"][3])["DoNotCall"] is True
    assert person(SEEDED["callback_closed"][3])["DoNotCall"] is True
    assert person(SEEDED["wrong"][3])["TwoX_Wrong_Number__c"] is True
    assert person(SEEDED["wrong"][3])["TwoX_Last_Call_Outcome__c"] == "wrong_number"  # created and writable
    assert person(SEEDED["invalid"][3])["TwoX_Number_Invalid__c"] is True
    assert call["2x-9008"]["Subject"] == "Call: unrecognized outcome mystery_new_reason"

    callbacks = [t for t in tasks if (t["CallObject"] or "").endswith(":task:callback")]
    open_callbacks = [t for t in callbacks if not t["IsClosed"]]
    assert [t["CallObject"] for t in open_callbacks] == ["2x-9003:task:callback"]
    closed_by_key = {t["CallObject"]: t for t in callbacks if t["IsClosed"]}  # 9012's: never created, or closed
    assert "2x-9016:task:callback" in closed_by_key
    assert set(closed_by_key) <= {"2x-9016:task:callback", "2x-9012:task:callback"}
    closed = closed_by_key["2x-9016:task:callback"]
    assert_requested_time(closed["ReminderDateTime"])
    [task] = open_callbacks
    assert task["WhoId"] == person(SEEDED["callback"][3])["Id"]
    assert_business_hours(task["ReminderDateTime"])
    due_local = datetime.fromisoformat(task["ReminderDateTime"].replace("Z", "+00:00")).astimezone(ZoneInfo(LEAD_TZ))
    assert task["ActivityDate"] == due_local.date().isoformat()  # the lead's local date
    assert person(SEEDED["callback"][3])["TwoX_Callback_Due__c"] is not None

    description = call["2x-9009"]["Description"]
    assert "Answers" in description
    assert all(value in description for value in ANSWERS.values())

    assert call["2x-9005"]["CallDurationInSeconds"] == MAX_DURATION_S
    long_lead = person(LONG_NAME_NUMBER)
    assert long_lead["kind"] == "Lead" and len(long_lead["FirstName"]) <= 40 and long_lead["FirstName"].endswith("…")
    new = person(NEW_NUMBER)
    assert new["kind"] == "Lead" and new["FirstName"] == "Newton"
    national = person(NATIONAL[3])
    assert national["kind"] == "Lead" and national["Phone"] == NATIONAL[2] and national["FirstName"] == "Nadia"
    assert (national["Status"], national["TwoX_Last_Call_Outcome__c"]) == ("Working - Contacted", "hung_up")


def assert_business_hours(due: str) -> None:
    """A due time inside 09:00–17:00 on a weekday in the lead's zone (the lead asked for "tomorrow 3am")."""
    local = datetime.fromisoformat(due.replace("Z", "+00:00")).astimezone(ZoneInfo(LEAD_TZ))
    assert local.weekday() < 5 and 9 <= local.hour < 17, local
    assert local > datetime.now(UTC)


def assert_requested_time(due: str) -> None:
    """9016 asked for "Monday 10am" with record_timezone UTC-5: due at 10:00 on a Monday at UTC-5, not in UTC."""
    local = datetime.fromisoformat(due.replace("Z", "+00:00")).astimezone(timezone(timedelta(hours=-5)))
    assert (local.weekday(), local.hour, local.minute) == (0, 10, 0), local
