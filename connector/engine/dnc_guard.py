"""Do-not-call closes the door on callbacks: a follow-up task is never created for a do-not-call contact.

Both engine paths (connector.engine.single, connector.engine.batch) ask `blocked_task` right before a guarded
`create_task` would be sent. Two sources, cheapest first:

1. the ledger's precedence bookkeeping: a do-not-call the connector itself wrote to this contact (sticky,
   so its last written value is true once set) — no CRM request;
2. the CRM, read by the sink right before the write (the optional `DoNotCallGuard`): a do-not-call set
   by a rep, another tool, or an older connector release. A callback is the rare outcome, so one extra
   read per callback task is cheap (measured in tests/test_callbacks_dnc.py). Under a backlog the batch
   runner reads them all at once first (`prefetch`, the optional `BulkDoNotCallGuard`): one request
   per stage instead of one per callback.

The other half — a later do-not-call closing the tasks created before it — is the `close_callbacks`
action the planner adds to do-not-call plans.
"""

from __future__ import annotations

from collections.abc import Callable

from connector.errors import SinkError
from connector.ledger import Ledger
from connector.plan import CreateTask
from connector.precedence import WrittenField
from connector.sinks.base import ActionResult, BulkDoNotCallGuard, DoNotCallGuard, ExecutionContext

SKIP_REASON = "do_not_call"

WrittenReader = Callable[[str, str, list[str]], dict[str, WrittenField]]
"""(sink, contact ref, properties) → what the connector wrote there; the batch runner passes one that answers from
what it read for the whole stage at once."""


def blocked_task(
    ledger: Ledger,
    sink_name: str,
    guard: DoNotCallGuard | None,
    action: CreateTask,
    context: ExecutionContext,
    known: dict[str, str | None] | None = None,
    written: WrittenReader | None = None,
) -> ActionResult | None:
    """The skipped result when this task must not be created because the contact is do-not-call; else None.

    ``known``: CRM answers already read for these action keys (``prefetch``); others are read now through
    ``guard`` (the sink's ``SinkAbilities.do_not_call``; None: only the connector's own writes count).
    """
    if not _guarded(action, context):
        return None
    by_connector = _written_by_connector(written or ledger.sinks.written, sink_name, action, context)
    if by_connector is not None:
        return _skipped(by_connector, "connector")
    if known is not None and action.key in known:
        prop = known[action.key]
    else:
        prop = guard.do_not_call_set(action, context) if guard is not None else None
    return _skipped(prop, "crm") if prop else None


def prefetch(
    ledger: Ledger,
    sink_name: str,
    guard: BulkDoNotCallGuard | None,
    pairs: list[tuple[CreateTask, ExecutionContext]],
    written: WrittenReader | None = None,
) -> dict[str, str | None]:
    """The CRM's do-not-call answer for each guarded task the ledger does not already settle, read in one go
    when the sink can (``guard``: its ``SinkAbilities.do_not_call_many``); {} when it cannot or the read fails (then
    each is read alone)."""
    if guard is None:
        return {}
    reader = written or ledger.sinks.written
    wanted = [(a, c) for a, c in pairs if _guarded(a, c) and _written_by_connector(reader, sink_name, a, c) is None]
    if not wanted:
        return {}
    try:
        answers = guard.do_not_call_many(wanted)
    except SinkError:
        return {}
    return {action.key: answer for (action, _), answer in zip(wanted, answers, strict=True)}


def _guarded(action: CreateTask, context: ExecutionContext) -> bool:
    contact = context.contact()
    return bool(action.unless_do_not_call) and contact is not None and not contact.skipped and bool(contact.crm_id)


def _written_by_connector(
    read: WrittenReader, sink_name: str, action: CreateTask, context: ExecutionContext
) -> str | None:
    contact = context.contact()
    assert contact is not None
    written = read(sink_name, f"{contact.object}:{contact.crm_id}", action.unless_do_not_call)
    return next((p for p in action.unless_do_not_call if p in written and written[p].value is True), None)


def _skipped(prop: str, source: str) -> ActionResult:
    return ActionResult(skipped=True, detail={"reason": SKIP_REASON, "property": prop, "source": source})
