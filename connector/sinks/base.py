"""The sink extension point: what the delivery engine needs from a CRM integration.

A sink turns planned actions into CRM API calls. The engine owns everything else: claiming,
journaling each action, deciding retries, pausing on auth failures, rate budgets, precedence of
contact fields. A sink only has to

1. ``execute`` one action and say what it produced (CRM id),
2. ``lookup`` an action by its idempotency key (the engine calls this when a previous attempt may
   have written it before crashing), and
3. raise the right ``SinkError`` subclass (connector.errors) for each failure.

Sinks register under the ``connector.sinks`` entry-point group, built-ins included, so a
third-party package adds one without touching the core (see docs/sinks.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from connector.plan import Action


class ActionResult(BaseModel):
    """What an action produced in the CRM; journaled, so a retry knows what exists."""

    model_config = ConfigDict(frozen=True)
    crm_id: str | None = None
    object: str | None = None
    created: bool = False
    """True when this action created the record (False: found or updated)."""
    skipped: bool = False
    """Nothing was done, by design (no contact and `if_no_match: skip`, nothing left to write)."""
    detail: dict[str, Any] = Field(default_factory=dict)
    """Small facts for the audit trail (e.g. which fields were written); never personal data."""


@dataclass(frozen=True)
class SinkCapabilities:
    """What the engine should know about a sink, as data rather than branches in the core."""

    requests_per_window: int | None = None
    """The CRM's request budget (None: unlimited), shared by every worker of a store."""
    window_s: float = 10.0
    max_batch: int = 1
    """How many actions of one kind the sink can send in one request (1: no batching)."""
    combine_actions: bool = False
    """The sink has `execute_many(actions, context) -> list[ActionResult]` and wants every action after
    resolve_contact of one plan at once (e.g. one Salesforce Composite request, all or none)."""


class RateGate(Protocol):
    """Handed to a sink: call ``wait()`` before every CRM request to stay inside the shared budget."""

    def wait(self, cost: int = 1) -> None: ...


@dataclass
class ExecutionContext:
    """What earlier actions of the same plan produced (the contact id, mostly)."""

    results: dict[str, ActionResult] = field(default_factory=dict)
    contact_key: str | None = None

    def contact(self) -> ActionResult | None:
        """The result of the plan's resolve_contact action, when it ran."""
        return next((r for k, r in self.results.items() if k.endswith(":contact")), None)


@runtime_checkable
class Sink(Protocol):
    """One CRM (or any other target) that executes plans."""

    capabilities: ClassVar[SinkCapabilities]

    def open(self, gate: RateGate) -> None:
        """Create clients (imports of vendor SDKs belong here, not at module import)."""

    def close(self) -> None:
        """Release clients and connections."""

    def execute(self, action: Action, context: ExecutionContext) -> ActionResult:
        """Do one action; raise TransientError / RateLimited / PermanentError / AuthError on failure.

        `update_contact` actions arrive with only the fields precedence allows; an empty list never
        reaches the sink.
        """

    def lookup(self, action: Action, context: ExecutionContext) -> ActionResult | None:
        """Find what an earlier, interrupted attempt of this action wrote (by its idempotency key)."""

    def check_auth(self) -> None:
        """Raise AuthError unless the credentials work (used to resume a paused sink)."""


SinkFactory = Callable[[str, Any], Sink]
"""``factory(name, settings)``: settings is the sink's validated config section."""
