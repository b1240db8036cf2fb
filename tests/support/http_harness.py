"""The harness of the built-in `http` sink against connector.testing.endpoint.ActionEndpoint: the contract suite's worked
example (docs/sinks.md, "Contract tests", shows this class verbatim), also the base of the docs' plugin example's
harness, which speaks the same endpoint protocol."""

from __future__ import annotations

from typing import Any

from connector.default_mappings import default_mapping_path
from connector.testing.endpoint import ActionEndpoint
from connector.testing.harness import SinkHarness, event_marker
from connector.testing.wsgi_faults import writes_to


class HttpHarness(SinkHarness):
    optional_field = "twox_last_call_outcome"  # written by the default HubSpot mapping's contact update

    def __init__(self, endpoint: ActionEndpoint) -> None:
        super().__init__()
        self.endpoint = endpoint

    def sink_config(self) -> dict[str, Any]:
        return {
            "type": "http",
            "url": self.endpoint.url,
            "headers": {"Authorization": f"Bearer {self.endpoint.token}"},
            "mapping": str(default_mapping_path("hubspot")),
        }

    def reject_auth(self) -> None:
        self.endpoint.token = "rotated-token"

    def rate_limit(self, retry_after_s: float) -> float | None:
        self.endpoint.fail_next(429, "rate limit reached", retry_after=retry_after_s)
        return retry_after_s

    def fail_permanently(self) -> str:
        self.endpoint.fail_next(422, "owner_id must be a number")
        return "owner_id must be a number"

    def refuse_event(self, event_id: str) -> str:
        assert self.endpoint.faults is not None
        self.endpoint.faults.refuse(event_marker(event_id), 422, {"message": "event refused by the endpoint"})
        return "event refused by the endpoint"

    def drop_field(self, name: str) -> None:
        self.endpoint.drop_field(name)

    def crash_after_request(self) -> None:
        assert self.endpoint.faults is not None
        self.endpoint.faults.drop_answers(writes_to("/actions"))

    def requests_seen(self) -> int | None:
        assert self.endpoint.faults is not None
        return self.endpoint.faults.seen

    def records(self, kind: str) -> list[dict[str, Any]]:
        return [
            {"id": r["id"], "fields": r["action"].get("properties", {}), "contact": r["contact"]}
            for r in self.endpoint.records
            if r["kind"] == kind
        ]
