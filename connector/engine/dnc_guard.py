"""Do-not-call closes the door on callbacks: a follow-up task is never created for a do-not-call contact, and the
fields its outcome sets on the contact (a "callback due" date, a status) are left out.

Both engine paths (connector.engine.single, connector.engine.batch) ask `blocked_task` right before a guarded
`create_task` would be sent, and `withheld_fields` right before a callback outcome's `update_contact`. Two sources,
cheapest first:

1. the ledger's precedence bookkeeping: a do-not-call the connector itself wrote to this contact (sticky,
   so its last written value is true once set) — no CRM request;
2. the CRM, read by the sink right before the write (the optional `DoNotCallGuard`): a do-not-call set
   by a rep, another tool, or an older connector release. A callback is the rare outcome, so one extra
   read per callback is cheap (measured in tests/test_callbacks_dnc.py): the answer is kept in the delivery's
   ExecutionContext, so the contact update and the task share it. Under a backlog the batch runner reads them
   all at once first (`prefetch`, the optional `BulkDoNotCallGuard`): one request per stage instead of one per
   callback.

The other half — a later do-not-call closing the tasks created before it — is the `close_callbacks`
action the planner adds to do-not-call plans.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connector.errors import SinkError
from connector.ledger import Ledger
from connector.plan import CreateTask, DoNotCallGuarded, UpdateContact
from connector.precedence import WrittenField, contact_ref_of
from connector.sinks.base import ActionResult, BulkDoNotCallGuard, DoNotCallGuard, ExecutionContext

SKIP_REASON = "do_not_call"
WITHHELD = "withheld"
"""ActionResult.detail key of a contact update: the callback fields left out because the contact is do-not-call
(unlike drift's skipped fields, a replay does not fill them in)."""

WrittenReader = Callable[[str, str, list[str]], dict[str, WrittenField]]
"""(sink, contact ref, properties) → what the connector wrote there; the batch runner passes one that answers from
what it read for the whole stage at once."""


def blocked_task(
    ledger: Ledger,
    sink_name: str,
    guard: DoNotCallGuard | None,
    action: CreateTask,
    context: ExecutionContext,
    written: WrittenReader | None = None,
) -> ActionResult | None:
    """The skipped result when this task must not be created because the contact is do-not-call; else None.

    ``guard``: the sink's ``SinkAbilities.do_not_call`` (None: only the connector's own writes count); an answer
    already in ``context`` (``prefetch``, or the callback's contact update) is not read again.
    """
    if not _guarded(action, context):
        return None
    found = _do_not_call(ledger, sink_name, guard, action, context, written)
    return _skipped(*found) if found else None


def withheld_fields(
    ledger: Ledger,
    sink_name: str,
    guard: DoNotCallGuard | None,
    action: UpdateContact,
    context: ExecutionContext,
    written: WrittenReader | None = None,
) -> tuple[UpdateContact | None, dict[str, Any] | None]:
    """A callback outcome's contact update without its callback fields when the contact is do-not-call.

    Returns (what is left to send, or None when nothing is; the audit detail of what was left out, or None when
    nothing was). The CRM is only asked when the update still holds a withheld field.
    """
    withheld = [f.property for f in action.fields if f.property in action.withheld_if_do_not_call]
    if not withheld or not _guarded(action, context):
        return action, None
    found = _do_not_call(ledger, sink_name, guard, action, context, written)
    if not found:
        return action, None
    prop, source = found
    kept = [f for f in action.fields if f.property not in withheld]
    detail: dict[str, Any] = {"reason": SKIP_REASON, "property": prop, "source": source, "fields": withheld}
    return (action.model_copy(update={"fields": kept}) if kept else None), detail


def prefetch(
    ledger: Ledger,
    sink_name: str,
    guard: BulkDoNotCallGuard | None,
    pairs: list[tuple[DoNotCallGuarded, ExecutionContext]],
    written: WrittenReader | None = None,
) -> None:
    """Read the CRM's do-not-call for each guarded action the ledger or an earlier read does not already settle, in
    one go when the sink can (``guard``: its ``SinkAbilities.do_not_call_many``), into each action's context.
    Nothing when it cannot or the read fails (then each is read alone)."""
    if guard is None:
        return
    reader = written or ledger.sinks.written
    wanted = [
        (a, c)
        for a, c in pairs
        if _guarded(a, c)
        and _contact_ref(c) not in c.do_not_call
        and _written_by_connector(reader, sink_name, a, c) is None
    ]
    if not wanted:
        return
    try:
        answers = guard.do_not_call_many(wanted)
    except SinkError:
        return
    for (_, context), answer in zip(wanted, answers, strict=True):
        context.do_not_call[_contact_ref(context)] = answer


def _do_not_call(
    ledger: Ledger,
    sink_name: str,
    guard: DoNotCallGuard | None,
    action: DoNotCallGuarded,
    context: ExecutionContext,
    written: WrittenReader | None,
) -> tuple[str, str] | None:
    """(the do-not-call property that is set, who says so: ``connector`` or ``crm``), or None."""
    by_connector = _written_by_connector(written or ledger.sinks.written, sink_name, action, context)
    if by_connector is not None:
        return by_connector, "connector"
    ref = _contact_ref(context)
    if ref not in context.do_not_call:
        if guard is None:
            return None
        context.do_not_call[ref] = guard.do_not_call_set(action, context)
    prop = context.do_not_call[ref]
    return (prop, "crm") if prop else None


def _guarded(action: DoNotCallGuarded, context: ExecutionContext) -> bool:
    contact = context.contact()
    return bool(action.unless_do_not_call) and contact is not None and not contact.skipped and bool(contact.crm_id)


def _contact_ref(context: ExecutionContext) -> str:
    contact = context.contact()
    assert contact is not None
    return contact_ref_of(contact.object, contact.crm_id)


def _written_by_connector(
    read: WrittenReader, sink_name: str, action: DoNotCallGuarded, context: ExecutionContext
) -> str | None:
    written = read(sink_name, _contact_ref(context), action.unless_do_not_call)
    return next((p for p in action.unless_do_not_call if p in written and written[p].value is True), None)


def _skipped(prop: str, source: str) -> ActionResult:
    return ActionResult(skipped=True, detail={"reason": SKIP_REASON, "property": prop, "source": source})
