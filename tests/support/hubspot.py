"""HubSpot sink test helpers: a seeded emulator portal, a sink opened on it with the real hubspot-api-client,
plans of the default mapping at a fixed call time, and engine settings with a `hubspot` sink.

Shared by the HubSpot sink, batching, fitting, schema-drift and callback tests, so they all drive one portal the
same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hubspot
from hubspot.crm.properties import PropertyCreate

from connector.config import HubSpotSinkSettings, Settings, parse_settings
from connector.default_mappings import default_mapping_path
from connector.emulators.hubspot.server import HubSpotEmulator
from connector.mapping.loader import load_mapping
from connector.mapping.planner import plan_event
from connector.payload import parse_webhook
from connector.plan import Plan
from connector.sample import sample_payload
from connector.sinks.base import ExecutionContext
from connector.sinks.hubspot.sink import HubSpotSink

TOKEN = "hubspot-sink-test-token"
MAPPING = load_mapping(default_mapping_path("hubspot"))
CALL_TIME = datetime(2026, 11, 26, 19, 30, tzinfo=UTC)  # a Thursday, 14:30 in the sample's UTC-5
SEEDED = "1001"  # Maria Garcia, phone typed "(202) 555-0143" = the sample's +12025550143


@contextmanager
def seeded_portal() -> Iterator[HubSpotEmulator]:
    """A fresh portal, with the connector's custom properties and the sample's question property."""
    with HubSpotEmulator(
        tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None, seed_custom_properties=True
    ) as running:
        client = hubspot.Client.create(access_token=TOKEN, host=running.url)
        client.crm.properties.core_api.create(
            "contacts",
            PropertyCreate(
                name="twox_q_case_number", label="2X: case number", type="string", field_type="text", group_name="twox"
            ),
        )
        running.reset_counters()
        yield running


class CountingGate:
    """Stands in for the shared rate budget; counts waits to prove one per request."""

    def __init__(self) -> None:
        self.waits = 0

    def wait(self, cost: int = 1) -> None:
        self.waits += cost


def open_sink(emulator: HubSpotEmulator, token: str = TOKEN, gate: CountingGate | None = None) -> HubSpotSink:
    """An opened sink on the emulator."""
    sink = HubSpotSink("hs", HubSpotSinkSettings(type="hubspot", access_token=token, base_url=emulator.url))
    sink.open(gate or CountingGate())
    return sink


def make_plan(event_id: int, **overrides: Any) -> Plan:
    """The default mapping's plan for the sample event, at CALL_TIME."""
    return plan_event(parse_webhook(sample_payload(event_id, **overrides)), MAPPING, sink="hs", call_time=CALL_TIME)


def run(sink: HubSpotSink, plan: Plan, context: ExecutionContext | None = None) -> ExecutionContext:
    """What the engine does, minus journaling and precedence: each action in order, results kept by key."""
    context = context or ExecutionContext()
    for action in plan.actions:
        context.results[action.key] = sink.execute(action, context)
    return context


def calls_of(emulator: HubSpotEmulator, event_id: int) -> list[dict[str, Any]]:
    """The calls the portal holds for one event."""
    return [c for c in emulator.objects("calls") if c["properties"].get("hs_call_external_id") == f"2x-{event_id}"]


def engine_settings(emulator: HubSpotEmulator, tmp_path: Path, mapping: str | None = None) -> Settings:
    """Settings with one `hubspot` sink (`hs`) on the emulator and a SQLite ledger in `tmp_path`."""
    sink = {
        "type": "hubspot",
        "access_token": TOKEN,
        "base_url": emulator.url,
        **({"mapping": mapping} if mapping else {}),
    }
    return parse_settings(
        {
            "receiver": {"auth": {"tokens": ["t" * 32]}},
            "store": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
            "sinks": {"hs": sink},
            "worker": {
                "poll_interval_s": 0.05,
                "auth_probe_s": 1,
                "lease_s": 10,
                "retry": {"schedule_s": [0.2, 0.2, 0.2], "jitter": 0, "quick_retries": 1, "quick_wait_s": 0.01},
            },
        },
        source="t",
        base_dir=Path("."),
        environ={},
    )
