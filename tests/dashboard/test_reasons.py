"""Reasons in plain words (the raw message always kept) and links from CRM ids to the CRM."""

from __future__ import annotations

import sys
from datetime import UTC
from pathlib import Path
from types import SimpleNamespace

import pytest

from connector.dashboard.blueprint import ago, duration
from connector.dashboard.links import crm_link
from connector.dashboard.reasons import delivery_reason, pause_reason, quarantine_reason
from connector.sinks.hubspot.links import HUBSPOT_APP


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"error_kind": "AuthError", "message": "401 expired"},
            "The CRM rejected the credentials; the sink is paused until they work again",
        ),
        (
            {
                "error_kind": "PermanentError",
                "crm_code": "PROPERTY_DOESNT_EXIST",
                "message": 'Property values were not valid: [{"message":"Property \\"plan_tier\\" does not exist"}]',
            },
            "HubSpot has no property “plan_tier”",
        ),
        (
            {
                "error_kind": "PermanentError",
                "crm_code": "INVALID_FIELD",
                "message": "No such column 'Budget__c' on sobject of type Task",
            },
            "Salesforce has no writable field “Budget__c”",
        ),
        (
            {"error_kind": "mapping_error", "message": "hubspot.yaml line 40: 'meta' has no attribute 'campaign'"},
            "The mapping could not be applied: hubspot.yaml line 40: 'meta' has no attribute 'campaign'",
        ),
        (
            {"error_kind": "TransientError", "message": "gave up after 12 attempts: 503 Service Unavailable"},
            "for 12 attempts over the whole retry schedule",
        ),
        (
            {"error_kind": "PermanentError", "status_code": 400, "message": "Property reject_me does not exist"},
            "The CRM refused the data as invalid",
        ),
        (
            {"error_kind": "PermanentError", "crm_code": "AMBIGUOUS_CONTACT", "message": "several"},
            "Several CRM contacts share this phone number",
        ),
        ({"error_kind": "RateLimited", "message": "429"}, "rate limit"),
        ({"status": "held", "error_kind": "hold", "message": "two contacts"}, "human review (two contacts)"),
        ({"status": "dead", "message": "odd"}, "Delivery stopped"),
    ],
)
def test_delivery_reasons_in_plain_words(kwargs: dict[str, object], expected: str) -> None:
    reason = delivery_reason(status=kwargs.pop("status", "dead"), **kwargs)  # type: ignore[arg-type]
    assert expected in reason.plain
    assert reason.raw == kwargs["message"]


def test_pause_and_quarantine_reasons() -> None:
    assert "rejected the credentials" in pause_reason("credentials rejected: bad token").plain
    assert pause_reason("maintenance").plain == "The sink is paused: maintenance"
    assert "not valid JSON" in quarantine_reason("invalid_json", "Expecting ','").plain
    assert quarantine_reason("invalid_json", "Expecting ','").raw == "Expecting ','"
    assert "different body under an id" in quarantine_reason("id_conflict", "x").plain
    assert quarantine_reason("brand_new_code", "d").plain == "Refused (brand_new_code)."


def test_crm_links() -> None:
    emulator = SimpleNamespace(type="hubspot", base_url="http://127.0.0.1:8701/")
    link = crm_link(emulator, "create_activity", "1014", "calls")
    assert link.href == "http://127.0.0.1:8701/crm/v3/objects/calls/1014" and link.text == "1014"
    assert crm_link(emulator, "resolve_contact", "7", None).href == "http://127.0.0.1:8701/crm/v3/objects/contacts/7"
    assert crm_link(emulator, "create_task", "9", "0-27").href.endswith("/objects/tasks/9")
    real = crm_link(SimpleNamespace(type="hubspot", base_url="https://api.hubapi.com"), "create_activity", "1", None)
    assert real.href == HUBSPOT_APP and real.text == "1" and "portal" in real.title
    salesforce = SimpleNamespace(type="salesforce", instance_url="https://acme.my.salesforce.com")
    assert crm_link(salesforce, "create_task", "00T8d002", "Task").href == "https://acme.my.salesforce.com/00T8d002"
    assert crm_link(SimpleNamespace(type="http"), "create_task", "x-1", None).href is None
    assert crm_link(None, "create_task", "x-1", None).href is None


PLUGIN_WITH_LINKS = """
from connector.sinks.base import RecordLink, SinkType
from connector.sinks.http import HttpSink, HttpSinkSettings


def link(settings, kind, crm_id, object_name):
    return RecordLink(crm_id, f"{settings.url}/records/{crm_id}", f"{kind} {crm_id} at Acme")


factory = SinkType(settings_model=HttpSinkSettings, build=HttpSink, record_link=link)
"""


def test_a_third_party_sink_type_brings_its_own_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard has no list of CRMs: it asks the sink type (its entry point's ``record_link``)."""
    (tmp_path / "acme_links.py").write_text(PLUGIN_WITH_LINKS)
    info = tmp_path / "acme_links-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-links\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[connector.sinks]\nacme-links = acme_links:factory\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        link = crm_link(SimpleNamespace(type="acme-links", url="https://acme.example"), "create_task", "42", None)
    finally:
        sys.modules.pop("acme_links", None)
    assert (link.text, link.href, link.title) == ("42", "https://acme.example/records/42", "create_task 42 at Acme")


def test_time_helpers() -> None:
    from datetime import datetime, timedelta

    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert ago(now - timedelta(seconds=42), now) == "42 s ago"
    assert ago(now + timedelta(minutes=3, seconds=5), now) == "in 3 min 5 s"
    assert ago(None) == "—"
    assert duration(2 * 3600 + 300) == "2 h 5 min" and duration(3 * 86400 + 4 * 3600) == "3 d 4 h"
