"""The Salesforce sink: client, errors, contacts, batch, callbacks, fields, settings and set-up."""

from __future__ import annotations

from typing import Any

from connector.sinks.base import Sink, SinkType
from connector.sinks.salesforce.inspection import inspection
from connector.sinks.salesforce.settings import SalesforceSinkSettings


def _build(name: str, settings: Any) -> Sink:
    """The sink module (and simple-salesforce) is imported only when a sink is built, not with every submodule."""
    from connector.sinks.salesforce.sink import factory as build

    return build(name, settings)


factory = SinkType(settings_model=SalesforceSinkSettings, build=_build, inspection=inspection)
"""``connector.sinks.salesforce:factory``, the `salesforce` entry point: its settings model, factory, inspection."""
