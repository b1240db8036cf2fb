"""Retention: past `store.retention_days` the store keeps no trace of a settled call's person (phone, name,
transcript, answers), on SQLite and the real PostgreSQL, while what exactly-once needs stays: a late retry of a purged
call is still a duplicate, a different body under its id still a conflict, and nothing purged is delivered again."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select, update

from connector.cli import main
from connector.config import Settings
from connector.default_mappings import default_mapping_path
from connector.engine.worker import Worker
from connector.errors import ConnectorError
from connector.ledger import DeliveryStatus, IngestStatus, Ledger, RejectedBody
from connector.ledger._clock import utcnow
from connector.ledger.retention import PURGED_NORMALIZED, cutoff
from connector.ledger.schema import contact_cache, deliveries, events, field_state, metadata
from connector.ops.replay import replay_dead_letters, replay_event
from connector.ops.reports import event_status
from connector.payload import parse_webhook
from connector.receiver.ingest import content_hash
from connector.sample import sample_payload
from tests.support.delivery import drain, engine_settings, statuses
from tests.support.recorder import Recorder

# What only the purged call's person said or is: none of it may be left anywhere in the store.
PURGED_PERSON = {
    "record_phone_number": "+12025550177",
    "record_first_name": "Zelda",
    "record_last_name": "Quintero",
    "question_fields": {"case_number": "Qcase-741"},
    "transcript": [
        {"role": "User", "content": "Hello, Zelda speaking."},
        {"role": "Assistant", "content": "Thanks Zelda, your birthday 1980-07-04 is on file."},
    ],
}
MARKERS = ("2025550177", "Zelda", "Quintero", "Qcase-741", "1980-07-04")
KEPT_PERSON = {"record_phone_number": "+14155550123", "record_first_name": "Yusuf", "record_last_name": "Kept"}


def _post(ledger: Ledger, event_id: int, **fields: Any) -> tuple[dict[str, Any], IngestStatus]:
    """Record a webhook as the receiver does; the document and how the ledger took it."""
    document = sample_payload(event_id, **fields)
    result = ledger.record_event(
        parse_webhook(document),
        body=json.dumps(document).encode(),
        content_type="application/json",
        content_hash=content_hash(document),
        sinks=["rec"],
    )
    return document, result.status


def _store_text(ledger: Ledger) -> str:
    """Every row of every table as text (bytes decoded): what someone reading the store could find."""
    lines = []
    with ledger.engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                values = [bytes(v).decode("utf-8", "replace") if isinstance(v, bytes | memoryview) else v for v in row]
                lines.append(f"{table.name}: {values}")
    return "\n".join(lines)


def _opened(settings: Settings, ledger: Ledger) -> Worker:
    worker = Worker(settings, ledger=ledger)
    worker.open()
    return worker


def _with_retention(settings: Settings, days: int) -> Settings:
    return settings.model_copy(update={"store": settings.store.model_copy(update={"retention_days": days})})


def test_a_purge_leaves_no_trace_of_a_settled_call_and_keeps_exactly_once(
    ledger: Ledger, store_url: str, recorder: Recorder, tmp_path
) -> None:
    # A do-not-call for the person retention will purge: delivered, so the connector remembers the opt-out.
    settings = engine_settings(store_url, recorder.url)
    old_document, status = _post(ledger, 1, end_reason="do_not_call", **PURGED_PERSON)
    assert status is IngestStatus.ACCEPTED
    worker = _opened(settings, ledger)
    drain(worker)
    assert statuses(ledger, "1") == ["succeeded"]
    # A second call of theirs, dead-lettered by a CRM refusal (a mapping writing a property the CRM lacks).
    mapping = yaml.safe_load(default_mapping_path("hubspot").read_text())
    mapping["activity"]["properties"]["reject_me"] = True
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(mapping))
    _post(ledger, 2, end_reason="no_answer", **PURGED_PERSON)
    drain(_opened(engine_settings(store_url, recorder.url, mapping=str(tmp_path / "m.yaml")), ledger))
    assert statuses(ledger, "2") == ["dead"]
    # Someone else's call, still waiting for its CRM: kept whole, however old.
    _post(ledger, 3, end_reason="no_answer", **KEPT_PERSON)
    ledger.quarantine(RejectedBody(b'{"record_first_name": "Zelda"', "application/json", 400, "invalid_json", "x", []))
    store = _store_text(ledger)
    assert all(marker in store for marker in MARKERS)  # the markers are there to be found before the purge
    with ledger.engine.connect() as connection:
        remembered = dict(connection.execute(select(field_state.c.property, field_state.c.value)).all())
    assert remembered.get("twox_do_not_call") == "true"
    before = utcnow() + timedelta(seconds=1)

    dry = ledger.retention.purge(before, dry_run=True)
    assert (dry.events, dry.quarantined, dry.unsettled_kept) == (2, 1, 1)
    assert dry.cached_contacts >= 1 and dry.answers >= 1
    assert _store_text(ledger) == store  # a dry run changes nothing
    counts = ledger.retention.purge(before)
    assert counts.as_dict() == {**dry.as_dict(), "more_left": False}

    # The test sink names a contact `contact-<phone>`; a CRM's own ids (HubSpot's numbers, Salesforce's 003…) say
    # nothing of the person, and are kept on purpose: they say which CRM record a call went to.
    store = _store_text(ledger).replace("contact-+12025550177", "contact-ID")
    assert [line for line in store.splitlines() if any(m in line for m in MARKERS)] == []
    assert "Yusuf" in store and "4155550123" in store  # the unsettled call keeps everything
    purged = ledger.get_event("1")
    assert purged is not None and purged["purged_at"] is not None
    assert (purged["body"], purged["normalized"], purged["contact_key"]) == (b"", PURGED_NORMALIZED, None)
    assert purged["end_reason"] == "do_not_call"  # a documented reason stays (counted on the dashboard)
    assert purged["content_hash"] == content_hash(old_document)
    with ledger.engine.connect() as connection:
        remembered = dict(connection.execute(select(field_state.c.property, field_state.c.value)).all())
    assert remembered["twox_do_not_call"] == "true"  # the opt-out the connector wrote is kept
    assert {v for v in remembered.values() if v is not None} == {"true"}  # yes/no flags only; answers are gone
    assert ledger.list_quarantine() == []

    # A late retry of the purged call is a duplicate: nothing is delivered again; another body under its id conflicts.
    assert _post(ledger, 1, end_reason="do_not_call", **PURGED_PERSON)[1] is IngestStatus.DUPLICATE
    assert _post(ledger, 1, end_reason="no_answer", **PURGED_PERSON)[1] is IngestStatus.CONFLICT
    # Nothing purged can be replayed: there is nothing left to send.
    with pytest.raises(ConnectorError, match="purged by retention"):
        replay_event(ledger, settings, "2")
    assert replay_dead_letters(ledger) == {"requeued": 0}
    assert statuses(ledger, "2") == ["dead"]
    writes = len(recorder.writes)
    drain(_opened(settings, ledger))
    assert statuses(ledger, "3") == ["succeeded"]
    assert {w.key.split(":")[0] for w in recorder.writes[writes:]} == {"2x-3"}
    report = event_status(ledger, "2")
    assert report is not None and report["purged_at"] and report["deliveries"][0]["plan"] is None
    assert [a["message"] for a in report["deliveries"][0]["attempts"]] == [None]
    assert report["deliveries"][0]["dead_reason"] is None
    assert all(action["result"] is None for action in report["deliveries"][0]["actions"])


def test_an_unknown_end_reason_is_purged_too(ledger: Ledger) -> None:
    """An undocumented end reason is the sender's free text: it may name the person."""
    _post(ledger, 7, end_reason="Zelda hung up", **PURGED_PERSON)
    with ledger.engine.begin() as connection:
        connection.execute(update(events).values(received_at=utcnow() - timedelta(days=40)))
    assert ledger.retention.purge(cutoff(30)).as_dict()["unsettled_kept"] == 1  # not delivered yet: kept whole
    with ledger.engine.begin() as connection:
        connection.execute(update(deliveries).values(status=DeliveryStatus.SUCCEEDED.value))
    assert ledger.retention.purge(cutoff(30)).events == 1
    assert ledger.get_event("7")["end_reason"] is None  # type: ignore[index]
    assert [m for m in MARKERS if m in _store_text(ledger)] == []


def test_a_worker_purges_past_retention_a_few_batches_at_a_time(
    ledger: Ledger, store_url: str, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _with_retention(engine_settings(store_url, recorder.url), days=30)
    for i in range(5):
        _post(ledger, 100 + i, end_reason="no_answer", record_phone_number=f"+1202555{2000 + i}")
    worker = _opened(settings, ledger)
    drain(worker)
    assert worker.purge_expired().events == 0  # delivered, but not 30 days old
    with ledger.engine.begin() as connection:
        old = utcnow() - timedelta(days=31)
        connection.execute(update(events).where(events.c.event_id != "104").values(received_at=old))
        connection.execute(update(contact_cache).values(updated_at=old))
    # The worker purges on its own once due; a bounded step at a time, coming back soon while some remain.
    first = ledger.retention.purge(cutoff(30), batch=3, max_batches=1)
    assert (first.events, first.more_left) == (3, True)
    worker._next_purge = 0.0  # due now (a worker's first purge comes a minute after its start)
    with caplog.at_level("INFO", logger="connector"):
        worker.run_once()
    purged = {e for e in ("100", "101", "102", "103", "104") if ledger.get_event(e)["purged_at"] is not None}  # type: ignore[index]
    assert purged == {"100", "101", "102", "103"}
    logged = [r for r in caplog.records if r.getMessage() == "retention: personal data purged"]
    assert len(logged) == 1 and logged[0].__dict__["events"] == 1 and logged[0].__dict__["retention_days"] == 30
    assert "+1202555" not in caplog.text  # the log line carries counts, never a number


def test_purge_command(ledger: Ledger, store_url: str, recorder: Recorder, tmp_path) -> None:
    config = tmp_path / "connector.yaml"
    config.write_text(yaml.safe_dump({"store": {"url": store_url}}))
    _post(ledger, 200, end_reason="no_answer", **PURGED_PERSON)
    no_retention = CliRunner().invoke(main, ["purge", "--config", str(config)])
    assert no_retention.exit_code == 2 and "store.retention_days" in no_retention.output

    unsettled = CliRunner().invoke(main, ["purge", "--config", str(config), "--older-than-days", "0"])
    assert unsettled.exit_code == 0, unsettled.output
    assert json.loads(unsettled.stdout)["events"] == 0
    assert "1 older call(s) kept whole" in unsettled.stderr

    drain(_opened(engine_settings(store_url, recorder.url), ledger))
    config.write_text(yaml.safe_dump({"store": {"url": store_url, "retention_days": 1}}))
    dry = CliRunner().invoke(main, ["purge", "--config", str(config), "--older-than-days", "0", "--dry-run"])
    assert json.loads(dry.stdout)["events"] == 1 and ledger.get_event("200")["purged_at"] is None  # type: ignore[index]
    done = CliRunner().invoke(main, ["purge", "--config", str(config), "--older-than-days", "0"])
    report = json.loads(done.stdout)
    assert (report["events"], report["dry_run"]) == (1, False)
    assert ledger.get_event("200")["purged_at"] is not None  # type: ignore[index]
    status = CliRunner().invoke(main, ["status", "--config", str(config), "200"])
    assert status.exit_code == 0 and "purged by retention on" in status.stdout
    assert "call    : no_answer\n" in status.stdout and "answered" not in status.stdout  # nothing it cannot know
    assert [m for m in MARKERS if m in status.stdout.replace("contact-+12025550177", "contact-ID")] == []


def test_a_purged_call_that_becomes_due_anyway_is_dead_lettered_not_sent(
    ledger: Ledger, store_url: str, recorder: Recorder
) -> None:
    """The backstop behind replay's refusal (a requeue racing a purge): a purged call's delivery is never planned."""
    settings = engine_settings(store_url, recorder.url)
    _post(ledger, 300, end_reason="no_answer", **PURGED_PERSON)
    drain(_opened(settings, ledger))
    ledger.retention.purge(utcnow() + timedelta(seconds=1))
    with ledger.engine.begin() as connection:
        connection.execute(update(deliveries).values(status=DeliveryStatus.PENDING.value, due_at=utcnow()))
    writes = len(recorder.writes)
    drain(_opened(settings, ledger))
    [delivery] = ledger.deliveries_for("300")
    assert delivery["status"] == "dead" and "purged by retention" in delivery["dead_reason"]
    assert len(recorder.writes) == writes


def test_every_kind_of_row_counts_against_a_steps_budget(ledger: Ledger) -> None:
    """A worker's step is bounded whatever it purges: old look-ups beyond the budget wait for the next step."""
    for i in range(7):
        ledger.sinks.cache_contact("rec", f"+1202555{3000 + i}", "contact", str(i))
    ledger.sinks.cache_contact("rec", "+12025559999", "contact", "fresh")
    with ledger.engine.begin() as connection:
        old = utcnow() - timedelta(days=40)
        connection.execute(update(contact_cache).where(contact_cache.c.crm_id != "fresh").values(updated_at=old))
    first = ledger.retention.purge(cutoff(30), batch=3, max_batches=2)
    assert (first.cached_contacts, first.more_left) == (6, True)
    second = ledger.retention.purge(cutoff(30), batch=3, max_batches=2)
    assert (second.cached_contacts, second.more_left) == (1, False)
    with ledger.engine.connect() as connection:
        assert list(connection.execute(select(contact_cache.c.crm_id)).scalars()) == ["fresh"]


def test_forgetting_a_person_erases_them_whatever_the_age_of_their_calls(
    ledger: Ledger, store_url: str, recorder: Recorder, tmp_path
) -> None:
    settings = engine_settings(store_url, recorder.url)
    _post(ledger, 400, end_reason="do_not_call", **PURGED_PERSON)
    _post(ledger, 401, end_reason="no_answer", **KEPT_PERSON)
    drain(_opened(settings, ledger))
    _post(ledger, 402, end_reason="no_answer", **PURGED_PERSON)  # theirs, still waiting for the CRM
    refused = b'{"id": 9, "record_phone_number": "(202) 555-0177", "record_first_name": "Zelda"'
    ledger.quarantine(RejectedBody(refused, "application/json", 400, "invalid_json", "x", []))
    ledger.quarantine(RejectedBody(b'{"record_phone_number": "4155550123"', "application/json", 400, "bad", "x", []))
    config = tmp_path / "connector.yaml"
    config.write_text(yaml.safe_dump({"store": {"url": store_url}}))

    dry = CliRunner().invoke(main, ["forget", "--config", str(config), "--phone", "(202) 555-0177", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)
    assert report["phone"] == "+1******0177" and "2025550177" not in dry.stdout
    assert (report["events"], report["quarantined"], report["unsettled_kept"]) == (1, 1, 1)
    assert report["cached_contacts"] == 1 and report["answers"] >= 1
    assert ledger.get_event("400")["purged_at"] is None  # type: ignore[index]

    done = CliRunner().invoke(main, ["forget", "--config", str(config), "--phone", "+1 202 555 0177"])
    assert done.exit_code == 0 and json.loads(done.stdout) == {**report, "dry_run": False}
    assert "1 call(s) of this number kept whole" in done.stderr
    store = _store_text(ledger).replace("contact-+12025550177", "contact-ID")
    # Only the call still being delivered holds them now (its event and delivery rows); the other person is untouched.
    left = [line for line in store.splitlines() if any(m in line for m in MARKERS)]
    assert left and all("'402'" in line for line in left)
    assert "Yusuf" in store and "4155550123" in store and len(ledger.list_quarantine()) == 1
    with ledger.engine.connect() as connection:
        kept = connection.execute(
            select(field_state.c.value).where(
                field_state.c.contact_ref.endswith("+12025550177"), field_state.c.property == "twox_do_not_call"
            )
        ).scalar_one()
    assert kept == "true"  # their opt-out outlives the erasure
    assert _post(ledger, 400, end_reason="do_not_call", **PURGED_PERSON)[1] is IngestStatus.DUPLICATE

    drain(_opened(settings, ledger))  # once the last call settles, forgetting again leaves nothing of them
    again = CliRunner().invoke(main, ["forget", "--config", str(config), "--phone", "+12025550177"])
    assert json.loads(again.stdout)["events"] == 1 and json.loads(again.stdout)["unsettled_kept"] == 0
    store = _store_text(ledger).replace("contact-+12025550177", "contact-ID")
    assert [line for line in store.splitlines() if any(m in line for m in MARKERS)] == []
    wrong = CliRunner().invoke(main, ["forget", "--config", str(config), "--phone", "not a number"])
    assert wrong.exit_code == 2 and "--phone" in wrong.output
