"""The sink extension point: what the delivery engine needs from a CRM integration.

A sink turns planned actions into CRM API calls. The engine owns everything else: claiming,
journaling each action, deciding retries, pausing on auth failures, rate budgets, precedence of
contact fields. A sink only has to

1. ``execute`` one action and say what it produced (CRM id),
2. ``lookup`` an action by its idempotency key (the engine calls this when a previous attempt may
   have written it before crashing), and
3. raise the right ``SinkError`` subclass (connector.errors) for each failure.

Everything else a sink may do is an optional ability, declared as a runtime-checkable Protocol below
(``BatchExecution``, ``CombinedExecution``, ``BulkContactResolution``, ``DoNotCallGuard``,
``BulkDoNotCallGuard``, ``WriteSettling``; ``SchemaInspection`` on the sink type). The registry checks them
once, when it builds the sink (``SinkAbilities.of``), and the engine asks the computed abilities, never the
sink's attributes.

Sinks register under the ``connector.sinks`` entry-point group, built-ins included, so a
third-party package adds one without touching the core (see docs/sinks.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from connector.errors import SinkError
from connector.plan import Action, DoNotCallGuarded, ResolveContact

if TYPE_CHECKING:
    from connector.mapping.loader import LoadedMapping
    from connector.sinks.setup import Finding, SetupReport


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
    rate_limited_wait_s: float = 10.0
    """How long the sink waits after a rate limit that came without a Retry-After (a common window length)."""


class RateGate(Protocol):
    """Handed to a sink: call ``wait()`` before every CRM request to stay inside the shared budget."""

    def wait(self, cost: int = 1) -> None: ...


@dataclass
class ExecutionContext:
    """What earlier actions of the same plan produced (the contact id, mostly)."""

    results: dict[str, ActionResult] = field(default_factory=dict)
    contact_key: str | None = None
    do_not_call: dict[str, str | None] = field(default_factory=dict)
    """What the CRM said of the contact's do-not-call (the property that is set, or None), by contact: read once
    for a callback outcome's contact fields and its task."""
    withheld: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The engine's note of the callback fields it left out of an update (by action key), for the journal."""

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


# -- optional abilities -------------------------------------------------------------------------------
# What the engine uses when a sink has it; without it the engine takes the single path (one action per call).


@runtime_checkable
class BatchExecution(Protocol):
    """One request for many actions of one kind (HubSpot batch APIs, Salesforce sObject Collections).

    Used by the batch runner under a backlog, for each stage after resolve_contact, in chunks of
    ``capabilities.max_batch``; required when ``max_batch > 1``. One result per item, in order: an
    ActionResult, or the SinkError that failed that item alone; raising fails the whole chunk.
    """

    def execute_batch(self, items: list[tuple[Action, ExecutionContext]]) -> Sequence[ActionResult | SinkError]: ...


@runtime_checkable
class CombinedExecution(Protocol):
    """Every action of one plan after resolve_contact in one request, all or none (a Salesforce Composite call).

    Used by the single path for each delivery when ``capabilities.combine_actions`` is set (required then);
    one ActionResult per action, in order; raising fails them all.
    """

    def execute_many(self, actions: list[Action], context: ExecutionContext) -> Sequence[ActionResult]: ...


@runtime_checkable
class BulkContactResolution(Protocol):
    """Find or create the contacts of many plans at once (one search per 100 numbers, one batch create).

    Used by the batch runner for the resolve_contact stage; without it contacts are resolved one delivery at a
    time. One ActionResult or SinkError per action, in order.
    """

    def resolve_many(self, actions: list[ResolveContact]) -> Sequence[ActionResult | SinkError]: ...


@runtime_checkable
class DoNotCallGuard(Protocol):
    """Read the CRM's do-not-call flags of a callback's contact, right before its first guarded write.

    Used by both paths for a `create_task` (or the `update_contact` of a callback outcome) with
    ``unless_do_not_call`` the ledger does not already settle; reads ``action.unless_do_not_call`` of
    ``context.contact()`` and returns the property that is set (the task is skipped, the callback's contact fields
    are left out), or None. Without it only the connector's own writes guard callbacks.
    """

    def do_not_call_set(self, action: DoNotCallGuarded, context: ExecutionContext) -> str | None: ...


@runtime_checkable
class BulkDoNotCallGuard(Protocol):
    """``do_not_call_set`` for a whole batch stage in one read; one answer per item, in order.

    Used by the batch runner before its update_contact and create_task stages; a SinkError makes it read them one
    by one instead.
    """

    def do_not_call_many(self, items: list[tuple[DoNotCallGuarded, ExecutionContext]]) -> Sequence[str | None]: ...


@runtime_checkable
class WriteSettling(Protocol):
    """Treat these resolve actions as unconfirmed creates (the sink waits for its search index, or asks again).

    Used by the batch runner when another process left a resolve in flight (it died): the contact may exist
    without the CRM's search showing it yet, and must not be created twice.
    """

    def unsettle(self, keys: list[str]) -> None: ...


@runtime_checkable
class SchemaInspection(Protocol):
    """A sink TYPE's schema check and set-up (``inspection`` on what its entry point names), for `connector
    validate` (credential and schema findings) and `connector crm-setup` (creating the connector's own fields).
    Works from the validated settings; never needs an opened sink. Without it both commands skip the type."""

    def schema_findings(self, name: str, settings: Any, mapping: LoadedMapping) -> list[Finding]: ...

    def run_setup(
        self,
        name: str,
        settings: Any,
        mapping: LoadedMapping,
        questions: list[str],
        *,
        dry_run: bool,
        out: Any = None,
    ) -> SetupReport: ...

    def credential_findings(self, name: str, settings: Any) -> list[tuple[str, str]]:
        """(level, message) pairs about the configured credentials, checked offline by `validate`."""
        ...


class SinkDeclarationError(ValueError):
    """A sink declares a capability without the ability it needs (refused when the sink is built)."""


@dataclass(frozen=True)
class SinkAbilities:
    """The optional abilities of one built sink, checked once: each field is the sink itself, typed as that
    Protocol, or None when it lacks it."""

    batch: BatchExecution | None = None
    combined: CombinedExecution | None = None
    resolve_many: BulkContactResolution | None = None
    do_not_call: DoNotCallGuard | None = None
    do_not_call_many: BulkDoNotCallGuard | None = None
    settling: WriteSettling | None = None

    @classmethod
    def of(cls, sink: Sink) -> SinkAbilities:
        """What `sink` implements; SinkDeclarationError when its capabilities promise an ability it lacks."""
        abilities = cls(
            batch=sink if isinstance(sink, BatchExecution) else None,
            combined=sink if isinstance(sink, CombinedExecution) else None,
            resolve_many=sink if isinstance(sink, BulkContactResolution) else None,
            do_not_call=sink if isinstance(sink, DoNotCallGuard) else None,
            do_not_call_many=sink if isinstance(sink, BulkDoNotCallGuard) else None,
            settling=sink if isinstance(sink, WriteSettling) else None,
        )
        declared = sink.capabilities
        if declared.max_batch > 1 and abilities.batch is None:
            raise SinkDeclarationError(
                f"{type(sink).__name__} declares max_batch={declared.max_batch} but has no "
                "execute_batch(items) (BatchExecution); declare max_batch=1 or implement it"
            )
        if declared.combine_actions and abilities.combined is None:
            raise SinkDeclarationError(
                f"{type(sink).__name__} declares combine_actions but has no execute_many(actions, context) "
                "(CombinedExecution); drop combine_actions or implement it"
            )
        return abilities

    def names(self) -> list[str]:
        """The abilities present, by field name (for docs, logs and tests)."""
        return [name for name in self.__dataclass_fields__ if getattr(self, name) is not None]


@dataclass(frozen=True)
class RecordLink:
    """A CRM id as the dashboard shows it: its text, where it leads (None: no page to link to), and a title."""

    text: str
    href: str | None
    title: str


RecordLinker = Callable[[Any, str, str, "str | None"], RecordLink]
"""``(sink settings, action kind, crm id, journaled object name) -> RecordLink``: a sink type's links to its CRM."""


@dataclass(frozen=True)
class SinkType:
    """What a `connector.sinks` entry point may name: the sink's settings model (``connector.config`` validates
    its section with it), the factory, and optionally its schema inspection. A plain factory function works too
    (its section is then checked for the common keys only, unless it has a ``settings_model`` attribute)."""

    settings_model: type[BaseModel]
    build: SinkFactory
    inspection: SchemaInspection | None = None
    record_link: RecordLinker | None = None
    """Where a record this sink wrote can be opened (the dashboard's audit trail); None: ids are shown as text."""

    def __call__(self, name: str, settings: Any) -> Sink:
        return self.build(name, settings)
