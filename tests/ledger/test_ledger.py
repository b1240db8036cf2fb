"""The ledger on SQLite and on the real local PostgreSQL: storing, deduplicating, quarantining, migrating."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from connector.ledger import DeliveryStatus, IngestStatus, Ledger, RejectedBody, migrate
from connector.ledger.schema import metadata
from connector.payload import parse_webhook
from connector.receiver.ingest import content_hash
from connector.sample import sample_payload


def _record(ledger: Ledger, document: dict, sinks: list[str] | None = None):
    event = parse_webhook(document)
    body = json.dumps(document).encode()
    return ledger.record_event(
        event, body=body, content_type="application/json", content_hash=content_hash(document), sinks=sinks or []
    )


def test_migrated_schema_matches_the_table_definitions(ledger: Ledger) -> None:
    with ledger.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []
    assert migrate.current_revision(ledger.engine) == migrate.head_revision()


def test_migrating_twice_is_a_no_op(ledger: Ledger) -> None:
    _record(ledger, sample_payload(1))
    head = migrate.head_revision()
    assert ledger.migrate() == (head, head)  # what `connector migrate` reports as "already up to date"
    assert ledger.count_events() == 1


def test_accepted_event_keeps_raw_body_normalized_form_and_one_delivery_per_sink(ledger: Ledger) -> None:
    document = sample_payload(42, end_reason="transferred")
    result = _record(ledger, document, sinks=["hubspot", "salesforce"])
    assert result.status is IngestStatus.ACCEPTED and result.event_id == "42"

    row = ledger.get_event("42")
    assert row is not None
    assert json.loads(row["body"]) == document
    normalized = json.loads(row["normalized"])
    assert normalized["call"]["end_reason"] == {"value": "call_transferred", "raw": "transferred", "known": True}
    assert row["end_reason"] == "call_transferred"
    assert row["contact_key"] == normalized["record"]["phone"]["e164"]
    assert row["received_at"].tzinfo is not None
    assert abs((datetime.now(UTC) - row["received_at"]).total_seconds()) < 60

    found = ledger.deliveries_for("42")
    assert [(d["sink"], d["status"], d["attempts"]) for d in found] == [
        ("hubspot", DeliveryStatus.PENDING, 0),
        ("salesforce", DeliveryStatus.PENDING, 0),
    ]


def test_do_not_call_deliveries_get_the_highest_priority(ledger: Ledger) -> None:
    _record(ledger, sample_payload(1, end_reason="do_not_call"), sinks=["s"])
    _record(ledger, sample_payload(2, end_reason="hung_up"), sinks=["s"])
    assert ledger.deliveries_for("1")[0]["priority"] < ledger.deliveries_for("2")[0]["priority"]


def test_same_id_same_content_is_a_duplicate_even_reformatted(ledger: Ledger) -> None:
    document = sample_payload(7)
    assert _record(ledger, document).status is IngestStatus.ACCEPTED
    event = parse_webhook(document)
    reformatted = json.dumps(document, indent=4, sort_keys=True).encode()
    again = ledger.record_event(
        event, body=reformatted, content_type="application/json", content_hash=content_hash(document), sinks=["s"]
    )
    assert again.status is IngestStatus.DUPLICATE
    assert ledger.count_events() == 1
    assert ledger.deliveries_for("7") == []  # the duplicate created no delivery either
    assert ledger.list_quarantine() == []


def test_same_id_different_content_is_a_conflict_and_the_body_is_kept(ledger: Ledger) -> None:
    _record(ledger, sample_payload(8, end_reason="hung_up"))
    changed = sample_payload(8, end_reason="do_not_call")
    result = _record(ledger, changed)
    assert result.status is IngestStatus.CONFLICT
    assert result.quarantine_id is not None
    kept = ledger.get_quarantined(result.quarantine_id)
    assert kept is not None
    assert json.loads(kept["body"]) == changed
    assert (kept["http_status"], kept["code"], kept["event_id"]) == (409, "id_conflict", "8")
    assert json.loads(ledger.get_event("8")["normalized"])["call"]["end_reason"]["value"] == "hung_up"


def test_concurrent_inserts_of_one_id_accept_exactly_one(ledger: Ledger) -> None:
    document = sample_payload(99)
    results: list[IngestStatus] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def post() -> None:
        try:
            start.wait()
            results.append(_record(ledger, document, sinks=["s"]).status)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(results) == sorted([IngestStatus.ACCEPTED] + [IngestStatus.DUPLICATE] * 7)
    assert ledger.count_events() == 1
    assert len(ledger.deliveries_for("99")) == 1


def test_quarantine_keeps_the_body_and_why(ledger: Ledger) -> None:
    body = b"\x00\xffnot json at all"
    qid = ledger.quarantine(
        RejectedBody(
            body=body,
            content_type="text/plain",
            http_status=415,
            code="unsupported_media_type",
            detail="not JSON",
            errors=[{"path": "<body>", "message": "x"}],
            truncated=True,
        )
    )
    row = ledger.get_quarantined(qid)
    assert row is not None
    assert row["body"] == body
    assert (row["http_status"], row["code"], row["body_truncated"]) == (415, "unsupported_media_type", True)
    assert json.loads(row["errors"]) == [{"path": "<body>", "message": "x"}]
    listed = ledger.list_quarantine()
    assert [r["id"] for r in listed] == [qid] and "body" not in listed[0]

    ledger.note_replay(qid, "still refused: 415", settled=False)
    assert [r["id"] for r in ledger.list_quarantine()] == [qid]
    ledger.note_replay(qid, "accepted as event 1", settled=True)
    assert ledger.list_quarantine() == []
    assert [r["replay_result"] for r in ledger.list_quarantine(include_replayed=True)] == ["accepted as event 1"]


def test_ping_reports_a_store_that_is_not_migrated(tmp_path) -> None:
    from connector.errors import StoreError
    from connector.ledger.engine import make_engine
    from tests.support.settings import make_settings

    bare = Ledger(make_engine(make_settings(f"sqlite:///{tmp_path / 'empty.db'}").store))
    try:
        bare.ping()
    except StoreError as exc:
        assert "not at the current revision" in str(exc)
    else:
        raise AssertionError("ping accepted an unmigrated store")


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path) -> None:
    from tests.support.settings import make_settings

    opened = Ledger.open(make_settings(f"sqlite:///{tmp_path / 'w.db'}").store)
    with opened.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    opened.dispose()


def test_stored_times_are_utc_on_every_backend(ledger: Ledger) -> None:
    _record(ledger, sample_payload(5))
    with ledger.engine.connect() as connection:
        raw = connection.execute(sa.text("SELECT received_at FROM events")).scalar_one()
    stored = ledger.get_event("5")["received_at"]
    assert stored.utcoffset().total_seconds() == 0
    text = str(raw)
    assert text.startswith(stored.strftime("%Y-%m-%d %H:%M:%S"))


@pytest.mark.parametrize("quarantine_id", [0, -1, 2**63, 10**22])
def test_an_id_no_row_can_have_finds_nothing_on_both_backends(ledger: Ledger, quarantine_id: int) -> None:
    """PostgreSQL would refuse the comparison (`bigint out of range`); it must simply name no row."""
    assert ledger.get_quarantined(quarantine_id) is None
