"""Links from the ids the Salesforce sink wrote to the records: ``{instance_url}/{id}`` opens any record."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from connector.loopback import is_loopback_url
from connector.sinks.base import RecordLink


def record_link(settings: Any, kind: str, crm_id: str, object_name: str | None) -> RecordLink:
    """The record's page on the configured instance (the emulator's on loopback); no link without an instance."""
    base = str(getattr(settings, "instance_url", "") or "").rstrip("/")
    where = "the Salesforce emulator" if base and is_loopback_url(base) else "Salesforce"
    href = f"{base}/{quote(crm_id, safe='')}" if base else None
    return RecordLink(crm_id, href, f"{object_name or 'record'} {crm_id} in {where}")
