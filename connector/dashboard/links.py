"""Links from CRM ids in the audit trail to the record in the CRM (or in the sandbox's emulator)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from connector.dashboard.security import is_loopback

HUBSPOT_APP = "https://app.hubspot.com/contacts/"
"""The portal id is not in the config, so a real HubSpot record can only be reached from the portal."""

_HUBSPOT_OBJECT_BY_KIND = {
    "resolve_contact": "contacts",
    "update_contact": "contacts",
    "create_activity": "calls",
    "create_task": "tasks",
}


@dataclass(frozen=True)
class CrmLink:
    """A CRM id as shown: its text, and where it leads (None: no page we can link to)."""

    text: str
    href: str | None
    title: str


def _loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname
    return host == "localhost" or is_loopback(host)


def crm_link(sink: Any, kind: str, crm_id: str, object_name: str | None = None) -> CrmLink:
    """The link for one CRM id written by `kind` through the sink configured as `sink` (or None)."""
    sink_type = getattr(sink, "type", None)
    if sink_type == "hubspot":
        hubspot_object = _hubspot_object(object_name, kind)
        base = str(getattr(sink, "base_url", "")).rstrip("/")
        if base and _loopback_url(base):
            return CrmLink(
                crm_id,
                f"{base}/crm/v3/objects/{quote(hubspot_object)}/{quote(crm_id, safe='')}",
                f"{hubspot_object} {crm_id} in the HubSpot emulator (API; needs the emulator token)",
            )
        return CrmLink(
            crm_id, HUBSPOT_APP, f"HubSpot {hubspot_object} {crm_id}: open your portal and search for this id"
        )
    if sink_type == "salesforce":
        base = str(getattr(sink, "instance_url", "")).rstrip("/")
        where = "the Salesforce emulator" if base and _loopback_url(base) else "Salesforce"
        href = f"{base}/{quote(crm_id, safe='')}" if base else None
        return CrmLink(crm_id, href, f"{object_name or 'record'} {crm_id} in {where}")
    return CrmLink(crm_id, None, f"{object_name or kind} {crm_id}")


def _hubspot_object(object_name: str | None, kind: str) -> str:
    """HubSpot's API path segment (contacts, calls, tasks) for a journaled object name or action kind."""
    if object_name:
        lowered = object_name.lower()
        if lowered in ("contact", "contacts", "0-1"):
            return "contacts"
        if lowered in ("call", "calls", "0-48"):
            return "calls"
        if lowered in ("task", "tasks", "0-27"):
            return "tasks"
        return lowered
    return _HUBSPOT_OBJECT_BY_KIND.get(kind, "contacts")
