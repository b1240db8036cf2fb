"""The sink contract (connector.testing.contract) against the HubSpot sink: the real hubspot-api-client over
loopback HTTP against the HubSpot emulator, with lost answers and refused events injected in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hubspot
import pytest
from hubspot.crm.properties import PropertyCreate

from connector.default_mappings import default_mapping_path
from connector.emulators.hubspot import errors as hubspot_errors
from connector.emulators.hubspot.server import HubSpotEmulator
from connector.testing.contract import SinkContract
from connector.testing.harness import SinkHarness, event_marker
from connector.testing.wsgi_faults import FaultInjector, install, writes_to

TOKEN = "hubspot-contract-token"
KINDS = {"resolve_contact": "contacts", "create_activity": "calls", "create_task": "tasks"}


class HubSpotHarness(SinkHarness):
    optional_field = "twox_last_call_outcome"

    def __init__(self, emulator: HubSpotEmulator) -> None:
        super().__init__()
        self.emulator = emulator
        self.client = hubspot.Client.create(access_token=TOKEN, host=emulator.url)
        # The emulator's werkzeug server reads its app per request: the fault middleware goes in front of it.
        self.faults: FaultInjector = install(emulator._server)

    def sink_config(self) -> dict[str, Any]:
        return {
            "type": "hubspot",
            "access_token": TOKEN,
            "base_url": self.emulator.url,
            "mapping": str(default_mapping_path("hubspot")),
        }

    def reject_auth(self) -> None:
        self.emulator.set_tokens(["another-portal-token"])

    def rate_limit(self, retry_after_s: float) -> float | None:
        self.emulator.fail_next(1, status=429, retry_after=retry_after_s)
        return retry_after_s

    def fail_permanently(self) -> str:
        self.emulator.fail_next(1, status=400)
        return "Injected failure with status 400."

    def refuse_event(self, event_id: str) -> str:
        message = "Property values were not valid: refused by the contract"
        self.faults.refuse(event_marker(event_id), 400, hubspot_errors.validation(message).body)
        return message

    def drop_field(self, name: str) -> None:
        self.client.crm.properties.core_api.archive("contacts", name)

    def crash_after_request(self) -> None:
        self.faults.drop_answers(writes_to("/crm/v3/objects/calls", "/crm/v3/objects/calls/batch/create"))

    def requests_seen(self) -> int | None:
        return len(self.emulator.request_log)

    def records(self, kind: str) -> list[dict[str, Any]]:
        return [
            {
                "id": r["id"],
                "fields": r["properties"],
                "contact": (r.get("associations", {}).get("contacts") or [None])[0],
            }
            for r in self.emulator.objects(KINDS[kind])
        ]


class TestHubSpotSinkContract(SinkContract):
    @pytest.fixture
    def harness(self) -> Iterator[HubSpotHarness]:
        with HubSpotEmulator(
            tokens=[TOKEN], rate_limit=10_000, search_rate_per_s=None, seed_custom_properties=True
        ) as emulator:
            client = hubspot.Client.create(access_token=TOKEN, host=emulator.url)
            client.crm.properties.core_api.create(  # the sample's question (case_number)
                "contacts",
                PropertyCreate(
                    name="twox_q_case_number", label="case number", type="string", field_type="text", group_name="twox"
                ),
            )
            harness = HubSpotHarness(emulator)
            yield harness
            harness.close()

    def test_one_refused_event_fails_alone_through_the_engine(self, harness: SinkHarness, tmp_path: Path) -> None:
        """The contract's scenario, and proof that it ran HubSpot's batch path: the refused batch create of calls
        carried the bad event among the others, and the sink then sent the others on their own."""
        super().test_one_refused_event_fails_alone_through_the_engine(harness, tmp_path)
        assert isinstance(harness, HubSpotHarness)
        assert harness.faults.refused[0] == "POST /crm/v3/objects/calls/batch/create", harness.faults.refused
