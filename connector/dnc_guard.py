"""Do-not-call closes the door on callbacks: a follow-up task is never created for a do-not-call contact.

Both engine paths (connector.delivery, connector.batching) ask `blocked_task` right before a guarded
`create_task` would be sent. Two sources, cheapest first:

1. the ledger's precedence bookkeeping: a do-not-call the connector itself wrote to this contact (sticky,
   so its last written value is true once set) — no CRM request;
2. the CRM, read by the sink right before the write (`Sink.do_not_call_set`, optional): a do-not-call set
   by a rep, another tool, or an older connector release. A callback is the rare outcome, so one extra
   read per callback task is cheap (measured in tests/test_callbacks_dnc.py).

The other half — a later do-not-call closing the tasks created before it — is the `close_callbacks`
action the planner adds to do-not-call plans.
"""

from __future__ import annotations

from typing import Any

from connector.ledger import Ledger
from connector.plan import CreateTask
from connector.sinks.base import ActionResult, ExecutionContext

SKIP_REASON = "do_not_call"


def blocked_task(ledger: Ledger, sink_name: str, sink: Any, action: CreateTask,
                 context: ExecutionContext) -> ActionResult | None:
    """The skipped result when this task must not be created because the contact is do-not-call; else None."""
    contact = context.contact()
    if not action.unless_do_not_call or contact is None or contact.skipped or not contact.crm_id:
        return None
    reference = f"{contact.object}:{contact.crm_id}"
    written = ledger.sinks.written(sink_name, reference, action.unless_do_not_call)
    for prop in action.unless_do_not_call:
        if prop in written and written[prop].value is True:
            return _skipped(prop, "connector")
    read = getattr(sink, "do_not_call_set", None)
    if read is None:
        return None
    prop = read(action, context)
    return _skipped(prop, "crm") if prop else None


def _skipped(prop: str, source: str) -> ActionResult:
    return ActionResult(skipped=True, detail={"reason": SKIP_REASON, "property": prop, "source": source})
