"""The Salesforce sink (design and operations: docs/salesforce.md).

sink (the engine-facing object) builds ``collaborators.Collaborators`` once and hands it to batch, resolve and
callbacks, which never import the sink; composite (one event in one Composite request), records (record bodies),
stale (deleted contacts), client (simple-salesforce session), errors (Salesforce answer → error class), contacts,
fields (describe), settings, inspection (validate/crm-setup checks), setup, setup_apply and setup_api.
"""

from __future__ import annotations

from typing import Any

from connector.sinks.base import Sink, SinkType
from connector.sinks.salesforce.inspection import inspection
from connector.sinks.salesforce.links import record_link
from connector.sinks.salesforce.settings import SalesforceSinkSettings


def _build(name: str, settings: Any) -> Sink:
    """The sink module (and simple-salesforce) is imported only when a sink is built, not with every submodule."""
    from connector.sinks.salesforce.sink import factory as build

    return build(name, settings)


factory = SinkType(settings_model=SalesforceSinkSettings, build=_build, inspection=inspection, record_link=record_link)
"""``connector.sinks.salesforce:factory``, the `salesforce` entry point: its settings model, factory, inspection."""
