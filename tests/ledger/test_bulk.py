"""The batch runner's bulk store work (connector.ledger.bulk) through the real ledger, on SQLite and PostgreSQL:
the same rows DeliveryStore's one-at-a-time methods write, in one transaction each, with the lease rules kept."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from connector.ledger import Ledger
from connector.ledger._clock import utcnow
from connector.ledger.bulk import FieldWrite, Finish, Mark
from connector.ledger.schema import ActionStatus, DeliveryStatus
from tests.support.delivery import ingest
from tests.support.ledger import WORKER, claimed_ids


class Commits:
    """Counts committed transactions on the ledger's engine."""

    def __init__(self, ledger: Ledger) -> None:
        self.count = 0
        event.listen(ledger.engine, "commit", self._seen)

    def _seen(self, _connection: Any) -> None:
        self.count += 1


def test_start_opens_every_attempt_and_saves_plans_in_one_transaction(ledger: Ledger) -> None:
    ids = claimed_ids(ledger, 30)
    commits = Commits(ledger)
    started = ledger.bulk.start(WORKER, [(d, 1) for d in ids], {d: f'{{"plan": {d}}}' for d in ids[:10]})
    assert commits.count == 1
    assert sorted(started) == sorted(ids) and len(set(started.values())) == 30
    for delivery_id in ids:
        [attempt] = ledger.deliveries.attempts_for(delivery_id)
        assert (attempt["id"], attempt["number"], attempt["worker"]) == (started[delivery_id], 1, WORKER)
    rows = {d["id"]: d["plan"] for i in range(30) for d in ledger.deliveries_for(str(500 + i))}
    assert all(rows[d] == f'{{"plan": {d}}}' for d in ids[:10]) and all(rows[d] is None for d in ids[10:])


def test_marks_are_upserted_in_one_transaction_and_read_back_at_once(ledger: Ledger) -> None:
    ids = claimed_ids(ledger, 25)
    ledger.deliveries.journal_mark(ids[0], "a:activity", "create_activity", ActionStatus.IN_FLIGHT)
    commits = Commits(ledger)
    marks = [
        Mark(d, "a:activity", "create_activity", ActionStatus.SUCCEEDED, f"crm-{d}", {"crm_id": f"crm-{d}"})
        for d in ids
    ]
    marks += [Mark(d, "a:contact", "resolve_contact", ActionStatus.SKIPPED) for d in ids[:5]]
    written = ledger.bulk.write(WORKER, marks=marks)
    assert commits.count == 1 and written.lease_lost == frozenset()
    journals = ledger.bulk.journals(ids)
    assert journals == {d: ledger.deliveries.journal(d) for d in ids}  # what the one-at-a-time reader sees
    assert journals[ids[0]]["a:activity"].status == "succeeded"  # the in-flight row was updated, not duplicated
    assert journals[ids[0]]["a:activity"].result == {"crm_id": f"crm-{ids[0]}"}
    assert journals[ids[6]].keys() == {"a:activity"} and journals[ids[4]]["a:contact"].status == "skipped"


def test_in_flight_marks_check_the_lease_and_skip_only_the_lost_deliveries(ledger: Ledger) -> None:
    ids = claimed_ids(ledger, 6)
    other = ids[:2]
    ledger.deliveries.release_claims_of([WORKER])  # declared dead: every claim returned...
    reclaimed = ledger.deliveries.claim("worker-b", ["rec"], limit=2, lease_s=60)  # ...two taken by another worker
    assert {c.id for c in reclaimed} == set(other)
    ledger.deliveries.claim(WORKER, ["rec"], limit=4, lease_s=60)  # the rest leased to this worker again
    marks = [Mark(d, "k", "create_activity", ActionStatus.IN_FLIGHT) for d in ids]
    written = ledger.bulk.write(
        WORKER, in_flight=marks, marks=[Mark(ids[0], "earlier", "create_activity", ActionStatus.SUCCEEDED, "x")]
    )
    assert written.lease_lost == frozenset(other)
    journals = ledger.bulk.journals(ids)
    assert all("k" not in journals[d] for d in other)  # no in-flight mark, so no CRM call may follow
    assert all(journals[d]["k"].status == "in_flight" for d in ids[2:])
    assert journals[ids[0]]["earlier"].status == "succeeded"  # a fact about the CRM is kept either way


def test_finish_moves_only_held_deliveries_and_closes_every_attempt(ledger: Ledger) -> None:
    ids = claimed_ids(ledger, 5)
    started = ledger.bulk.start(WORKER, [(d, 1) for d in ids], {})
    ledger.deliveries.release_claims_of([WORKER])
    ledger.deliveries.claim("worker-b", ["rec"], limit=1, lease_s=60)  # ids[0] now someone else's
    ledger.deliveries.claim(WORKER, ["rec"], limit=4, lease_s=60)
    due = utcnow() + timedelta(seconds=30)
    finishes = [Finish(d, started[d], DeliveryStatus.SUCCEEDED, "succeeded") for d in ids[:3]]
    finishes.append(
        Finish(
            ids[3],
            started[ids[3]],
            DeliveryStatus.RETRY_SCHEDULED,
            "rate_limited",
            due_at=due,
            error={"kind": "RateLimited", "status": 429, "message": "slow down"},
            count_attempt=False,
        )
    )
    finishes.append(
        Finish(
            ids[4],
            started[ids[4]],
            DeliveryStatus.DEAD,
            "dead",
            error={"kind": "PermanentError", "status": 400, "code": "INVALID", "message": "bad"},
        )
    )
    commits = Commits(ledger)
    written = ledger.bulk.write(WORKER, finishes=finishes)
    assert commits.count == 1
    assert written.finished == frozenset(ids[1:])
    rows = {d["id"]: d for i in range(5) for d in ledger.deliveries_for(str(500 + i))}
    assert rows[ids[0]]["status"] == "leased" and rows[ids[0]]["lease_owner"] == "worker-b"
    assert [rows[d]["status"] for d in ids[1:]] == ["succeeded", "succeeded", "retry_scheduled", "dead"]
    assert rows[ids[1]]["finished_at"] is not None and rows[ids[1]]["lease_owner"] is None
    assert rows[ids[3]]["due_at"] == due and rows[ids[3]]["attempts"] == 1  # a rate limit is no attempt
    assert rows[ids[3]]["last_error"] == "slow down" and rows[ids[3]]["finished_at"] is None
    assert rows[ids[4]]["dead_reason"] == "bad" and rows[ids[4]]["attempts"] == 2
    outcomes = {d: ledger.deliveries.attempts_for(d)[0] for d in ids}
    assert outcomes[ids[0]]["outcome"] == "lease_lost"
    assert [outcomes[d]["outcome"] for d in ids[1:]] == ["succeeded", "succeeded", "rate_limited", "dead"]
    assert (outcomes[ids[4]]["status_code"], outcomes[ids[4]]["crm_code"]) == (400, "INVALID")


def test_fields_are_upserted_and_read_back_for_many_contacts(ledger: Ledger) -> None:
    now = utcnow()
    ledger.sinks.record_written("rec", "contact:1", {"outcome": ("old", 1, now - timedelta(hours=1))}, "2x-1")
    writes = [
        FieldWrite("rec", f"contact:{i}", prop, value, 2, now, f"2x-{i}")
        for i in range(1, 40)
        for prop, value in (("outcome", f"o{i}"), ("dnc", True))
    ]
    writes.append(FieldWrite("rec", "contact:2", "outcome", "later", 3, now, "2x-99"))  # same row twice: last wins
    commits = Commits(ledger)
    ledger.bulk.write(WORKER, fields=writes)
    assert commits.count == 1
    found = ledger.bulk.written("rec", {f"contact:{i}": {"outcome", "dnc", "absent"} for i in range(1, 41)})
    assert found[("contact:1", "outcome")].value == "o1" and found[("contact:1", "outcome")].rank == 2
    assert found[("contact:2", "outcome")].value == "later" and found[("contact:2", "outcome")].event_id == "2x-99"
    assert found[("contact:7", "dnc")].value is True
    assert ("contact:40", "outcome") not in found and ("contact:3", "absent") not in found
    assert found[("contact:5", "outcome")] == ledger.sinks.written("rec", "contact:5", ["outcome"])["outcome"]


def test_events_and_the_contact_cache_are_read_at_once(ledger: Ledger) -> None:
    ids = [ingest(ledger, 700 + i) for i in range(3)]
    rows = ledger.bulk.events([*ids, "2x-missing"])
    assert sorted(rows) == sorted(ids)
    assert rows[ids[0]]["normalized"] == ledger.get_event(ids[0])["normalized"]  # type: ignore[index]
    ledger.sinks.cache_contact("rec", "+12025550001", "contact", "101")
    ledger.sinks.cache_contact("rec", "+12025550002", "contact", "102")
    ledger.sinks.cache_contact("other", "+12025550003", "contact", "103")
    found = ledger.sinks.cached_contacts("rec", ["+12025550001", "+12025550002", "+12025550003"], max_age_s=60)
    assert found == {"+12025550001": ("contact", "101"), "+12025550002": ("contact", "102")}
    assert ledger.sinks.cached_contacts("rec", ["+12025550001"], max_age_s=0) == {}


@pytest.mark.parametrize("count", [1, 1200])
def test_bulk_reads_span_more_ids_than_one_in_list_holds(ledger: Ledger, count: int) -> None:
    assert ledger.bulk.journals(range(1, count + 1)) == {i: {} for i in range(1, count + 1)}
