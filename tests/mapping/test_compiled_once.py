"""Templates are compiled once per loaded mapping and only rendered per event: planning a backlog compiles nothing
(the batch runner plans a hundred events per claim with the mapping it loaded at start or last reload)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from jinja2 import Environment

from connector.default_mappings import default_mapping_path
from connector.mapping.loader import load_mapping
from connector.mapping.planner import plan_event
from connector.payload import parse_webhook
from connector.sample import sample_payload


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_planning_many_events_compiles_no_template(crm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mapping = load_mapping(default_mapping_path(crm))
    compiled: list[str] = []
    real = Environment.compile

    def counting(self: Environment, source: Any, *args: Any, **kwargs: Any) -> Any:
        compiled.append(str(source)[:40])
        return real(self, source, *args, **kwargs)

    monkeypatch.setattr(Environment, "compile", counting)
    reasons = ["hung_up", "no_answer", "call_transferred", "schedule_call_back", "do_not_call"]
    plans = [
        plan_event(
            parse_webhook(
                sample_payload(900 + i, end_reason=reasons[i % len(reasons)], record_phone_number=f"+1202555{i:04d}")
            ),
            mapping,
            sink="crm",
            call_time=datetime(2026, 1, 5, 15, tzinfo=UTC),
        )
        for i in range(50)
    ]
    assert len(plans) == 50 and all(p.actions for p in plans)
    assert compiled == []
    load_mapping(default_mapping_path(crm))  # the counter does see compilation: loading compiles every template
    assert compiled
