"""Realistic sandbox data for the screenshots: calls delivered to the HubSpot and Salesforce emulators
by a real worker, a dead letter (a mapping names a HubSpot property that does not exist), quarantined
bodies posted to the real receiver, a Salesforce sink paused by a revoked session, and a HubSpot mapping saved
with a typo while the worker runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import update

from connector.config import Settings, parse_settings
from connector.default_mappings import default_mapping_path
from connector.engine.worker import Worker
from connector.ledger import Ledger
from connector.ledger._clock import utcnow
from connector.ledger.schema import deliveries, events
from connector.ops.sandbox import Emulators
from connector.payload import parse_webhook
from connector.receiver.ingest import content_hash
from connector.sample import sample_payload
from tests.support.delivery import drain

WEBHOOK_TOKEN = "sandbox-webhook-token-for-screenshots"

# (id, minutes ago, end_reason, phone, first, last, extra payload keys, transcript)
CALLS: list[tuple[int, int, str, str, str, str, dict[str, Any], list[tuple[str, str]]]] = [
    (48213, 190, "no_answer", "+1 415 555 0100", "James", "Chen", {"call": {"answered": False, "duration": 0}}, []),
    (
        48219,
        172,
        "voicemail_detected",
        "(312) 555-0199",
        "Sam",
        "Okafor",
        {"message_left": "Y"},
        [
            (
                "Assistant",
                ("Hi Sam, this is Ava from Northwind Solar returning your request; call us back at your convenience."),
            )
        ],
    ),
    (
        48224,
        151,
        "call_transferred",
        "(202) 555-0143",
        "Maria",
        "Garcia",
        {},
        [
            ("User", "Hello?"),
            ("Assistant", "Hi, is this Maria?"),
            ("User", "Speaking."),
            ("Assistant", "Great, I'll transfer you to a specialist now."),
        ],
    ),
    (
        48231,
        128,
        "not_interested",
        "+1 646 555 0123",
        "Bob",
        "Miller",
        {},
        [
            ("User", "Who is this?"),
            ("Assistant", "Ava from Northwind Solar, about your quote."),
            ("User", "We already went with someone else, thanks."),
        ],
    ),
    (
        48236,
        96,
        "schedule_call_back",
        "212.555.0188",
        "Priya",
        "Patel",
        {"question_fields": {"callback_time": "tomorrow 3pm", "roof_type": "flat"}},
        [
            ("User", "Hi, I'm driving right now."),
            ("Assistant", "No problem, when should we call back?"),
            ("User", "Tomorrow at 3pm works."),
            ("Assistant", "Perfect, I'll schedule it for tomorrow at 3 pm."),
        ],
    ),
    (
        48240,
        71,
        "do_not_call",
        "+1 305 555 0147",
        "Dana",
        "Reyes",
        {},
        [
            ("User", "Please take me off your list and don't call again."),
            ("Assistant", "Understood, you won't be called again."),
        ],
    ),
    (48244, 55, "line_busy", "+1 503 555 0162", "Lee", "Wong", {"call": {"answered": False, "duration": 2}}, []),
    (
        48247,
        33,
        "call_transferred",
        "+1 720 555 0175",
        "Ava",
        "Brooks",
        {"question_fields": {"plan": "pro plan"}},
        [("User", "Yes, I want the pro plan."), ("Assistant", "Great choice, connecting you to sales.")],
    ),
    (48251, 12, "hung_up", "+1 617 555 0111", "Noah", "Kim", {}, [("User", "Not now.")]),
    (
        48255,
        4,
        "end_call",
        "+1 206 555 0190",
        "Emma",
        "Stone",
        {},
        [("User", "I have what I need, thanks."), ("Assistant", "Thank you, have a great day!")],
    ),
]


@dataclass
class Sandbox:
    """Everything the screenshots need; `close()` stops the emulators and the worker."""

    settings: Settings
    ledger: Ledger
    worker: Worker
    emulators: Emulators
    delivered_event: str
    dead_event: str

    def close(self) -> None:
        self.worker.close()
        self.emulators.stop()
        self.ledger.dispose()


def _payload(
    call_id: int,
    end_reason: str,
    phone: str,
    first: str,
    last: str,
    extra: dict[str, Any],
    transcript: list[tuple[str, str]],
) -> dict[str, Any]:
    payload = sample_payload(
        call_id,
        end_reason=end_reason,
        record_phone_number=phone,
        record_first_name=first,
        record_last_name=last,
        question_fields={},
        workflow_key="SOLAR-Q4",
        meta={"campaign": "solar-q4"},
        transcript=[{"role": r, "content": c} for r, c in transcript],
    )
    call_extra = extra.get("call", {})
    payload["call"] = {**payload["call"], **call_extra, "end_reason": end_reason}
    payload.update({k: v for k, v in extra.items() if k != "call"})
    return payload


def _settings(workdir: Path, emulators: Emulators, *, salesforce_session: str | None = None) -> Settings:
    mapping = yaml.safe_load(default_mapping_path("hubspot").read_text(encoding="utf-8"))
    mapping["question_fields"]["map"] = {"plan": {"property": "plan_tier"}}  # a property HubSpot does not have
    (workdir / "hubspot-mapping.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")
    sinks = emulators.sinks()
    sinks["hubspot"]["mapping"] = str(workdir / "hubspot-mapping.yaml")
    if salesforce_session:
        sinks["salesforce"]["auth"] = {"session_id": salesforce_session}
    document = {
        "receiver": {"auth": {"header": "Authorization", "tokens": [WEBHOOK_TOKEN]}},
        "store": {"url": f"sqlite:///{workdir / 'sandbox.db'}"},
        "sinks": sinks,
        "worker": {
            "poll_interval_s": 0.05,
            "auth_probe_s": 600,
            "retry": {"schedule_s": [0.2], "jitter": 0, "quick_retries": 0, "quick_wait_s": 0.01},
        },
    }
    return parse_settings(document, source="<sandbox>", base_dir=workdir, environ={})


def _ingest(ledger: Ledger, settings: Settings, payload: dict[str, Any], minutes_ago: int) -> str:
    event = parse_webhook(payload)
    ledger.record_event(
        event,
        body=json.dumps(payload, indent=1).encode(),
        content_type="application/json",
        content_hash=content_hash(payload),
        sinks=settings.enabled_sinks(),
    )
    at = utcnow() - timedelta(minutes=minutes_ago, seconds=17)
    with ledger.engine.begin() as connection:
        connection.execute(update(events).where(events.c.event_id == event.id).values(received_at=at))
        connection.execute(
            update(deliveries)
            .where(deliveries.c.event_id == event.id)
            .values(created_at=at, due_at=at, call_time=at, updated_at=at)
        )
    return event.id


def _quarantine(settings: Settings, ledger: Ledger) -> None:
    """Two refused bodies, posted to the real receiver: 2X's own unparseable sample and a wrong type."""
    from connector.app import create_app
    from connector.sample import VENDOR_SAMPLE_VERBATIM

    client = create_app(settings, ledger=ledger).test_client()
    headers = {"Authorization": WEBHOOK_TOKEN, "Content-Type": "application/json"}
    client.post(settings.receiver.path, data=VENDOR_SAMPLE_VERBATIM.encode(), headers=headers)
    bad = sample_payload(48258, record_phone_number="+1 919 555 0133")
    bad["call"]["duration"] = -5
    client.post(settings.receiver.path, data=json.dumps(bad).encode(), headers=headers)


def _break_mapping_briefly(workdir: Path, worker: Worker) -> None:
    """Someone saves the HubSpot mapping with a typo: the running worker records it (the overview shows it with
    FILE:LINE). The file is put back afterwards so the other pages (preview) work; nothing rechecks it here."""
    path = workdir / "hubspot-mapping.yaml"
    good = path.read_text(encoding="utf-8")
    path.write_text(good.replace("end_reason: do_not_call", "end_reason: do_not_cal", 1), encoding="utf-8")
    worker._reload_changed_mappings()
    path.write_text(good, encoding="utf-8")


def build(workdir: Path) -> Sandbox:
    """Start the emulators, deliver the calls, leave a dead letter, quarantine two bodies, pause Salesforce."""
    emulators = Emulators.start()
    try:
        settings = _settings(workdir, emulators)
        ledger = Ledger.open(settings.store)
        ids = {}
        for call_id, minutes, reason, phone, first, last, extra, transcript in CALLS[:-2]:
            ids[call_id] = _ingest(
                ledger, settings, _payload(call_id, reason, phone, first, last, extra, transcript), minutes
            )
        worker = Worker(settings, ledger=ledger, worker_id="sandbox-host:4242:worker")
        worker.open()
        drain(worker, rounds=60)
        worker.close()
        _quarantine(settings, ledger)
        # Salesforce revokes the session: the next calls pause its sink (HubSpot still delivers them).
        revoked = _settings(workdir, emulators, salesforce_session="revoked-session-id")
        for call_id, minutes, reason, phone, first, last, extra, transcript in CALLS[-2:]:
            ids[call_id] = _ingest(
                ledger, settings, _payload(call_id, reason, phone, first, last, extra, transcript), minutes
            )
        worker = Worker(revoked, ledger=ledger, worker_id="sandbox-host:4242:worker")
        worker.open()
        drain(worker, rounds=20)
        _break_mapping_briefly(workdir, worker)
        return Sandbox(settings, ledger, worker, emulators, delivered_event=ids[48236], dead_event=ids[48247])
    except BaseException:
        emulators.stop()
        raise
