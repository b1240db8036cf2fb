"""Links from the ids the HubSpot sink wrote to the records: the emulator's API, or the portal."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from connector.loopback import is_loopback_url
from connector.sinks.base import RecordLink

HUBSPOT_APP = "https://app.hubspot.com/contacts/"
"""The portal id is not in the config, so a real HubSpot record can only be reached from the portal."""

_OBJECT_BY_KIND = {
    "resolve_contact": "contacts",
    "update_contact": "contacts",
    "create_activity": "calls",
    "create_task": "tasks",
}
_OBJECT_BY_NAME = {
    "contact": "contacts",
    "contacts": "contacts",
    "0-1": "contacts",
    "call": "calls",
    "calls": "calls",
    "0-48": "calls",
    "task": "tasks",
    "tasks": "tasks",
    "0-27": "tasks",
}


def record_link(settings: Any, kind: str, crm_id: str, object_name: str | None) -> RecordLink:
    """The emulator's API URL of the record on loopback; otherwise the portal, where the id can be searched."""
    hubspot_object = object_path(object_name, kind)
    base = str(getattr(settings, "base_url", "") or "").rstrip("/")
    if base and is_loopback_url(base):
        return RecordLink(
            crm_id,
            f"{base}/crm/v3/objects/{quote(hubspot_object)}/{quote(crm_id, safe='')}",
            f"{hubspot_object} {crm_id} in the HubSpot emulator (API; needs the emulator token)",
        )
    return RecordLink(
        crm_id, HUBSPOT_APP, f"HubSpot {hubspot_object} {crm_id}: open your portal and search for this id"
    )


def object_path(object_name: str | None, kind: str) -> str:
    """HubSpot's API path segment (contacts, calls, tasks) for a journaled object name or action kind."""
    if object_name:
        lowered = object_name.lower()
        return _OBJECT_BY_NAME.get(lowered, lowered)
    return _OBJECT_BY_KIND.get(kind, "contacts")
