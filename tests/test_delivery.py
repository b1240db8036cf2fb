"""The delivery engine in-process, on SQLite and the real PostgreSQL, against a recording HTTP endpoint:
exactly-once writes, retries, dead letters, paused and rate-limited sinks, precedence, replay."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import yaml

from connector.default_mappings import default_mapping_path
from connector.engine.worker import Worker
from connector.ledger import Ledger
from connector.ledger._clock import utcnow
from connector.ledger.schema import ActionStatus, deliveries, events
from connector.ops.replay import replay_dead_letters, replay_event
from tests.support.delivery import drain, engine_settings, ingest, statuses
from tests.support.recorder import Recorder


def make_worker(ledger: Ledger, settings) -> Worker:
    worker = Worker(settings, ledger=ledger)
    worker.open()
    return worker


def test_every_action_is_written_exactly_once(ledger: Ledger, store_url: str, recorder: Recorder) -> None:
    ids = [
        ingest(ledger, 100 + i, end_reason=reason, record_phone_number=f"+1202555{3000 + i}")
        for i, reason in enumerate(["call_transferred", "schedule_call_back", "do_not_call", "no_answer"])
    ]
    worker = make_worker(ledger, engine_settings(store_url, recorder.url))
    assert drain(worker) == 4
    assert all(statuses(ledger, i) == ["succeeded"] for i in ids)
    assert recorder.duplicates() == {}
    keys = recorder.keys()
    for event_id in ids:
        assert {f"2x-{event_id}:contact", f"2x-{event_id}:activity", f"2x-{event_id}:contact-update"} <= keys
    assert "2x-101:task:callback" in keys and "2x-100:task:callback" not in keys
    activity = recorder.by_key()["2x-100:activity"][0]
    assert activity.action["properties"]["hs_call_external_id"] == "2x-100"
    assert activity.contact == recorder.by_key()["2x-100:contact"][0].id  # the call is on the resolved contact


def test_do_not_call_is_claimed_before_a_backlog(ledger: Ledger, store_url: str, recorder: Recorder) -> None:
    for i in range(30):
        ingest(ledger, 1000 + i, end_reason="no_answer", record_phone_number=f"+1202555{1000 + i:04d}")
    dnc = ingest(ledger, 5000, end_reason="do_not_call", record_phone_number="+12025559999")
    claimed = ledger.deliveries.claim("w", ["rec"], limit=5, lease_s=30)
    assert claimed[0].event_id == dnc


def test_one_delivery_per_contact_at_a_time(ledger: Ledger, recorder: Recorder) -> None:
    first = ingest(ledger, 1, end_reason="no_answer")
    second = ingest(ledger, 2, end_reason="hung_up")  # same phone number
    other = ingest(ledger, 3, end_reason="hung_up", record_phone_number="+14155550100")
    claimed = ledger.deliveries.claim("a", ["rec"], limit=10, lease_s=30)
    assert sorted(c.event_id for c in claimed) == [first, other]
    assert ledger.deliveries.claim("b", ["rec"], limit=10, lease_s=30) == []  # second waits for first
    assert second not in [c.event_id for c in claimed]


def test_transient_errors_retry_without_duplicates(ledger: Ledger, store_url: str, recorder: Recorder) -> None:
    event_id = ingest(ledger, 7)
    recorder.fail_next(4, status=503)  # more than the quick retries: the attempt is rescheduled
    worker = make_worker(ledger, engine_settings(store_url, recorder.url))
    drain(worker)
    assert statuses(ledger, event_id) == ["succeeded"]
    assert recorder.duplicates() == {}
    outcomes = [a["outcome"] for a in ledger.deliveries.attempts_for(ledger.deliveries_for(event_id)[0]["id"])]
    assert outcomes[0] == "retry" and outcomes[-1] == "succeeded"


def test_transient_errors_past_the_schedule_dead_letter(ledger: Ledger, store_url: str, recorder: Recorder) -> None:
    event_id = ingest(ledger, 8)
    recorder.fail_next(100, status=502)
    worker = make_worker(ledger, engine_settings(store_url, recorder.url))
    drain(worker)
    [delivery] = ledger.deliveries_for(event_id)
    assert delivery["status"] == "dead" and "gave up after 4 attempts" in delivery["dead_reason"]


def test_a_permanent_error_is_dead_lettered_at_once_with_the_crm_message(
    ledger: Ledger, store_url: str, recorder: Recorder, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    mapping = yaml.safe_load(default_mapping_path("hubspot").read_text())
    mapping["activity"]["properties"]["reject_me"] = True
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(mapping))
    event_id = ingest(ledger, 9)
    worker = make_worker(ledger, engine_settings(store_url, recorder.url, mapping=str(tmp_path / "m.yaml")))
    with caplog.at_level("WARNING", logger="connector"):
        drain(worker)
    # A dead letter needs someone: WARNING, not INFO (a default-level log showed nothing)
    assert [r.getMessage() for r in caplog.records if r.getMessage() == "delivery dead"] == ["delivery dead"]
    [delivery] = ledger.deliveries_for(event_id)
    assert delivery["status"] == "dead"
    assert "Property reject_me does not exist" in delivery["dead_reason"]
    assert [a["outcome"] for a in ledger.deliveries.attempts_for(delivery["id"])] == ["dead"]
    # The contact was resolved before the failing action; a replay after the fix does not resolve it again.
    (tmp_path / "m.yaml").write_text(default_mapping_path("hubspot").read_text())
    assert replay_dead_letters(ledger) == {"requeued": 1}
    drain(make_worker(ledger, engine_settings(store_url, recorder.url, mapping=str(tmp_path / "m.yaml"))))
    assert statuses(ledger, event_id) == ["succeeded"]
    assert recorder.duplicates() == {}
    assert f"2x-{event_id}:activity" in recorder.keys()


def test_bad_credentials_pause_the_sink_and_a_fix_resumes_it(
    ledger: Ledger, store_url: str, recorder: Recorder
) -> None:
    ids = [ingest(ledger, 20 + i, record_phone_number=f"+1202555{2000 + i}") for i in range(5)]
    recorder.token = "rotated-token"
    worker = make_worker(ledger, engine_settings(store_url, recorder.url))
    drain(worker, rounds=5)
    state = ledger.sinks.status("rec")
    assert state.paused and "credentials rejected" in state.reason
    assert all(s == "pending" for i in ids for s in statuses(ledger, i))  # nothing dead-lettered
    assert all(d["attempts"] == 0 for i in ids for d in ledger.deliveries_for(i))
    recorder.token = "recorder-token"  # credentials work again
    time.sleep(1.1)  # auth_probe_s
    drain(worker)
    assert not ledger.sinks.status("rec").paused
    assert all(statuses(ledger, i) == ["succeeded"] for i in ids)
    assert recorder.duplicates() == {}


def test_429_blocks_the_sink_without_failing_the_delivery(ledger: Ledger, store_url: str, recorder: Recorder) -> None:
    event_id = ingest(ledger, 30)
    recorder.fail_next(1, status=429, retry_after=0.5)
    worker = make_worker(ledger, engine_settings(store_url, recorder.url))
    worker.run_once()
    assert ledger.sinks.status("rec").blocked_until > utcnow()
    [delivery] = ledger.deliveries_for(event_id)
    assert delivery["status"] == "retry_scheduled" and delivery["attempts"] == 0
    time.sleep(0.6)
    drain(worker)
    assert statuses(ledger, event_id) == ["succeeded"] and recorder.duplicates() == {}


def test_crm_said_yes_but_the_ledger_did_not_record_it(ledger: Ledger, store_url: str, recorder: Recorder) -> None:
    """The in-between state of a crash after the CRM call: the retry looks up, never writes twice."""
    event_id = ingest(ledger, 40)
    worker = make_worker(ledger, engine_settings(store_url, recorder.url))
    claimed = ledger.deliveries.claim("dead-worker", ["rec"], limit=1, lease_s=0.1)
    plan = worker._runner._plan(claimed[0], worker._runtimes["rec"].mapping)  # noqa: SLF001 - building the state
    resolve, activity = plan.actions[0], plan.actions[1]
    # The dead worker resolved the contact, started the activity, the CRM wrote it, then the process died.
    runtime = worker._runtimes["rec"]  # noqa: SLF001
    from connector.sinks.base import ExecutionContext

    context = ExecutionContext()
    contact = runtime.sink.execute(resolve, context)
    ledger.deliveries.journal_mark(
        claimed[0].id,
        resolve.key,
        resolve.kind,
        ActionStatus.SUCCEEDED,
        crm_id=contact.crm_id,
        result=contact.model_dump(mode="json"),
    )
    ledger.deliveries.journal_mark(claimed[0].id, activity.key, activity.kind, ActionStatus.IN_FLIGHT)
    context.results[resolve.key] = contact
    runtime.sink.execute(activity, context)
    time.sleep(0.2)
    assert ledger.deliveries.sweep_expired() == 1
    drain(worker)
    assert statuses(ledger, event_id) == ["succeeded"]
    assert recorder.duplicates() == {}
    assert len(recorder.by_key()[f"2x-{event_id}:activity"]) == 1


def test_redelivery_and_replay_never_write_twice(ledger: Ledger, store_url: str, recorder: Recorder) -> None:
    event_id = ingest(ledger, 50, end_reason="schedule_call_back")
    settings = engine_settings(store_url, recorder.url)
    worker = make_worker(ledger, settings)
    drain(worker)
    writes = len(recorder.writes)
    ingest(ledger, 50, end_reason="schedule_call_back")  # 2X sends the same event again: a duplicate
    assert len(ledger.deliveries_for(event_id)) == 1
    assert replay_event(ledger, settings, event_id) == {"event_id": event_id, "requeued": 1, "new_deliveries": 0}
    drain(worker)
    assert statuses(ledger, event_id) == ["succeeded"]
    assert len(recorder.writes) == writes and recorder.duplicates() == {}


def test_an_older_call_never_overwrites_a_newer_one(ledger: Ledger, store_url: str, recorder: Recorder) -> None:
    older = ingest(ledger, 60, end_reason="not_interested")
    newer = ingest(ledger, 61, end_reason="no_answer")
    with ledger.engine.begin() as connection:  # make 60 older than 61 by a day, then deliver 61 first
        day_before = utcnow() - timedelta(days=1)
        connection.execute(events.update().where(events.c.event_id == older).values(received_at=day_before))
        connection.execute(
            deliveries.update()
            .where(deliveries.c.event_id == older)
            .values(call_time=day_before, due_at=utcnow() + timedelta(seconds=0.5))
        )
    worker = make_worker(ledger, engine_settings(store_url, recorder.url))
    drain(worker)
    time.sleep(0.6)  # the older call becomes due
    drain(worker)
    assert statuses(ledger, newer) == ["succeeded"] and statuses(ledger, older) == ["succeeded"]
    written = recorder.by_key()
    assert written[f"2x-{newer}:contact-update"][0].at < written[f"2x-{older}:contact-update"][0].at
    updates = recorder.by_key()
    newer_fields = {f["property"] for f in updates[f"2x-{newer}:contact-update"][0].action["fields"]}
    assert "hs_lead_status" in newer_fields
    # not_interested (rank 50) outranks no_answer (10): its status is written even though it is older...
    older_fields = {f["property"] for f in updates[f"2x-{older}:contact-update"][0].action["fields"]}
    assert "hs_lead_status" in older_fields
    # ...but its "last call" fields are not: the newer call wrote them.
    assert "twox_last_call_outcome" not in older_fields


def test_a_mapping_error_is_dead_and_replayable_after_the_fix(
    ledger: Ledger, store_url: str, recorder: Recorder, tmp_path
) -> None:
    """What cannot be left out (the activity's key; an optional field's failing template only drops that field)
    stops the call: dead, then delivered by a replay after the mapping is fixed."""
    text = default_mapping_path("hubspot").read_text()
    broken = text.replace('idempotency_key: "{{ id | crm_key }}"', 'idempotency_key: "{{ meta.missing_key }}"', 1)
    assert broken != text
    (tmp_path / "m.yaml").write_text(broken)
    event_id = ingest(ledger, 70)
    settings = engine_settings(store_url, recorder.url, mapping=str(tmp_path / "m.yaml"))
    drain(make_worker(ledger, settings))
    [delivery] = ledger.deliveries_for(event_id)
    assert (
        delivery["status"] == "dead"
        and "m.yaml:" in delivery["dead_reason"]
        and "missing_key" in delivery["dead_reason"]
    )
    assert recorder.writes == []
    (tmp_path / "m.yaml").write_text(text)
    replay_event(ledger, settings, event_id)
    drain(make_worker(ledger, settings))
    assert statuses(ledger, event_id) == ["succeeded"]


def test_expired_leases_of_a_dead_worker_are_recovered(ledger: Ledger, store_url: str, recorder: Recorder) -> None:
    event_id = ingest(ledger, 80)
    assert len(ledger.deliveries.claim("crashed", ["rec"], limit=5, lease_s=0.1)) == 1
    time.sleep(0.2)
    worker = make_worker(ledger, engine_settings(store_url, recorder.url))
    worker._last_sweep = 0  # noqa: SLF001 - sweep now
    drain(worker)
    assert statuses(ledger, event_id) == ["succeeded"]


def test_a_contact_resolved_once_is_reused_by_later_calls(ledger: Ledger, store_url: str, recorder: Recorder) -> None:
    """Read-your-writes across workers: the second call for a new number neither searches nor creates."""
    first = ingest(ledger, 90, end_reason="no_answer", record_phone_number="+13125550199")
    second = ingest(ledger, 91, end_reason="hung_up", record_phone_number="+13125550199")
    drain(make_worker(ledger, engine_settings(store_url, recorder.url)))
    written = recorder.by_key()
    assert f"2x-{first}:contact" in written and f"2x-{second}:contact" not in written
    assert written[f"2x-{second}:activity"][0].contact == written[f"2x-{first}:contact"][0].id
    journal = ledger.deliveries.journal(ledger.deliveries_for(second)[0]["id"])
    assert journal[f"2x-{second}:contact"].result["detail"] == {"resolved_by": "contact_cache"}


def test_a_crm_id_in_meta_is_not_answered_from_the_cache(ledger: Ledger, store_url: str, recorder: Recorder) -> None:
    ingest(ledger, 92, end_reason="no_answer", record_phone_number="+13125550177")
    explicit = ingest(
        ledger, 93, end_reason="no_answer", record_phone_number="+13125550177", meta={"hubspot_contact_id": "777"}
    )
    drain(make_worker(ledger, engine_settings(store_url, recorder.url)))
    assert f"2x-{explicit}:contact" in recorder.by_key()


def test_the_receiver_prioritises_do_not_call_as_the_mapping_defines_it(
    ledger: Ledger, store_url: str, recorder: Recorder, tmp_path
) -> None:
    """A custom mapping that treats "not interested" as do-not-call gets those deliveries first too."""
    import json as _json

    import requests

    from connector.sample import sample_payload
    from tests.support.serving import serve

    mapping = yaml.safe_load(default_mapping_path("hubspot").read_text())
    next(b for b in mapping["outcomes"] if b["name"] == "not_interested")["contact"]["twox_do_not_call"] = True
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(mapping))
    settings = engine_settings(store_url, recorder.url, mapping=str(tmp_path / "m.yaml"))
    serving = serve(settings, ledger)
    served = next(serving)
    try:
        for event_id, reason in ((1, "not_interested"), (2, "hung_up")):
            answer = requests.post(
                served.url,
                data=_json.dumps(sample_payload(event_id, end_reason=reason)),
                headers={"Authorization": served.token, "Content-Type": "application/json"},
                timeout=10,
            )
            assert answer.status_code == 202
    finally:
        serving.close()
    assert ledger.deliveries_for("1")[0]["priority"] == 0 and ledger.deliveries_for("2")[0]["priority"] == 10


def test_a_running_worker_picks_up_a_fixed_mapping_for_the_replay(
    ledger: Ledger, store_url: str, recorder: Recorder, tmp_path
) -> None:
    text = default_mapping_path("hubspot").read_text()
    mapping_file = tmp_path / "live.yaml"
    mapping_file.write_text(
        text.replace('idempotency_key: "{{ id | crm_key }}"', 'idempotency_key: "{{ meta.missing_key }}"', 1)
    )
    settings = engine_settings(store_url, recorder.url, mapping=str(mapping_file))
    worker = make_worker(ledger, settings)
    event_id = ingest(ledger, 71)
    drain(worker)
    assert statuses(ledger, event_id) == ["dead"]
    mapping_file.write_text("version: [broken")  # a half-saved file keeps the old mapping in use
    worker._last_reload = 0  # noqa: SLF001 - check now instead of in 2 s
    worker.run_once()
    mapping_file.write_text(text)
    worker._last_reload = 0  # noqa: SLF001
    replay_event(ledger, settings, event_id)
    drain(worker)
    assert statuses(ledger, event_id) == ["succeeded"]


@contextmanager
def after_the_first_write(recorder: Recorder, act: Callable[[], object]) -> Iterator[None]:
    """Slow the recorder a little and run ``act`` from another thread once its first write has landed, while the
    body of the ``with`` holds a claim of twelve."""
    recorder.slow_s = 0.02

    def wait_then_act() -> None:
        while not recorder.writes:
            time.sleep(0.005)
        act()

    actor = threading.Thread(target=wait_then_act)
    actor.start()
    try:
        yield
    finally:
        actor.join()


def test_a_mapping_edited_during_a_long_claim_applies_to_the_rest_of_it(
    ledger: Ledger, store_url: str, recorder: Recorder, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sink that takes its calls one at a time ran a whole claim (up to batch_size) before the worker looked at the
    mapping again: a tester saw an edit applied after 62 s, with about 90 calls planned from the old mapping. The
    housekeeping now runs between the deliveries of such a claim."""
    from connector.engine import worker as worker_module

    monkeypatch.setattr(worker_module, "MAPPING_CHECK_S", 0.05)
    text = default_mapping_path("hubspot").read_text()
    mapping_file = tmp_path / "live.yaml"
    mapping_file.write_text(text)
    settings = engine_settings(store_url, recorder.url, mapping=str(mapping_file), batch_size=12)
    ids = [ingest(ledger, 900 + i, record_phone_number=f"+1202555{4100 + i}") for i in range(12)]
    worker = make_worker(ledger, settings)
    edited = text.replace('hs_call_title: "2X call: {{ outcome.label }}"', 'hs_call_title: "edited"')
    with after_the_first_write(recorder, lambda: mapping_file.write_text(edited)):
        assert worker.run_once() == 12  # one claim held all twelve
    titles = [recorder.by_key()[f"2x-{event_id}:activity"][0].action["properties"]["hs_call_title"] for event_id in ids]
    assert titles[0] != "edited" and titles[-3:] == ["edited"] * 3, titles


def test_a_stop_during_a_long_claim_gives_the_rest_back_at_once(
    ledger: Ledger, store_url: str, recorder: Recorder
) -> None:
    """SIGTERM finishes the delivery in hand and releases the rest: with a claim of a one-call-at-a-time sink it used
    to run the whole claim first (a minute at a second per call)."""
    settings = engine_settings(store_url, recorder.url, batch_size=12)
    ids = [ingest(ledger, 950 + i, record_phone_number=f"+1202555{4200 + i}") for i in range(12)]
    worker = make_worker(ledger, settings)
    with after_the_first_write(recorder, worker.stop_requested.set):
        ran = worker.run_once()
    assert 1 <= ran <= 2
    assert sorted(s for e in ids for s in statuses(ledger, e)) == ["pending"] * (12 - ran) + ["succeeded"] * ran
