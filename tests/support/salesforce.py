"""Salesforce sink test helpers: a sink opened with the real simple-salesforce on the emulator, plans of the
default mapping at a fixed call time, a REST client on the emulator, and an engine (ledger + worker) with a
`salesforce` sink.

Shared by the Salesforce sink, batching, resolve-many, fitting, schema-drift and callback tests.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simple_salesforce import Salesforce

from connector.config import SalesforceSinkSettings, Settings, parse_settings
from connector.default_mappings import default_mapping_path
from connector.emulators.salesforce.server import SalesforceEmulator
from connector.engine.worker import Worker
from connector.ledger import Ledger
from connector.mapping.loader import load_mapping
from connector.mapping.planner import plan_event
from connector.payload import parse_webhook
from connector.plan import CloseCallbacks, Plan
from connector.sample import sample_payload
from connector.sinks.base import ExecutionContext
from connector.sinks.salesforce.sink import SalesforceSink

MAPPING = load_mapping(default_mapping_path("salesforce"))
CALL_TIME = datetime(2026, 11, 27, 3, 30, tzinfo=UTC)  # 22:30 on Thu 26 Nov in the sample's UTC-5


class CountingGate:
    """Stands in for the shared rate budget; counts waits."""

    waits = 0

    def wait(self, cost: int = 1) -> None:
        self.waits += cost


def open_sink(emulator: SalesforceEmulator, gate: CountingGate | None = None, **auth: Any) -> SalesforceSink:
    """An opened sink on the emulator (its session id unless `auth` names another way in)."""
    sink = SalesforceSink(
        "sf",
        SalesforceSinkSettings(
            type="salesforce",
            instance_url=emulator.instance_url,
            ca_bundle=emulator.ca_file,
            auth=auth or {"session_id": emulator.session_id},
        ),
    )
    sink.open(gate or CountingGate())
    return sink


def make_plan(event_id: int, phone: str | None = None, **overrides: Any) -> Plan:
    """The default mapping's plan for the sample event, at CALL_TIME."""
    document = sample_payload(event_id, **({"record_phone_number": phone} if phone else {}), **overrides)
    if "failure_reason" in overrides:
        document["call"].update(failure_reason=document.pop("failure_reason"), answered=False, duration=0)
    return plan_event(parse_webhook(document), MAPPING, sink="sf", call_time=CALL_TIME)


def run(sink: SalesforceSink, plan: Plan, upto: int | None = None) -> ExecutionContext:
    """As the engine does: resolve via execute, close_callbacks via execute, everything else in one execute_many;
    results by key."""
    context = ExecutionContext()
    context.results[plan.actions[0].key] = sink.execute(plan.actions[0], context)
    rest = [] if context.contact().skipped else plan.actions[1:upto]
    for action in [a for a in rest if isinstance(a, CloseCallbacks)]:
        context.results[action.key] = sink.execute(action, context)
    rest = [a for a in rest if not isinstance(a, CloseCallbacks)]
    for action, result in zip(rest, sink.execute_many(rest, context), strict=True):
        context.results[action.key] = result
    return context


def tasks(emulator: SalesforceEmulator, key: str) -> list[dict[str, Any]]:
    """The Tasks the emulator holds for one call key."""
    return [t for t in emulator.records("Task") if t["CallObject"] == key]


def client(emulator: SalesforceEmulator) -> Salesforce:
    """A simple-salesforce client on the emulator, to seed or read records as an admin would."""
    return Salesforce(
        instance_url=emulator.instance_url,
        session_id=emulator.session_id,
        session=emulator.client_session(),
        version="62.0",
    )


def engine_settings(emulator: SalesforceEmulator, tmp_path: Path, mapping: Path | None = None) -> Settings:
    """Settings with one `salesforce` sink (`sf`) on the emulator and a SQLite ledger in `tmp_path`."""
    sink: dict[str, Any] = {
        "type": "salesforce",
        "instance_url": emulator.instance_url,
        "ca_bundle": emulator.ca_file,
        "auth": {"session_id": emulator.session_id},
    }
    if mapping is not None:
        sink["mapping"] = str(mapping)
    return parse_settings(
        {
            "receiver": {"auth": {"tokens": ["t" * 32]}},
            "store": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
            "sinks": {"sf": sink},
            "worker": {
                "poll_interval_s": 0.05,
                "lease_s": 10,
                "batch_size": 50,
                "retry": {"schedule_s": [0.2], "jitter": 0, "quick_retries": 1, "quick_wait_s": 0.01},
            },
        },
        source="t",
        base_dir=Path("."),
        environ={},
    )


class Engine:
    """A ledger and a worker on it; ``restart`` is a new process: nothing the old sink knew survives."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ledger = Ledger.open(settings.store)
        self.worker = Worker(settings, ledger=self.ledger)
        self.worker.open()

    @property
    def sink(self) -> SalesforceSink:
        sink = self.worker._runtimes["sf"].sink
        assert isinstance(sink, SalesforceSink)
        return sink

    def restart(self) -> None:
        self.worker.close()
        self.worker = Worker(self.settings, ledger=self.ledger)
        self.worker.open()

    def close(self) -> None:
        self.worker.close()
        self.ledger.dispose()


def seed_contacts(emulator: SalesforceEmulator, count: int, first: int = 2000) -> list[tuple[str, str]]:
    """``count`` Contacts with human-typed phones, created in one collection; (E.164, id) each."""
    numbers = [f"+1312555{first + i:04d}" for i in range(count)]
    records = [
        {"attributes": {"type": "Contact"}, "LastName": f"Roe {i}", "Phone": f"(312) 555-{first + i:04d}"}
        for i in range(count)
    ]
    answer = client(emulator).restful("composite/sobjects", method="POST", json={"records": records})
    return [(n, r["id"]) for n, r in zip(numbers, answer, strict=True)]


def variant(tmp_path: Path, **activity_by_outcome: str) -> Path:
    """The default mapping with an extra activity property in some outcomes (a customer's edit)."""
    text = default_mapping_path("salesforce").read_text()
    for outcome, extra in activity_by_outcome.items():
        anchor = f"  - name: {outcome}\n"
        head, tail = text.split(anchor)
        block_end = tail.index("\n\n")
        text = head + anchor + tail[:block_end] + f"\n    activity: {{{extra}}}" + tail[block_end:]
    (path := tmp_path / "variant.yaml").write_text(text)
    return path


def with_question_fields(tmp_path: Path, **properties: str) -> Path:
    """The default mapping with answers to these questions also written to these Contact/Lead fields."""
    text = default_mapping_path("salesforce").read_text()
    anchor = "  map: {}                      # e.g.  case_number: {property: Case_Number__c}\n"
    assert anchor in text
    entries = ", ".join(f"{name}: {{property: {field}}}" for name, field in properties.items())
    (path := tmp_path / "questions.yaml").write_text(text.replace(anchor, f"  map: {{{entries}}}\n"))
    return path
