"""The sink contract: scenarios every sink must pass, as a pytest class to subclass (needs pytest).

```python
class TestMySinkContract(SinkContract):
    @pytest.fixture
    def harness(self) -> Iterator[SinkHarness]:
        with MyCrmEmulator() as crm:
            harness = MyHarness(crm)
            yield harness
            harness.close()
```

Each scenario asserts what the delivery engine relies on (connector/engine/single.py, batch.py): what the CRM
holds afterwards (records, counts, ids) and which ``connector.errors`` class a failure raises with which message.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from connector.engine.worker import Worker
from connector.errors import AuthError, MissingFields, PermanentError, RateLimited, SinkError, TransientError
from connector.ledger import Ledger
from connector.plan import CreateActivity, Plan, ResolveContact
from connector.sinks.base import ExecutionContext, Sink
from connector.testing.harness import SinkHarness, run_plan

NEW_PHONES = ("+12025550161", "+12025550162", "+12025550163")


def activity_of(plan: Plan) -> CreateActivity:
    """The plan's call activity (every default mapping writes one)."""
    return next(a for a in plan.actions if isinstance(a, CreateActivity))


def message_of(exc: SinkError) -> str:
    """Everything an operator sees of an error: the summary and the CRM's own message and items."""
    return " ".join([str(exc), exc.crm_message or "", *(str(d) for d in exc.details)])


class SinkContract:
    """Scenarios for one sink; a subclass provides the ``harness`` fixture (a fresh CRM per test)."""

    def test_a_plan_creates_one_activity_on_the_resolved_contact(self, harness: SinkHarness) -> None:
        plan = harness.plan(9001)
        context = run_plan(harness.build_sink(), plan)
        [record] = _one(harness.records("create_activity"))
        result = context.results[activity_of(plan).key]
        assert result.crm_id == record["id"] and not result.skipped
        contact = context.contact()
        assert contact is not None and contact.crm_id in {r["id"] for r in harness.records("resolve_contact")}
        if "contact" in record:  # the harness can tell which contact the activity is on
            assert record["contact"] == contact.crm_id

    def test_a_write_whose_answer_was_lost_is_found_by_lookup(self, harness: SinkHarness) -> None:
        """The process died between the CRM call and the journal: the engine asks a new sink to look it up."""
        plan = harness.plan(9002)
        sink = harness.build_sink()
        context = ExecutionContext()
        context.results[plan.actions[0].key] = sink.execute(plan.actions[0], context)
        harness.crash_after_request()
        with pytest.raises(TransientError):
            run_plan(sink, plan, context)
        [record] = _one(harness.records("create_activity"))  # the CRM applied the write
        found = harness.build_sink().lookup(activity_of(plan), context)
        assert found is not None and found.crm_id == record["id"]
        assert harness.count("create_activity") == 1

    def test_a_retry_after_a_lost_answer_writes_once(self, harness: SinkHarness) -> None:
        """The engine's quick retry calls ``execute`` again at once, without a lookup: the sink must not write the
        activity a second time (it knows its answer was lost)."""
        plan = harness.plan(9003)
        sink = harness.build_sink()
        context = ExecutionContext()
        context.results[plan.actions[0].key] = sink.execute(plan.actions[0], context)
        harness.crash_after_request()
        with pytest.raises(TransientError):
            run_plan(sink, plan, context)
        run_plan(sink, plan, context)
        [record] = _one(harness.records("create_activity"))
        assert context.results[activity_of(plan).key].crm_id == record["id"]

    def test_every_request_waits_for_the_shared_rate_budget(self, harness: SinkHarness) -> None:
        """The budget is shared by every worker of a store: a request the gate did not see can overrun it."""
        before = harness.requests_seen()
        if before is None:
            pytest.skip("the harness cannot count the CRM's requests (SinkHarness.requests_seen)")
        run_plan(harness.build_sink(), harness.plan(9010, record_phone_number=NEW_PHONES[1]))
        sent = (harness.requests_seen() or 0) - before
        assert sent > 0 and harness.gates[-1].waits >= sent, (sent, harness.gates[-1].waits)

    def test_a_plan_delivered_again_leaves_one_contact_and_one_activity(self, harness: SinkHarness) -> None:
        """The whole plan was written, then the process died before the journal said so: a new process looks each
        action up and executes only what it does not find (connector.engine.single). A new number's contact,
        created the first time, is found the second time, not created again."""
        plan = harness.plan(9004, record_phone_number=NEW_PHONES[0])
        first = run_plan(harness.build_sink(), plan)
        contacts = harness.count("resolve_contact")
        again = redeliver(harness.build_sink(), plan)
        [record] = _one(harness.records("create_activity"))
        key = activity_of(plan).key
        assert first.results[key].crm_id == again.results[key].crm_id == record["id"]
        assert again.contact() is not None and again.contact().crm_id == first.contact().crm_id
        assert harness.count("resolve_contact") == contacts

    def test_rejected_credentials_raise_auth_error(self, harness: SinkHarness) -> None:
        sink = harness.build_sink()
        harness.reject_auth()
        with pytest.raises(AuthError):
            run_plan(sink, harness.plan(9005))
        with pytest.raises(AuthError):  # the engine probes this before it resumes the paused sink
            sink.check_auth()
        assert harness.count("create_activity") == 0

    def test_a_rate_limit_raises_rate_limited_with_its_wait(self, harness: SinkHarness) -> None:
        sink = harness.build_sink()
        expected = harness.rate_limit(7.0)
        with pytest.raises(RateLimited) as caught:
            run_plan(sink, harness.plan(9006))
        if expected is not None:
            assert caught.value.retry_after == expected
        assert harness.count("create_activity") == 0

    def test_a_validation_error_raises_permanent_error_with_the_crm_message(self, harness: SinkHarness) -> None:
        sink = harness.build_sink()
        fragment = harness.fail_permanently()
        with pytest.raises(PermanentError) as caught:
            run_plan(sink, harness.plan(9007))
        assert fragment in message_of(caught.value)
        assert harness.count("create_activity") == 0

    def test_a_field_deleted_in_the_crm_is_skipped_or_named(self, harness: SinkHarness) -> None:
        """Schema drift: either the sink leaves the field out and names it in ``detail["skipped_fields"]`` (the
        engine then does not count it as written), or it raises MissingFields (pause) or PermanentError naming it."""
        name = harness.optional_field
        harness.drop_field(name)
        plan = harness.plan(9008)
        try:
            context = run_plan(harness.build_sink(), plan)
        except MissingFields as exc:
            assert any(name in field for field in exc.fields), exc.fields
            return
        except PermanentError as exc:
            assert name in message_of(exc)
            return
        skipped: dict[str, Any] = {}
        for result in context.results.values():
            skipped.update(result.detail.get("skipped_fields") or {})
        assert name in skipped, f"{name} was neither skipped nor refused: {skipped}"
        assert harness.count("create_activity") == 1  # the rest of the plan landed

    def test_one_refused_event_fails_alone_through_the_engine(self, harness: SinkHarness, tmp_path: Path) -> None:
        """Three events of three numbers queued at once: the worker runs them together (in batches when the sink
        can); the event the CRM refuses is dead-lettered with the CRM's message, the other two succeed."""
        settings = harness.settings(f"sqlite:///{tmp_path / 'contract.db'}")
        ledger = Ledger.open(settings.store)
        worker = Worker(settings, ledger=ledger)
        worker.open()
        try:
            ids = [harness.ingest(ledger, 9101 + n, record_phone_number=p) for n, p in enumerate(NEW_PHONES)]
            fragment = harness.refuse_event(ids[1])
            _drain(worker)
            rows = {i: ledger.deliveries_for(i)[0] for i in ids}
        finally:
            worker.close()
            ledger.dispose()
        assert [rows[i]["status"] for i in ids] == ["succeeded", "dead", "succeeded"]
        assert fragment in f"{rows[ids[1]]['last_error']} {rows[ids[1]]['dead_reason']}"
        assert harness.count("create_activity") == 2


def redeliver(sink: Sink, plan: Plan) -> ExecutionContext:
    """Run a plan whose every action was left in flight, as the engine does after a crash: in plan order, look
    each action up; execute the contact's resolution when not found; then run what is still missing."""
    context = ExecutionContext()
    for action in plan.actions:
        found = sink.lookup(action, context)
        if found is not None:
            context.results[action.key] = found
        elif isinstance(action, ResolveContact):
            context.results[action.key] = sink.execute(action, context)
    return run_plan(sink, plan, context)


def _one(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records, asserting there is exactly one (a duplicate write is the failure worth naming)."""
    assert len(records) == 1, f"{len(records)} records for one action: {[r['id'] for r in records]}"
    return records


def _drain(worker: Worker, rounds: int = 100) -> None:
    """Run the worker until three rounds in a row find nothing due."""
    idle = 0
    for _ in range(rounds):
        done = worker.run_once()
        idle = idle + 1 if done == 0 else 0
        if idle >= 3:
            return
        if done == 0:
            time.sleep(0.05)
