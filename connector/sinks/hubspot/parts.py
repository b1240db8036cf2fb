"""What the batch and backlog-resolve code may use of an open HubSpot sink: narrow collaborators, never the sink.

Why: the sink hands work to ``hubspot.batch`` and ``hubspot.resolve``, and those need the API client, the contact
cache, the property schema, the uncertain-writes tracker and a way to send one action on the single path. Passing
these (built once in ``HubSpotSink.open``) instead of the sink keeps control flowing one way and the package free of
import cycles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from connector.plan import Action
from connector.sinks.base import ActionResult, ExecutionContext
from connector.sinks.drift import DriftPolicy
from connector.sinks.hubspot.client import HubSpotApi
from connector.sinks.hubspot.contacts import ContactCache
from connector.sinks.hubspot.schema import PropertySchema
from connector.sinks.uncertain import UncertainWrites

QUESTION_PREFIX = "twox_q_"
"""The connector's own namespace of script-question properties: the only missing properties it creates."""


@dataclass(frozen=True)
class SinkParts:
    """An open sink's collaborators, for the code that batches its work."""

    name: str
    """The sink's name, for logs."""
    api: HubSpotApi
    cache: ContactCache
    """Read-your-writes contact ids of this sink instance (``hubspot.contacts``)."""
    schema: PropertySchema
    uncertain: UncertainWrites
    """Keys of writes whose outcome is unknown: they take the single, looked-up path."""
    drift: DriftPolicy
    auto_create_questions: bool
    """``auto_create_question_properties``: a missing ``twox_q_*`` property is created on the single path."""
    execute_one: Callable[[Action, ExecutionContext], ActionResult]
    """The sink's single path for one action (looks an uncertain write up before sending it)."""
