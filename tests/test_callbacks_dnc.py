"""Golden end-to-end tests: do-not-call closes the door on callbacks, whatever the order calls arrive and are
delivered in; on both CRMs, through the real engine (single and batch paths), the real clients
(hubspot-api-client, simple-salesforce) and the emulators over loopback HTTP(S).

End state in every case: the contact's do-not-call is set and no open callback task exists.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hubspot
import pytest
from hubspot.crm.contacts import SimplePublicObjectInput

from connector.dashboard.audit import event_detail
from connector.emulators.hubspot.server import HubSpotEmulator
from connector.emulators.salesforce.server import SalesforceEmulator
from connector.engine.worker import Worker
from connector.ledger import Ledger
from connector.ops.status_text import event_text
from tests.support.delivery import drain, ingest
from tests.support.hubspot import TOKEN as HS_TOKEN
from tests.support.hubspot import engine_settings as hubspot_settings
from tests.support.salesforce import client as salesforce_client
from tests.support.salesforce import engine_settings as salesforce_settings

NEW_PHONES = ["+13125550101", "+13125550102"]
"""Numbers neither emulator knows: the first call creates the contact (HubSpot) or Lead (Salesforce)."""


@dataclass
class Crm:
    """One CRM's emulator and worker, and the questions the tests ask of it (through the emulator's inspection)."""

    name: str
    sink: str
    emulator: Any
    ledger: Ledger
    worker: Worker

    def callback_tasks(self, event_id: str) -> list[dict[str, Any]]:
        key = f"2x-{event_id}:task:callback"
        if self.name == "hubspot":
            return [
                {
                    "id": t["id"],
                    "open": t["properties"].get("hs_task_status") != "COMPLETED",
                    "subject": t["properties"].get("hs_task_subject"),
                }
                for t in self.emulator.objects("tasks")
                if t["properties"].get("twox_task_key") == key
            ]
        return [
            {"id": t["Id"], "open": not t["IsClosed"], "subject": t["Subject"]}
            for t in self.emulator.records("Task")
            if t["CallObject"] == key
        ]

    def open_callback_tasks(self) -> list[dict[str, Any]]:
        if self.name == "hubspot":
            return [
                t
                for t in self.emulator.objects("tasks")
                if t["properties"].get("hs_task_status") != "COMPLETED"
                and ":task:" in (t["properties"].get("twox_task_key") or "")
            ]
        return [t for t in self.emulator.records("Task") if not t["IsClosed"] and ":task:" in (t["CallObject"] or "")]

    def contacts_with(self, phone: str) -> list[dict[str, Any]]:
        """The field values of every contact record (Salesforce: Contact or Lead) whose number ends like ``phone``."""
        digits = phone[-10:]
        if self.name == "hubspot":
            records = [
                c["properties"] | {"Phone": c["properties"].get("phone")} for c in self.emulator.objects("contacts")
            ]
        else:
            records = [r for o in ("Contact", "Lead") for r in self.emulator.records(o)]
        return [r for r in records if "".join(ch for ch in r.get("Phone") or "" if ch.isdigit()).endswith(digits)]

    def do_not_call(self, phone: str) -> bool:
        found = self.contacts_with(phone)
        if self.name == "hubspot":
            return bool(found) and all(r.get("twox_do_not_call") == "true" for r in found)
        return bool(found) and all(r["DoNotCall"] is True for r in found)

    def callback_due(self, phone: str) -> str | None:
        """The contact's "callback due" field (the default mappings write it with a callback)."""
        [record] = self.contacts_with(phone)
        return record.get("twox_callback_due" if self.name == "hubspot" else "TwoX_Callback_Due__c") or None

    def restart_with_mapping(self, tmp_path: Path, old: str, new: str) -> None:
        """The worker again, on the CRM's default mapping with ``old`` replaced by ``new`` once (a customer's edit)."""
        from connector.default_mappings import default_mapping_path

        text = default_mapping_path(self.name).read_text()
        assert old in text
        mapping = tmp_path / "mapping.yaml"
        mapping.write_text(text.replace(old, new, 1))
        self.worker.close()
        settings = (
            hubspot_settings(self.emulator, tmp_path, mapping=str(mapping))
            if self.name == "hubspot"
            else salesforce_settings(self.emulator, tmp_path, mapping=mapping)
        )
        self.worker = Worker(settings, ledger=self.ledger)
        self.worker.open()

    def set_do_not_call_in_crm(self, phone: str) -> str:
        """A rep (or another tool) marks the contact do-not-call in the CRM, through the CRM's own API."""
        if self.name == "hubspot":
            client = hubspot.Client.create(access_token=HS_TOKEN, host=self.emulator.url)
            from hubspot.crm.contacts import SimplePublicObjectInputForCreate

            created = client.crm.contacts.basic_api.create(
                SimplePublicObjectInputForCreate(properties={"phone": phone, "firstname": "Pat"})
            )
            client.crm.contacts.basic_api.update(
                str(created.id), SimplePublicObjectInput(properties={"twox_do_not_call": "true"})
            )
            return str(created.id)
        sf = salesforce_client(self.emulator)
        created = sf.Contact.create({"LastName": "Pat", "Phone": phone})
        sf.Contact.update(created["id"], {"DoNotCall": True})
        return str(created["id"])

    def journal(self, event_id: str) -> dict[str, Any]:
        [delivery] = self.ledger.deliveries_for(event_id)
        assert delivery["status"] == "succeeded", delivery
        return self.ledger.deliveries.journal(delivery["id"])

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request the emulator answered so far."""
        if self.name == "hubspot":
            return [(r.method.upper(), r.path) for r in self.emulator.request_log]
        return [
            (str(r["method"]).upper(), str(r["path"]) + "?" + str(r.get("query") or ""))
            for r in self.emulator.request_log
        ]


@pytest.fixture(params=["hubspot", "salesforce"])
def crm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Crm]:
    if request.param == "hubspot":
        emulator: Any = HubSpotEmulator(
            tokens=[HS_TOKEN], rate_limit=10_000, search_rate_per_s=None, seed_custom_properties=True
        )
        with emulator:
            settings = hubspot_settings(emulator, tmp_path)
            yield from _running("hubspot", "hs", emulator, settings)
    else:
        with SalesforceEmulator() as emulator:
            yield from _running("salesforce", "sf", emulator, salesforce_settings(emulator, tmp_path))


def _running(name: str, sink: str, emulator: Any, settings: Any) -> Iterator[Crm]:
    ledger = Ledger.open(settings.store)
    worker = Worker(settings, ledger=ledger)
    worker.open()
    try:
        yield Crm(name, sink, emulator, ledger, worker)
    finally:
        worker.close()
        ledger.dispose()


def call(crm: Crm, event_id: int, end_reason: str, phone: str) -> str:
    return ingest(
        crm.ledger,
        event_id,
        sinks=(crm.sink,),
        end_reason=end_reason,
        record_phone_number=phone,
        question_fields={"case_number": "8057", "callback_time": "tomorrow 3pm"},
    )


def phones_for(path: str) -> list[str]:
    """single: one contact, so every claim holds one delivery (DeliveryRunner.run); batch: two contacts at once,
    so claims hold two deliveries and go through BatchingRunner.run_many and the sinks' execute_batch."""
    return NEW_PHONES[:1] if path == "single" else NEW_PHONES


def assert_batched(crm: Crm, path: str) -> None:
    """The call records went out in batch creates (HubSpot batch API, Salesforce sObject Collections POST)."""
    method, marker = ("POST", "/calls/batch/create") if crm.name == "hubspot" else ("POST", "composite/sobjects")
    used = any(m == method and marker in request_path for m, request_path in crm.requests())
    assert used == (path == "batch"), f"{path} path expected"


@pytest.mark.parametrize("path", ["single", "batch"])
def test_callback_then_do_not_call_closes_the_callback_task(crm: Crm, path: str) -> None:
    phones = phones_for(path)
    callbacks = [call(crm, 100 + i, "schedule_call_back", p) for i, p in enumerate(phones)]
    drain(crm.worker)
    for event_id in callbacks:
        [task] = crm.callback_tasks(event_id)
        assert task["open"]
    assert all(crm.callback_due(p) for p in phones)
    before = len(crm.requests())
    dncs = [call(crm, 200 + i, "do_not_call", p) for i, p in enumerate(phones)]
    drain(crm.worker)
    if path == "single":  # measured: what closing costs on top of logging the call and updating the contact
        closing = [r for r in crm.requests()[before:] if _is_close_request(crm, r)]
        assert len(closing) == (3 if crm.name == "hubspot" else 2), closing

    for phone, callback, dnc in zip(phones, callbacks, dncs, strict=True):
        assert crm.do_not_call(phone)
        [task] = crm.callback_tasks(callback)
        assert not task["open"] and task["subject"].startswith("Call back John")  # completed, not renamed
        [close] = [e for e in crm.journal(dnc).values() if e.kind == "close_callbacks"]
        assert close.status == "succeeded"
        assert close.result["detail"] == {"reason": "do_not_call", "closed": [task["id"]]}
        [contact] = [e for e in crm.journal(dnc).values() if e.kind == "resolve_contact"]
        assert (close.crm_id, close.result["object"]) == (contact.crm_id, contact.result["object"])  # not a Task's
    assert crm.open_callback_tasks() == []
    assert not any(crm.callback_due(p) for p in phones)  # a "callbacks due" view no longer lists them
    assert_batched(crm, path)


@pytest.mark.parametrize("path", ["single", "batch"])
def test_do_not_call_delivered_first_means_no_callback_task(crm: Crm, path: str) -> None:
    """Both calls wait in the ledger; do-not-call priority delivers the later do-not-call first, and the
    callback that follows is refused by the ledger's own record of it (no CRM read needed)."""
    phones = phones_for(path)
    callbacks = [call(crm, 300 + i, "schedule_call_back", p) for i, p in enumerate(phones)]
    dncs = [call(crm, 400 + i, "do_not_call", p) for i, p in enumerate(phones)]
    drain(crm.worker)

    for phone, callback, dnc in zip(phones, callbacks, dncs, strict=True):
        assert crm.do_not_call(phone)
        assert crm.callback_tasks(callback) == []
        [task] = [e for e in crm.journal(callback).values() if e.kind == "create_task"]
        assert task.status == "skipped"
        assert task.result["detail"] == {"reason": "do_not_call", "property": _dnc(crm), "source": "connector"}
        [close] = [e for e in crm.journal(dnc).values() if e.kind == "close_callbacks"]
        assert close.result["detail"]["closed"] == []  # it ran first: nothing was open yet
        assert crm.ledger.deliveries_for(dnc)[0]["updated_at"] <= crm.ledger.deliveries_for(callback)[0]["updated_at"]
    assert crm.open_callback_tasks() == []
    assert_batched(crm, path)


@pytest.mark.parametrize("path", ["single", "batch"])
def test_do_not_call_already_set_in_the_crm_means_no_callback_task(crm: Crm, path: str) -> None:
    phones = phones_for(path)
    for phone in phones:
        crm.set_do_not_call_in_crm(phone)
    before = len(crm.requests())
    callbacks = [call(crm, 500 + i, "schedule_call_back", p) for i, p in enumerate(phones)]
    drain(crm.worker)

    for phone, callback in zip(phones, callbacks, strict=True):
        assert crm.do_not_call(phone)
        assert crm.callback_tasks(callback) == []
        [task] = [e for e in crm.journal(callback).values() if e.kind == "create_task"]
        assert task.status == "skipped"
        assert task.result["detail"] == {"reason": "do_not_call", "property": _dnc(crm), "source": "crm"}
        # Nor the callback's own contact fields: no "callbacks due" date, no status saying someone is working it.
        assert crm.callback_due(phone) is None
        if crm.name == "hubspot":
            [contact] = crm.contacts_with(phone)
            assert contact.get("hs_lead_status") is None
        [update] = [e for e in crm.journal(callback).values() if e.kind == "update_contact"]
        assert update.status == "succeeded"  # the every-call fields and answers still went
        withheld = update.result["detail"]["withheld"]
        assert (withheld["property"], withheld["source"]) == (_dnc(crm), "crm")
        assert _due_field(crm) in withheld["fields"]
        report = event_text(event_detail(crm.ledger, crm.worker.settings, callback) or {})
        [line] = [x for x in report.splitlines() if "left out (do-not-call)" in x]  # `connector status EVENT_ID`
        assert _due_field(crm) in line
    assert crm.open_callback_tasks() == []
    requests = crm.requests()[before:]
    if path == "single":  # the guard's cost: exactly one GET per callback (its contact fields and task share it)
        assert len([r for r in requests if _is_guard_read(crm, r)]) == len(phones)
    else:  # under a backlog: one read for all of them
        assert [r for r in requests if _is_guard_read(crm, r)] == []
        assert len([r for r in requests if _is_batched_guard_read(crm, r)]) == 1


@pytest.mark.parametrize("path", ["single", "batch"])
def test_a_callback_after_the_do_not_call_writes_no_callback_fields(crm: Crm, path: str) -> None:
    """The lead said "do not call" on Monday; 2X's list lagged and a newer call on Wednesday ended in "call me back".
    Precedence alone let the newer call write its due date (newest_call) over the one the do-not-call cleared, so a
    rep's "callbacks due" view listed a do-not-call contact. The connector's own record settles it: no CRM read."""
    phones = phones_for(path)
    for index, phone in enumerate(phones):
        call(crm, 800 + index, "do_not_call", phone)
    drain(crm.worker)
    statuses = [crm.contacts_with(p)[0].get(_status_field(crm)) for p in phones]
    before = len(crm.requests())
    callbacks = [call(crm, 810 + i, "schedule_call_back", p) for i, p in enumerate(phones)]
    drain(crm.worker)

    for phone, status, callback in zip(phones, statuses, callbacks, strict=True):
        assert crm.do_not_call(phone)
        assert crm.callback_tasks(callback) == []
        assert crm.callback_due(phone) is None
        assert crm.contacts_with(phone)[0].get(_status_field(crm)) == status  # what the do-not-call set, kept
        [update] = [e for e in crm.journal(callback).values() if e.kind == "update_contact"]
        withheld = update.result["detail"]["withheld"]
        assert (withheld["property"], withheld["source"]) == (_dnc(crm), "connector")
    requests = crm.requests()[before:]
    assert [r for r in requests if _is_guard_read(crm, r) or _is_batched_guard_read(crm, r)] == []


def test_the_guard_costs_one_read_per_callback_and_nothing_for_other_outcomes(crm: Crm) -> None:
    """Measured: a callback to a contact that is not do-not-call pays one extra GET; other outcomes none."""
    phone = NEW_PHONES[0]
    call(crm, 600, "hung_up", phone)
    drain(crm.worker)
    before = len(crm.requests())
    call(crm, 601, "hung_up", phone)
    drain(crm.worker)
    plain = crm.requests()[before:]
    before = len(crm.requests())
    callback = call(crm, 602, "schedule_call_back", phone)
    drain(crm.worker)
    with_task = crm.requests()[before:]
    assert [r for r in plain if _is_guard_read(crm, r)] == []
    assert len([r for r in with_task if _is_guard_read(crm, r)]) == 1
    [task] = crm.callback_tasks(callback)
    assert task["open"]
    print(f"\n{crm.name}: hung_up {len(plain)} requests, callback {len(with_task)} requests")


def test_close_as_cancelled_prefixes_the_subject(crm: Crm, tmp_path: Path) -> None:
    """The mapping can say `close_as: cancelled`: still a closed status, and the subject says why."""
    crm.restart_with_mapping(tmp_path, "close_as: completed", "close_as: cancelled")
    phone = NEW_PHONES[0]
    callback = call(crm, 700, "schedule_call_back", phone)
    drain(crm.worker)
    call(crm, 701, "do_not_call", phone)
    drain(crm.worker)
    [task] = crm.callback_tasks(callback)
    assert not task["open"] and task["subject"].startswith("Cancelled (do not call): Call back John")


def test_a_question_can_set_do_not_call_but_never_clear_it(crm: Crm, tmp_path: Path) -> None:
    """`question_fields.map: {opt_out: {property: DoNotCall, transform: bool}}`: an answer "no" used to write false
    over a do-not-call the lead asked for on an earlier call (planned under newest_call, not sticky_true). Salesforce
    field names ignore case, so the property is written the way a user might: lower-case."""
    target = _dnc(crm).lower()
    crm.restart_with_mapping(tmp_path, "  map: {}", f"  map: {{opt_out: {{property: {target}, transform: bool}}}}")
    phone = NEW_PHONES[0]

    def answered(event_id: int, opt_out: str) -> str:
        sent = ingest(
            crm.ledger,
            event_id,
            sinks=(crm.sink,),
            end_reason="call_transferred",
            record_phone_number=phone,
            question_fields={"opt_out": opt_out},
        )
        drain(crm.worker)
        return sent

    answered(710, "yes")
    assert crm.do_not_call(phone)
    later = answered(711, "no")
    assert crm.do_not_call(phone)
    [delivery] = crm.ledger.deliveries_for(later)
    assert delivery["status"] == "succeeded", delivery


def _dnc(crm: Crm) -> str:
    return "twox_do_not_call" if crm.name == "hubspot" else "DoNotCall"


def _status_field(crm: Crm) -> str:
    return "hs_lead_status" if crm.name == "hubspot" else "Status"  # Salesforce: a new number becomes a Lead


def _due_field(crm: Crm) -> str:
    return "twox_callback_due" if crm.name == "hubspot" else "TwoX_Callback_Due__c"


def _is_close_request(crm: Crm, request: tuple[str, str]) -> bool:
    """HubSpot: associations read, tasks batch read, tasks batch update; Salesforce: the SOQL, the PATCH."""
    method, path = request
    if crm.name == "hubspot":
        return "/associations/tasks" in path or path.startswith("/crm/v3/objects/tasks/batch/")
    return ("/query" in path and "IsClosed" in path) or (method == "PATCH" and "composite/sobjects" in path)


def _is_batched_guard_read(crm: Crm, request: tuple[str, str]) -> bool:
    method, path = request
    if crm.name == "hubspot":
        return method == "POST" and path == "/crm/v3/objects/contacts/batch/read"
    return method == "GET" and "/query" in path and "DoNotCall" in path and "Id IN" in path


def _is_guard_read(crm: Crm, request: tuple[str, str]) -> bool:
    method, path = request
    if crm.name == "hubspot":
        return method == "GET" and path.startswith("/crm/v3/objects/contacts/")
    return method == "GET" and ("/sobjects/Contact/" in path or "/sobjects/Lead/" in path) and "describe" not in path
