"""The HubSpot sink (design: docs/hubspot.md).

sink (the engine-facing object) builds ``parts.SinkParts`` once and hands it to batch, resolve and callbacks,
which never import the sink; client (hubspot-api-client calls), errors (HubSpot answer → error class), contacts,
associations, schema (property types), settings, inspection (validate/crm-setup checks), setup and setup_api.
"""

from __future__ import annotations

from typing import Any

from connector.sinks.base import Sink, SinkType
from connector.sinks.hubspot.inspection import inspection
from connector.sinks.hubspot.links import record_link
from connector.sinks.hubspot.settings import HubSpotSinkSettings


def _build(name: str, settings: Any) -> Sink:
    """The sink module (and the HubSpot SDK) is imported only when a sink is built, not with every submodule."""
    from connector.sinks.hubspot.sink import factory as build

    return build(name, settings)


factory = SinkType(settings_model=HubSpotSinkSettings, build=_build, inspection=inspection, record_link=record_link)
"""``connector.sinks.hubspot:factory``, the `hubspot` entry point: its settings model, factory and inspection."""
