"""connector.ledger._among on both backends: the same rows as `IN (…)`, one statement of one text on PostgreSQL
whatever the number of values, chunks below SQLite's parameter limit there."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from connector.ledger import Ledger
from connector.ledger._among import IN_CHUNK, among, one_condition
from connector.ledger.schema import deliveries, events
from tests.support.delivery import ingest
from tests.support.ledger import claimed_ids


@pytest.mark.parametrize("extra", [0, 1200])
def test_ids_and_strings_among_many_values(ledger: Ledger, extra: int) -> None:
    ids = claimed_ids(ledger, 5)
    event_ids = [ingest(ledger, 900 + i) for i in range(3)]
    absent = range(10**9, 10**9 + extra)
    with ledger.engine.connect() as connection:
        conditions = list(among(connection, deliveries.c.id, [*ids, *absent, ids[0]]))
        found = {r.id for c in conditions for r in connection.execute(select(deliveries.c.id).where(c))}
        texts = list(among(connection, events.c.event_id, [*event_ids, *(f"2x-absent-{i}" for i in absent)]))
        named = {r.event_id for c in texts for r in connection.execute(select(events.c.event_id).where(c))}
    assert found == set(ids) and named == set(event_ids)
    expected = 1 if ledger.engine.dialect.name == "postgresql" else -(-(len(ids) + extra) // IN_CHUNK)
    assert len(conditions) == expected


def test_no_values_no_condition(ledger: Ledger) -> None:
    with ledger.engine.connect() as connection:
        assert list(among(connection, deliveries.c.id, [])) == []


def test_postgresql_statement_text_does_not_depend_on_the_number_of_values(ledger: Ledger) -> None:
    """What lets psycopg prepare it once (and the server skip parsing): the text is the same for 2 or 400 ids."""
    with ledger.engine.connect() as connection:
        few = select(deliveries.c.id).where(one_condition(connection, deliveries.c.id, [1, 2]))
        many = select(deliveries.c.id).where(one_condition(connection, deliveries.c.id, range(400)))
        texts = {
            str(q.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})) for q in (few, many)
        }
        assert connection.execute(few).all() == []
    assert len(texts) == (1 if ledger.engine.dialect.name == "postgresql" else 2)


def test_one_condition_is_one_condition_on_both_backends(ledger: Ledger) -> None:
    ids = claimed_ids(ledger, 3)
    with ledger.engine.connect() as connection:
        condition = one_condition(connection, deliveries.c.id, [*ids, *range(10**9, 10**9 + IN_CHUNK)])
        assert {r.id for r in connection.execute(select(deliveries.c.id).where(condition))} == set(ids)
