"""Claims read the queue from its partial index (`ix_deliveries_queue`, migration 0010) and lease only the rows they
chose, re-checking in the UPDATE that each is still due (connector.ledger.deliveries.DeliveryStore.claim)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, event, update

from connector.ledger import Ledger
from connector.ledger.schema import DUE_CONDITION, deliveries
from tests.support.delivery import ingest


def test_several_sinks_are_claimed_in_one_order_do_not_call_first(ledger: Ledger) -> None:
    for i in range(6):
        ingest(ledger, 700 + i, sinks=("a", "b"), record_phone_number=f"+1202555{3000 + i:04d}")
    dnc = ingest(ledger, 799, sinks=("b",), end_reason="do_not_call", record_phone_number="+12025553999")
    claimed = ledger.deliveries.claim("w", ["a", "b"], limit=4, lease_s=60)
    assert [(c.event_id, c.sink) for c in claimed][0] == (dnc, "b")
    # then the oldest, one per (sink, contact): both sinks' deliveries of an event are different pairs
    assert [(c.event_id, c.sink) for c in claimed[1:]] == [("700", "a"), ("700", "b"), ("701", "a")]
    assert all(c.attempts == 1 for c in claimed)
    again = ingest(ledger, 750, sinks=("a",), record_phone_number="+12025553000")  # 700's contact, sink a
    rest = ledger.deliveries.claim("w2", ["a", "b"], limit=100, lease_s=60)
    assert len(rest) == 13 - 4  # every other (sink, contact) pair
    assert not {c.id for c in rest} & {c.id for c in claimed}
    assert again not in {c.event_id for c in rest}  # 700 holds that contact on sink a: one delivery at a time


def test_a_candidate_moved_after_the_read_is_not_leased(ledger: Ledger, store_url: str) -> None:
    """Between the claim's read of the queue and its UPDATE, another transaction holds one candidate (as a dashboard
    action could): the UPDATE re-checks the row, so the claim leaves it out and it stays held. On SQLite nothing can
    write in between (BEGIN IMMEDIATE), so this interleaving exists on PostgreSQL only."""
    if not store_url.startswith("postgresql"):
        pytest.skip("SQLite's BEGIN IMMEDIATE keeps every other writer out between the read and the UPDATE")
    ids = [ingest(ledger, 720 + i, record_phone_number=f"+1202555{3100 + i:04d}") for i in range(3)]
    other = create_engine(store_url)
    moved: list[Any] = []

    def after_read(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "ORDER BY" in statement and "deliveries.priority" in statement and not moved:
            with other.begin() as connection:  # commits before the claim's UPDATE runs
                moved.append(
                    connection.execute(
                        update(deliveries).where(deliveries.c.event_id == ids[1]).values(status="held")
                    ).rowcount
                )

    event.listen(ledger.engine, "after_cursor_execute", after_read)
    try:
        claimed = ledger.deliveries.claim("w", ["rec"], limit=10, lease_s=60)
    finally:
        event.remove(ledger.engine, "after_cursor_execute", after_read)
        other.dispose()
    assert moved == [1]
    assert [c.event_id for c in claimed] == [ids[0], ids[2]]
    [row] = ledger.deliveries_for(ids[1])
    assert row["status"] == "held" and row["attempts"] == 0


def test_the_claim_reads_the_queue_index_even_before_statistics(ledger: Ledger) -> None:
    """A new store taking its first backlog: PostgreSQL has no statistics yet, and must still read the queue in
    order from its index instead of sorting every due row (what a claim cost before: 5-12 ms at 10,000 rows). The
    statement the claim really runs is explained with its own parameters. Its due condition is literal SQL: with a
    bound parameter instead, PostgreSQL's generic plans (after five executions of a prepared statement) and SQLite
    could not match the partial index's predicate."""
    for i in range(300):
        ingest(ledger, 900 + i, record_phone_number=f"+1202556{i:04d}")
    ran: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if "ORDER BY" in statement and "deliveries.priority" in statement:
            ran.append((statement, parameters))

    event.listen(ledger.engine, "before_cursor_execute", before)
    try:
        assert len(ledger.deliveries.claim("w", ["rec"], limit=100, lease_s=60)) == 100
    finally:
        event.remove(ledger.engine, "before_cursor_execute", before)
    [(statement, parameters)] = ran
    assert DUE_CONDITION in statement
    with ledger.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters)
            plan = "\n".join(r[0] for r in rows)
        else:
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            plan = "\n".join(str(r[-1]) for r in rows)
    assert "ix_deliveries_queue" in plan, plan
    assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan
