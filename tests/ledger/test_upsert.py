"""connector.ledger._upsert on both backends: new rows inserted, existing keys updated, in one statement on
PostgreSQL; the columns' own bind rules (aware datetimes only) still apply to the JSON rows, and every value
comes back exactly as written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import StatementError

from connector.ledger import Ledger
from connector.ledger._upsert import update_many, upsert_many
from connector.ledger.schema import deliveries, field_state
from tests.support.ledger import WORKER, claimed_ids

KEY, UPDATE = ("sink", "contact_ref", "property"), ("value", "rank", "call_time", "event_id")


def row(ref: int, value: str, when: datetime = datetime(2025, 1, 2, 3, 4, tzinfo=UTC)) -> dict[str, Any]:
    return {
        "sink": "rec",
        "contact_ref": f"contact:{ref}",
        "property": "outcome",
        "value": value,
        "rank": ref,
        "call_time": when,
        "event_id": f"2x-{ref}",
    }


def test_inserts_new_keys_and_updates_existing_ones(ledger: Ledger) -> None:
    statements: list[bool] = []

    def seen(*args: Any) -> None:
        statements.append(args[-1])  # executemany

    with ledger.engine.begin() as connection:
        upsert_many(connection, field_state, [row(i, "first") for i in range(3)], KEY, UPDATE)
        event.listen(ledger.engine, "before_cursor_execute", seen)
        upsert_many(connection, field_state, [row(i, "second") for i in range(2, 150)], KEY, UPDATE)
        event.remove(ledger.engine, "before_cursor_execute", seen)
        rows = {r.contact_ref: r for r in connection.execute(select(field_state))}
    assert len(rows) == 150
    assert rows["contact:0"].value == "first" and rows["contact:2"].value == "second"
    assert rows["contact:149"].rank == 149 and rows["contact:149"].call_time == row(0, "")["call_time"]
    assert statements == ([False] if ledger.engine.dialect.name == "postgresql" else [True])


def test_naive_datetimes_are_refused_as_by_any_ledger_write(ledger: Ledger) -> None:
    with pytest.raises((StatementError, ValueError), match="naive datetime"), ledger.engine.begin() as connection:
        upsert_many(connection, field_state, [row(1, "x", datetime(2025, 1, 2))], KEY, UPDATE)  # noqa: DTZ001


def test_values_come_back_exactly_as_written(ledger: Ledger) -> None:
    """Quotes, backslashes, non-ASCII text, NULL, microseconds and an offset other than UTC survive the JSON trip."""
    awkward = ['say "no"', "C:\\temp\\", "Zoë — 東京 ☎", "", None, "line\nbreak\ttab"]
    berlin = timezone(timedelta(hours=1))
    rows = [
        row(i, value, datetime(2025, 6, 1, 12, 30, 15, 123456, tzinfo=berlin) + timedelta(days=i))  # type: ignore[arg-type]
        for i, value in enumerate(awkward)
    ]
    with ledger.engine.begin() as connection:
        upsert_many(connection, field_state, rows, KEY, UPDATE)
        stored = {r.rank: r for r in connection.execute(select(field_state))}
    assert [stored[i].value for i in range(len(awkward))] == awkward
    assert [stored[i].call_time for i in range(len(awkward))] == [r["call_time"] for r in rows]
    assert stored[0].call_time.tzinfo == UTC and stored[0].call_time.hour == 11


def test_nothing_to_write_runs_nothing(ledger: Ledger) -> None:
    with ledger.engine.begin() as connection:
        upsert_many(connection, field_state, [], KEY, UPDATE)
        assert connection.execute(select(field_state)).all() == []


def test_update_many_sets_only_rows_meeting_the_conditions_in_one_statement(ledger: Ledger) -> None:

    ids = claimed_ids(ledger, 5)
    statements: list[bool] = []

    def seen(*args: Any) -> None:
        statements.append(args[-1])

    event.listen(ledger.engine, "before_cursor_execute", seen)
    with ledger.engine.begin() as connection:
        changed = update_many(
            connection,
            deliveries,
            [{"id": d, "last_error": f"e{d}"} for d in [*ids[:4], 10**12]],
            "id",
            where={"lease_owner": WORKER},
            decrement="attempts",
        )
        update_many(connection, deliveries, [{"id": ids[4], "last_error": "no"}], "id", where={"lease_owner": "other"})
    event.remove(ledger.engine, "before_cursor_execute", seen)
    with ledger.engine.connect() as connection:
        rows = {r.id: r for r in connection.execute(select(deliveries))}
    assert [rows[d].last_error for d in ids] == [f"e{d}" for d in ids[:4]] + [None]
    assert [rows[d].attempts for d in ids] == [0, 0, 0, 0, 1]
    assert changed == 4
    if ledger.engine.dialect.name == "postgresql":
        assert statements == [False, False]  # one statement each, however many rows
