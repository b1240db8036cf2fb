"""What a sink author implements so the contract suite (connector.testing.contract) can run against their sink.

A harness owns one CRM emulator (or test server) on loopback for one test: it says how the sink is configured
against it, makes the CRM misbehave on request, and reads back what the CRM holds. The suite does the rest, so
every sink is held to the same facts the delivery engine relies on.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from connector.config import Settings, parse_settings
from connector.keys import crm_key
from connector.ledger import Ledger
from connector.mapping.loader import LoadedMapping, load_mapping
from connector.mapping.planner import plan_event
from connector.payload import parse_webhook
from connector.plan import CloseCallbacks, Plan
from connector.receiver.ingest import content_hash
from connector.sample import sample_payload
from connector.sinks.base import ActionResult, ExecutionContext, Sink
from connector.sinks.registry import build_sink

CALL_TIME = datetime(2026, 11, 26, 19, 30, tzinfo=UTC)
"""When the contract's calls happened (a Thursday afternoon in the sample's UTC-5)."""
RECEIVER_TOKEN = "contract-receiver-token-" + "x" * 16


class CountingGate:
    """Stands in for the shared rate budget; counts the requests the sink announced."""

    def __init__(self) -> None:
        self.waits = 0

    def wait(self, cost: int = 1) -> None:
        self.waits += cost


class SinkHarness(ABC):
    """One sink against one loopback CRM, with fault hooks and read-back. Subclass it for your sink.

    ``kind`` in :meth:`records` is an action kind: ``resolve_contact`` (contacts), ``create_activity`` (the
    call activities), ``create_task`` (follow-up tasks).
    """

    name: ClassVar[str] = "contract"
    """The sink's name in the configuration (``sinks.<name>``)."""
    optional_field: ClassVar[str]
    """A property the mapping writes on every plan (the contact update or the activity) that the CRM may lose
    (an admin deletes it): the suite drops it with :meth:`drop_field` and expects it skipped or named."""

    def __init__(self) -> None:
        self._opened: list[Sink] = []
        self.gates: list[CountingGate] = []
        """The rate gate handed to each sink :meth:`build_sink` opened, in order."""

    # -- building --------------------------------------------------------------------------------------------

    @abstractmethod
    def sink_config(self) -> dict[str, Any]:
        """The sink's configuration section (``type``, ``mapping``, credentials), aimed at the loopback CRM."""

    def settings(self, store_url: str = "sqlite://") -> Settings:
        """Connector settings with only this sink, as ``connector.yaml`` would give them; a fast worker."""
        document = {
            "receiver": {"auth": {"tokens": [RECEIVER_TOKEN]}},
            "store": {"url": store_url},
            "sinks": {self.name: self.sink_config()},
            "worker": {
                "poll_interval_s": 0.05,
                "auth_probe_s": 1,
                "lease_s": 30,
                "retry": {"schedule_s": [60], "jitter": 0, "quick_retries": 1, "quick_wait_s": 0.01},
            },
        }
        return parse_settings(document, source="<contract>", base_dir=Path("."), environ={})

    def build_sink(self) -> Sink:
        """A new, opened sink (a new process, as far as the sink knows), built through the ``connector.sinks``
        entry points like the worker builds it. Closed by :meth:`close`."""
        sink = build_sink(self.name, self.settings().sinks[self.name])
        self.gates.append(CountingGate())
        sink.open(self.gates[-1])
        self._opened.append(sink)
        return sink

    def mapping(self) -> LoadedMapping:
        return load_mapping(Path(self.sink_config()["mapping"]))

    def plan(self, event_id: int, **overrides: Any) -> Plan:
        """The plan of the vendor sample (``connector.sample``) with ``overrides``, through the sink's mapping."""
        event = parse_webhook(sample_payload(event_id, **overrides))
        return plan_event(event, self.mapping(), sink=self.name, call_time=CALL_TIME)

    def close(self) -> None:
        for sink in self._opened:
            sink.close()
        self._opened.clear()

    # -- faults ----------------------------------------------------------------------------------------------

    @abstractmethod
    def reject_auth(self) -> None:
        """From now on the CRM rejects the sink's credentials (revoked token, expired session)."""

    @abstractmethod
    def rate_limit(self, retry_after_s: float) -> float | None:
        """The CRM answers the next request with its rate limit, asking to wait ``retry_after_s`` where it can say
        so. Returns the wait the sink must report in ``RateLimited.retry_after`` (None: not checked)."""

    @abstractmethod
    def fail_permanently(self) -> str:
        """The CRM refuses the plan's next request, or its next write, as invalid (a validation error). Returns a
        fragment of the CRM's own message, which the PermanentError must carry for the dead-letter reason."""

    @abstractmethod
    def refuse_event(self, event_id: str) -> str:
        """The CRM refuses, as invalid, every write of this one event (its idempotency key, ``2x-<id>``, is in the
        request); the writes of other events must still succeed. Returns a fragment of the CRM's message."""

    @abstractmethod
    def drop_field(self, name: str) -> None:
        """Property ``name`` disappears from the CRM (deleted after set-up)."""

    @abstractmethod
    def crash_after_request(self) -> None:
        """The next write the sink sends to create the call activity is applied by the CRM, but the answer is lost
        (the connection drops): the sink cannot know that it wrote."""

    # -- read-back -------------------------------------------------------------------------------------------

    @abstractmethod
    def records(self, kind: str) -> list[dict[str, Any]]:
        """What the CRM holds for an action kind: ``{"id": <the id the sink reports as crm_id>, "fields": {...}}``
        per record, oldest first; for activities and tasks also ``"contact"`` (the id of the contact the record is
        associated with) when the harness can tell."""

    def count(self, kind: str) -> int:
        return len(self.records(kind))

    def requests_seen(self) -> int | None:
        """How many API requests the CRM has answered so far (each counted once against its rate limit); None
        when the harness cannot tell (the rate-budget scenario is then skipped)."""
        return None

    # -- running ---------------------------------------------------------------------------------------------

    def ingest(self, ledger: Ledger, event_id: int, **overrides: Any) -> str:
        """Store the sample event as the receiver would, with one pending delivery to this sink; its event id."""
        document = sample_payload(event_id, **overrides)
        event = parse_webhook(document)
        ledger.record_event(
            event,
            body=json.dumps(document).encode(),
            content_type="application/json",
            content_hash=content_hash(document),
            sinks=[self.name],
        )
        return event.id


def run_plan(sink: Sink, plan: Plan, context: ExecutionContext | None = None) -> ExecutionContext:
    """Execute a plan as the engine does (connector.engine.single), minus the journal and precedence: the contact
    first; then, for a sink that combines actions, close_callbacks alone and the rest in one ``execute_many``;
    otherwise each action in order. Actions already in ``context`` are not run again (as the journal does).
    Results by action key in the returned context."""
    context = context or ExecutionContext()
    first = plan.actions[0]
    rest = [a for a in plan.actions[1:] if a.key not in context.results]
    if first.key not in context.results:
        context.results[first.key] = sink.execute(first, context)
    contact = context.contact()
    if contact is not None and contact.skipped:
        return context
    execute_many = getattr(sink, "execute_many", None)
    if not (sink.capabilities.combine_actions and execute_many is not None):
        for action in rest:
            context.results[action.key] = sink.execute(action, context)
        return context
    for action in [a for a in rest if isinstance(a, CloseCallbacks)]:
        context.results[action.key] = sink.execute(action, context)
    combined = [a for a in rest if not isinstance(a, CloseCallbacks)]
    results: list[ActionResult] = execute_many(combined, context) if combined else []
    for action, result in zip(combined, results, strict=True):
        context.results[action.key] = result
    return context


def event_marker(event_id: str) -> str:
    """The text every write of an event carries: its idempotency key prefix (``2x-<id>``)."""
    return crm_key(event_id)
