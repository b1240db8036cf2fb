"""Links from CRM ids in the audit trail to the record in the CRM (or in the sandbox's emulator).

Each sink type knows its CRM's URLs (``SinkType.record_link``); the dashboard only asks the registry, so a
third-party sink gets links by declaring one, and a sink that declares none shows its ids as text.
"""

from __future__ import annotations

from typing import Any

from connector.sinks.base import RecordLink
from connector.sinks.registry import record_linker

CrmLink = RecordLink
"""The dashboard's name for a link (text, href, title)."""


def crm_link(sink: Any, kind: str, crm_id: str, object_name: str | None = None) -> CrmLink:
    """The link for one CRM id written by `kind` through the sink configured as `sink` (or None)."""
    sink_type = getattr(sink, "type", None)
    linker = record_linker(sink_type) if isinstance(sink_type, str) else None
    if linker is not None:
        return linker(sink, kind, crm_id, object_name)
    return CrmLink(crm_id, None, f"{object_name or kind} {crm_id}")
