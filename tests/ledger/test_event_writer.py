"""The receiver's DBAPI-level commit (connector.ledger.event_writer) against SQLAlchemy Core, on both backends:
the same stored values, all-or-nothing, store errors still StoreError with no payload in their text."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connector.errors import StoreDataError, StoreError
from connector.ledger import IngestStatus, Ledger
from connector.ledger.schema import deliveries, events
from connector.ledger.store import _DELIVERY_COLUMNS, _EVENT_COLUMNS, _new_delivery
from connector.payload import parse_webhook
from connector.receiver.ingest import content_hash
from connector.sample import SAMPLE_PHONE, sample_payload
from tests.support.settings import make_settings


def _rows(ledger: Ledger, event_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], tuple[Any, ...]]:
    """The event and its deliveries as read back, and the event's columns as the driver returns them."""
    with ledger.engine.connect() as connection:
        event = dict(connection.execute(sa.select(events).where(events.c.event_id == event_id)).mappings().one())
        found = [
            dict(r)
            for r in connection.execute(
                sa.select(deliveries).where(deliveries.c.event_id == event_id).order_by(deliveries.c.sink)
            ).mappings()
        ]
        as_stored = connection.execute(  # no result processors: what the column really holds
            sa.text("SELECT received_at, body, content_type, normalized, contact_key FROM events WHERE event_id = :id"),
            {"id": event_id},
        ).one()
    for row in found:
        row.pop("id")
        row.pop("event_id")
    event.pop("event_id")
    return event, found, tuple(as_stored)


def _event_row(event_id: str, received_at: datetime) -> dict[str, Any]:
    body = json.dumps(sample_payload("same body")).encode()
    return {
        "event_id": event_id,
        "received_at": received_at,
        "body": body,
        "body_sha256": "a" * 64,
        "content_hash": "b" * 64,
        "content_type": "application/json; charset=utf-8",
        "normalized": '{"k": "välue \\u00e9"}',
        "end_reason": "call_transferred",
        "contact_key": SAMPLE_PHONE,
    }


def test_stores_exactly_what_sqlalchemy_core_stores(ledger: Ledger) -> None:
    received = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=timezone(timedelta(hours=-5)))  # not UTC on purpose
    fast, core = _event_row("fast", received), _event_row("core", received)
    fast_deliveries = [_new_delivery("fast", sink, 10, received, SAMPLE_PHONE) for sink in ("a", "b")]
    core_deliveries = [_new_delivery("core", sink, 10, received, SAMPLE_PHONE) for sink in ("a", "b")]
    ledger._events.write(fast, fast_deliveries)
    with ledger.engine.begin() as connection:
        connection.execute(events.insert(), core)
        connection.execute(deliveries.insert(), core_deliveries)
    assert _rows(ledger, "fast") == _rows(ledger, "core")
    stored, _, _ = _rows(ledger, "fast")
    assert stored["received_at"] == received and stored["received_at"].utcoffset() == timedelta(0)
    assert stored["body"] == fast["body"]


def test_writes_every_column_the_receiver_supplies() -> None:
    assert set(_EVENT_COLUMNS) | {"purged_at"} == set(events.c.keys())  # purged_at: set later, by retention
    assert set(_DELIVERY_COLUMNS) == set(_new_delivery("e", "s", 0, datetime.now(UTC), None))


def test_a_failure_after_the_event_insert_stores_nothing_and_frees_the_connection(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    monkeypatch.setattr(ledger._events._delivery, "sql", "INSERT INTO no_such_table (x) VALUES (1)")
    with pytest.raises(StoreError) as raised:
        ledger._events.write(_event_row("half", now), [_new_delivery("half", "s", 10, now, None)])
    assert isinstance(
        raised.value.__cause__, sa.exc.DBAPIError
    )  # the driver's error, wrapped as Connection.execute would
    monkeypatch.undo()
    assert ledger.get_event("half") is None  # the event insert was rolled back with it
    ledger._events.write(_event_row("half", now), [_new_delivery("half", "s", 10, now, None)])  # lock released
    assert ledger.get_event("half") is not None and len(ledger.deliveries_for("half")) == 1


def test_a_locked_sqlite_store_is_a_store_error_without_payload_values(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    opened = Ledger.open(
        make_settings(f"sqlite:///{path}", store={"url": f"sqlite:///{path}", "sqlite_busy_timeout_ms": 100}).store
    )
    document = sample_payload("locked-1")
    event = parse_webhook(document)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError) as raised:
            opened.record_event(
                event,
                body=json.dumps(document).encode(),
                content_type="application/json",
                content_hash=content_hash(document),
                sinks=["s"],
            )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not isinstance(raised.value, StoreDataError)  # an outage: the receiver answers 503, 2X retries
    chain = f"{raised.value} {raised.value.__cause__}"
    assert "locked" in str(raised.value.__cause__)
    assert SAMPLE_PHONE not in chain and "locked-1" not in chain
    again = opened.record_event(
        event,
        body=json.dumps(document).encode(),
        content_type="application/json",
        content_hash=content_hash(document),
        sinks=["s"],
    )
    assert again.status is IngestStatus.ACCEPTED  # the pooled connection was left usable
    opened.dispose()


def test_a_value_postgresql_refuses_is_a_data_error_and_nothing_is_stored(store_url: str) -> None:
    if store_url.startswith("sqlite"):
        pytest.skip("SQLite does not enforce VARCHAR lengths; the refused value exists on PostgreSQL only")
    opened = Ledger.open(make_settings(store_url).store)
    document = sample_payload("too-long-sink")
    with pytest.raises(StoreDataError):
        opened.record_event(
            parse_webhook(document),
            body=json.dumps(document).encode(),
            content_type="application/json",
            content_hash=content_hash(document),
            sinks=["s" * 65],
        )
    assert opened.get_event("too-long-sink") is None
    opened.dispose()


@pytest.mark.parametrize("sinks", [0, 1, 3])
def test_postgresql_commits_an_event_and_its_deliveries_in_one_statement(
    ledger: Ledger, store_url: str, sinks: int
) -> None:
    """On PostgreSQL the event's INSERT rides in a WITH clause of its deliveries' INSERT, in autocommit: one round
    trip. The pooled connection goes back in its usual mode after a success and after a failure (a taken id), or
    every later `engine.begin()` on it would commit statement by statement."""
    if not store_url.startswith("postgresql"):
        pytest.skip("SQLite commits in process: there is no round trip to save")
    executed: list[str] = []
    real = ledger.engine.raw_connection

    def recording() -> Any:
        connection = real()
        cursor_factory = connection.cursor

        def cursor(*args: Any, **kwargs: Any) -> Any:
            return _TracedCursor(cursor_factory(*args, **kwargs), executed)

        connection.cursor = cursor
        return connection

    now = datetime.now(UTC)
    rows = [_new_delivery("one", f"sink{i}", 10, now, None) for i in range(sinks)]
    ledger.engine.raw_connection = recording  # type: ignore[method-assign]
    try:
        ledger._events.write(_event_row("one", now), rows)
        with pytest.raises(sa.exc.IntegrityError):
            ledger._events.write(_event_row("one", now), rows)
    finally:
        del ledger.engine.raw_connection
    assert len(executed) == 2 and all(s.startswith("WITH" if sinks else "INSERT INTO events") for s in executed)
    assert len(ledger.deliveries_for("one")) == sinks
    for _ in range(3):  # every pooled connection
        with ledger.engine.connect() as connection:
            assert connection.connection.dbapi_connection.autocommit is False


class _TracedCursor:
    """A DBAPI cursor that records the statements it runs (psycopg's own cursor takes no new attributes)."""

    def __init__(self, inner: Any, executed: list[str]) -> None:
        self._inner, self._executed = inner, executed

    def execute(self, statement: str, *args: Any, **kwargs: Any) -> Any:
        self._executed.append(statement)
        return self._inner.execute(statement, *args, **kwargs)

    def executemany(self, statement: str, *args: Any, **kwargs: Any) -> Any:
        self._executed.append(statement)
        return self._inner.executemany(statement, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
