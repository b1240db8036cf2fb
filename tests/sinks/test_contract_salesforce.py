"""The sink contract (connector.testing.contract) against the Salesforce sink: the real simple-salesforce over
loopback HTTPS against the Salesforce emulator, with lost answers and refused events injected in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.default_mappings import default_mapping_path
from connector.emulators.salesforce.server import SalesforceEmulator
from connector.testing.contract import SinkContract
from connector.testing.harness import SinkHarness, event_marker
from connector.testing.wsgi_faults import FaultInjector, install, writes_to

DAILY_LIMIT_WAIT_S = 900.0
"""What the sink waits after REQUEST_LIMIT_EXCEEDED TotalRequests (Salesforce sends no Retry-After)."""


class SalesforceHarness(SinkHarness):
    optional_field = "TwoX_Last_Call_Outcome__c"

    def __init__(self, emulator: SalesforceEmulator) -> None:
        super().__init__()
        self.emulator = emulator
        # The emulator's werkzeug server reads its app per request: the fault middleware goes in front of it.
        self.faults: FaultInjector = install(emulator._server)

    def sink_config(self) -> dict[str, Any]:
        return {
            "type": "salesforce",
            "instance_url": self.emulator.instance_url,
            "ca_bundle": self.emulator.ca_file,
            "auth": {"session_id": self.emulator.session_id},
            "mapping": str(default_mapping_path("salesforce")),
        }

    def reject_auth(self) -> None:
        self.emulator.expire_sessions()

    def rate_limit(self, retry_after_s: float) -> float | None:
        self.emulator.fail_next(
            1, status=403, error_code="REQUEST_LIMIT_EXCEEDED", message="TotalRequests Limit exceeded."
        )
        return DAILY_LIMIT_WAIT_S

    def fail_permanently(self) -> str:
        message = "Calls need a campaign: refused by a validation rule"
        body = [{"errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": message, "fields": []}]
        self.faults.refuse('"CallObject"', 400, body)  # a validation rule on Task: the write of the call
        return message

    def refuse_event(self, event_id: str) -> str:
        message = "This call is refused by a validation rule"
        body = [{"errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": message, "fields": []}]
        self.faults.refuse(event_marker(event_id), 400, body)
        return message

    def drop_field(self, name: str) -> None:
        for sobject in ("Contact", "Lead"):
            self.emulator.delete_field(sobject, name)

    def crash_after_request(self) -> None:
        # The Composite request that creates the Task (a Composite of describes before it is not a write).
        self.faults.drop_answers(
            writes_to("/composite", "/composite/sobjects", "/sobjects/Task", containing="CallObject")
        )

    def requests_seen(self) -> int | None:
        return len(self.emulator.request_log)

    def records(self, kind: str) -> list[dict[str, Any]]:
        if kind == "resolve_contact":
            found = self.emulator.records("Contact") + self.emulator.records("Lead")
        else:
            follow_up = kind == "create_task"
            found = [
                r
                for r in self.emulator.records("Task")
                if r.get("CallObject") and (":task:" in r["CallObject"]) == follow_up
            ]
        return [{"id": r["Id"], "fields": r, "contact": r.get("WhoId")} for r in found]


class TestSalesforceSinkContract(SinkContract):
    @pytest.fixture
    def harness(self) -> Iterator[SalesforceHarness]:
        with SalesforceEmulator() as emulator:
            harness = SalesforceHarness(emulator)
            yield harness
            harness.close()

    def test_one_refused_event_fails_alone_through_the_engine(self, harness: SinkHarness, tmp_path: Path) -> None:
        """The contract's scenario, and proof that it ran Salesforce's batch path: the refused sObject Collections
        create carried the bad event among the others, and the sink then sent the others on their own."""
        super().test_one_refused_event_fails_alone_through_the_engine(harness, tmp_path)
        assert isinstance(harness, SalesforceHarness)
        assert harness.faults.refused[0] == "POST /services/data/v62.0/composite/sobjects", harness.faults.refused
