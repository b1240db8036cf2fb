"""What an operator sees: `connector status` (sink health, audit trail), `connector replay`, and
/readyz reporting a live worker and a paused sink."""

from __future__ import annotations

import json
from pathlib import Path

import requests
import yaml
from click.testing import CliRunner

from connector.cli import main
from connector.engine.worker import Worker
from connector.ledger import Ledger
from tests.support.delivery import drain, engine_settings, ingest
from tests.support.recorder import Recorder
from tests.support.serving import Served, serve


def config_file(tmp_path: Path, store_url: str, recorder: Recorder) -> Path:
    settings = engine_settings(store_url, recorder.url)
    path = tmp_path / "ops.yaml"
    sink = settings.sinks["rec"]
    path.write_text(
        yaml.safe_dump(
            {
                "receiver": {"auth": {"tokens": ["t" * 20]}},
                "store": {"url": store_url},
                "sinks": {
                    "rec": {
                        "type": "http",
                        "url": recorder.url,
                        "mapping": sink.mapping,
                        "headers": {"Authorization": f"Bearer {recorder.token}"},
                    }
                },
            }
        )
    )
    return path


def open_worker(ledger: Ledger, store_url: str, recorder: Recorder) -> Worker:
    """A worker delivering to the recorder (the `rec` sink of `config_file`), opened."""
    worker = Worker(engine_settings(store_url, recorder.url), ledger=ledger)
    worker.open()
    return worker


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_status_shows_the_full_audit_trail(ledger: Ledger, store_url: str, recorder: Recorder, tmp_path: Path) -> None:
    event_id = ingest(ledger, 501, end_reason="schedule_call_back")
    recorder.fail_next(2, status=503)
    worker = open_worker(ledger, store_url, recorder)
    drain(worker)
    code, out, _ = run("status", "--json", "--config", str(config_file(tmp_path, store_url, recorder)), event_id)
    assert code == 0
    [delivery] = json.loads(out)["deliveries"]
    assert delivery["status"] == "succeeded"
    assert delivery["plan"]["outcome"]["bundle"] == "callback"
    assert [a["outcome"] for a in delivery["attempts"]][-1] == "succeeded"
    assert {a["key"] for a in delivery["actions"]} == {
        f"2x-{event_id}:{k}" for k in ("contact", "activity", "contact-update", "task:callback")
    }
    assert set(delivery["crm_ids"]) == {"resolve_contact", "create_activity", "update_contact", "create_task"}
    code, text, _ = run("status", "--config", str(config_file(tmp_path, store_url, recorder)), event_id)
    assert code == 0 and len(text.splitlines()) < 20, text
    assert f"Event {event_id}, received " in text
    assert "call    : schedule_call_back; answered yes" in text
    assert "rec: delivered after 2 attempts" in text  # two 503s (quick retries, then a scheduled one), then success
    assert "outcome : callback" in text
    rows = [row.strip() for row in text.splitlines()]
    labels = [
        next(row for row in rows if row.startswith(label + " "))
        for label in ("contact", "call logged", "contact updated", "task created")
    ]
    assert [rows.index(row) for row in labels] == sorted(rows.index(row) for row in labels)  # plan order
    assert "lead    : +1******0143" in text and "Full audit trail: connector status --config " in text


def test_a_paused_sink_shows_in_status_and_readyz(
    ledger: Ledger, store_url: str, recorder: Recorder, tmp_path: Path
) -> None:
    ingest(ledger, 502)
    recorder.token = "revoked"
    settings = engine_settings(store_url, recorder.url)
    worker = Worker(settings, ledger=ledger)
    worker.open()
    drain(worker, rounds=3)
    code, out, _ = run("status", "--json", "--config", str(config_file(tmp_path, store_url, recorder)))
    health = json.loads(out)["sinks"]["rec"]
    assert code == 0 and health["paused"] is True and "credentials rejected" in health["paused_reason"]
    assert health["deliveries"] == {"pending": 1} and health["oldest_due"] is not None
    code, text, _ = run("status", "--config", str(config_file(tmp_path, store_url, recorder)))
    [header, row] = text.splitlines()[:2]
    assert header.split() == ["SINK", "STATE", "BACKLOG", "DEAD", "OLDEST", "DUE", "NOTE"]
    assert row.split()[:4] == ["rec", "paused", "1", "0"] and "credentials rejected" in row
    assert "Delivery workers alive: 1" in text
    serving = serve(settings, ledger)
    served: Served = next(serving)
    ready = requests.get(served.base_url + "/readyz", timeout=5).json()
    serving.close()
    assert ready["checks"]["worker"] == "1 alive"
    assert ready["sinks"]["rec"]["paused"] is True


def test_readyz_is_503_without_a_live_worker_when_sinks_are_configured(
    ledger: Ledger, store_url: str, recorder: Recorder
) -> None:
    serving = serve(engine_settings(store_url, recorder.url), ledger)
    served: Served = next(serving)
    answer = requests.get(served.base_url + "/readyz", timeout=5)
    serving.close()
    assert answer.status_code == 503 and answer.json()["checks"]["worker"] == "no live delivery worker"


def test_replay_commands(ledger: Ledger, store_url: str, recorder: Recorder, tmp_path: Path) -> None:
    config = str(config_file(tmp_path, store_url, recorder))
    code, _, err = run("replay", "--config", config)
    assert code == 2 and "exactly one of" in err
    event_id = ingest(ledger, 503)
    code, out, _ = run("replay", "--config", config, "--event", event_id)
    assert code == 0 and json.loads(out) == {"event_id": event_id, "requeued": 1, "new_deliveries": 0}
    code, out, _ = run("replay", "--config", config, "--dead-letter")
    assert json.loads(out) == {"requeued": 0}
    code, _, err = run("replay", "--config", config, "--event", "nope")
    assert code == 1 and "no event with id 'nope'" in err


def test_replay_refuses_a_sink_that_is_not_configured(
    ledger: Ledger, store_url: str, recorder: Recorder, tmp_path: Path
) -> None:
    """`--sink nosuch` made a delivery no worker would ever take, shown for ever in status and /metrics."""
    config = str(config_file(tmp_path, store_url, recorder))
    event_id = ingest(ledger, 504)
    for mode in (["--event", event_id], ["--dead-letter"]):
        code, out, err = run("replay", "--config", config, *mode, "--sink", "nosuch")
        assert code == 2 and out == "", mode
        assert "no sink named 'nosuch'; configured: rec" in err, mode
    assert [d["sink"] for d in ledger.deliveries_for(event_id)] == ["rec"]
    code, out, err = run("replay", "--config", config, "--quarantine", "--sink", "rec")
    assert code == 2 and out == "" and "--sink goes with --event or --dead-letter, not --quarantine" in err
    code, out, _ = run("replay", "--config", config, "--event", event_id, "--sink", "rec")
    assert code == 0 and json.loads(out) == {"event_id": event_id, "requeued": 1, "new_deliveries": 0}


def test_status_text_says_why_a_call_failed_and_what_to_do(
    ledger: Ledger, store_url: str, recorder: Recorder, tmp_path: Path
) -> None:
    dead_id = ingest(ledger, 503)
    recorder.fail_next(1, status=400)
    worker = open_worker(ledger, store_url, recorder)
    drain(worker)
    retried_id = ingest(ledger, 504, record_phone_number="+12025550177")
    recorder.fail_next(10, status=503)
    drain(worker, rounds=1)
    config = str(config_file(tmp_path, store_url, recorder))
    code, dead, _ = run("status", "--config", config, dead_id)
    assert code == 0
    assert "rec: dead-lettered (will not be retried on its own) after 1 attempt" in dead
    assert "  why     : The CRM refused the data as invalid" in dead
    assert f"  replay  : connector replay --config {Path(config).resolve()} --event {dead_id}" in dead
    code, retried, _ = run("status", "--config", config, retried_id)
    assert "rec: failed, will retry after 1 attempt" in retried
    assert "  next try: " in retried and " UTC" in retried.split("next try: ")[1].splitlines()[0]


def test_status_text_of_a_refused_write_shows_the_crms_message_and_that_nothing_was_written(
    ledger: Ledger, store_url: str, recorder: Recorder, tmp_path: Path
) -> None:
    event_id = ingest(ledger, 505)
    worker = open_worker(ledger, store_url, recorder)
    recorder.fail_next(1, status=201)  # the contact is resolved; then the call's activity is refused
    refusal = "Field Outcome__c: bad value\n\x1b[2Jforged line\u2028" + "x" * 600
    recorder.fail_next(1, status=400, body=refusal)
    drain(worker)
    code, text, _ = run("status", "--config", str(config_file(tmp_path, store_url, recorder)), event_id)
    assert code == 0 and "rec: dead-lettered" in text
    [said] = [line for line in text.splitlines() if line.startswith("  CRM said: ")]
    assert said.startswith("  CRM said: Field Outcome__c: bad value\\n\\x1b[2Jforged line\\u2028xxx")
    assert said.endswith(" chars)") and len(said) < 300 and "\x1b" not in text  # cut, escaped
    [logged] = [line.strip() for line in text.splitlines() if line.strip().startswith("call logged")]
    assert logged == "call logged     refused: not written"  # not in flight any more: the CRM said no
    assert "in_flight" not in text


def test_status_text_of_a_write_whose_answer_kept_being_lost_says_it_may_be_written(
    ledger: Ledger, store_url: str, recorder: Recorder, tmp_path: Path
) -> None:
    event_id = ingest(ledger, 506)
    worker = open_worker(ledger, store_url, recorder)
    recorder.fail_next(1, status=201)
    recorder.fail_next(50, status=502)  # the activity's POST may have been applied; no look-up ever answers
    for _ in range(30):  # through the whole retry schedule
        if ledger.deliveries.counts().get(("rec", "dead")) == 1:
            break
        drain(worker)
    code, text, _ = run("status", "--config", str(config_file(tmp_path, store_url, recorder)), event_id)
    assert code == 0 and "rec: dead-lettered" in text, text
    [logged] = [line.strip() for line in text.splitlines() if line.strip().startswith("call logged")]
    assert logged == "call logged     failed: outcome unknown, may be written"
