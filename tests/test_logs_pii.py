"""Logs never carry personal data: no phone number, name or transcript text in any log line, through
receiving, refusing, delivering, retrying, dead-lettering and pausing — in plain and JSON format."""

from __future__ import annotations

import json
import logging

import pytest
import requests

from connector.engine.worker import Worker
from connector.logs import JsonFormatter, PlainFormatter, mask_phone
from connector.sample import sample_payload
from tests.support.delivery import drain, engine_settings
from tests.support.serving import Served

PHONE = "+12025550199"
SECRETS = [
    PHONE,
    "2025550199",
    "202-555-0199",
    "(202) 555-0199",
    "Zebulon",
    "Quixote",
    "tangerine passphrase",
    "4111 1111 1111 1111",
]


def personal_payload(event_id: int, **overrides: object) -> dict:
    document = sample_payload(
        event_id,
        record_phone_number="(202) 555-0199",
        record_first_name="Zebulon",
        record_last_name="Quixote",
        **overrides,
    )
    document["transcript"] = [{"role": "User", "content": "my tangerine passphrase and card 4111 1111 1111 1111"}]
    return document


@pytest.mark.parametrize("formatter", [PlainFormatter("%(message)s"), JsonFormatter()], ids=["plain", "json"])
def test_no_personal_data_in_any_log_line(
    served: Served, recorder, caplog: pytest.LogCaptureFixture, formatter: logging.Formatter
) -> None:
    caplog.set_level(logging.DEBUG)
    headers = {"Authorization": served.token, "Content-Type": "application/json"}
    for event_id in (1, 2, 3):
        assert (
            requests.post(
                served.url, data=json.dumps(personal_payload(event_id)), headers=headers, timeout=5
            ).status_code
            == 202
        )
    assert (
        requests.post(
            served.url, data=json.dumps(personal_payload(1, end_reason="hung_up")), headers=headers, timeout=5
        ).status_code
        == 409
    )  # conflict: body quarantined
    bad = personal_payload(4)
    bad["call"]["duration"] = -1
    assert requests.post(served.url, data=json.dumps(bad), headers=headers, timeout=5).status_code == 422
    assert (
        requests.post(
            served.url,
            data=json.dumps(personal_payload(5)),
            headers={"Authorization": PHONE, "Content-Type": "application/json"},
            timeout=5,
        ).status_code
        == 401
    )

    settings = engine_settings(served.settings.store.url, recorder.url)
    from connector.ledger import Ledger

    ledger = Ledger.open(settings.store)
    for event_id in ("1", "2", "3"):
        ledger.deliveries.add_missing(event_id, ["rec"], 10)
    worker = Worker(settings, ledger=ledger)
    worker.open()
    recorder.fail_next(3, status=503)  # retries
    drain(worker)
    recorder.token = "revoked"  # pause
    ledger.deliveries.requeue(event_id="2")
    drain(worker, rounds=3)
    ledger.dispose()

    lines = [formatter.format(record) for record in caplog.records]
    assert len(lines) > 10, "the scenario must actually log"
    leaks = [(secret, line) for line in lines for secret in SECRETS if secret in line]
    assert leaks == []


def test_mask_phone_keeps_only_what_support_needs() -> None:
    assert mask_phone(PHONE) == "+1******0199"
    assert mask_phone(None) == "-"
    # Raw numbers that did not parse: never garbled ("12345" read "122345"), never mostly shown
    assert mask_phone("12345") == "****5"
    assert mask_phone("+1...") == "****."
    assert mask_phone("123") == "***"
    assert mask_phone("5550143") == "****143"
    assert mask_phone("+4930123") == "****0123"
    assert mask_phone("+1202555\x000143") == "+1**********0143"  # escaped first (NUL as \\x00), then masked


@pytest.mark.parametrize(
    "formatter",
    [PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"), JsonFormatter()],
    ids=["plain", "json"],
)
def test_a_payload_value_cannot_forge_or_split_a_log_line(
    served_sqlite: Served, caplog: pytest.LogCaptureFixture, formatter: logging.Formatter
) -> None:
    """An id with a newline and a terminal escape is logged on one line, its control characters escaped; an id
    with a NUL (refused with 422) leaves no raw NUL in the logs either."""
    caplog.set_level(logging.DEBUG)
    forged = "42\n2026-01-01 00:00:00 CRITICAL connector.security: FORGED\x1b[31m"
    headers = {"Authorization": served_sqlite.token, "Content-Type": "application/json"}
    accepted = requests.post(served_sqlite.url, data=json.dumps(sample_payload(forged)), headers=headers, timeout=5)
    assert accepted.status_code == 202
    refused = requests.post(
        served_sqlite.url, data=json.dumps(sample_payload("NUL\x00FORGED")), headers=headers, timeout=5
    )
    assert refused.status_code == 422
    lines = [formatter.format(record) for record in caplog.records if record.name.startswith("connector")]
    mentioning = [line for line in lines if "FORGED" in line]
    assert mentioning, "the post should be logged with its id"
    for line in lines:
        assert "\n" not in line and "\x00" not in line and "\x1b" not in line
    if isinstance(formatter, PlainFormatter):
        assert any("42\\n2026-01-01" in line and "FORGED\\x1b[31m" in line for line in mentioning)


def test_plain_formatter_keeps_tracebacks_readable() -> None:
    """Our own traceback keeps its line breaks; only the message and fields are escaped."""
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "connector.x", logging.ERROR, __file__, 1, "failed for %s", ("a\nb",), sys.exc_info()
        )
    text = PlainFormatter("%(message)s").format(record)
    assert text.startswith("failed for a\\nb\nTraceback")
    assert "ValueError: boom" in text


@pytest.mark.parametrize("formatter", [PlainFormatter("%(message)s"), JsonFormatter()], ids=["plain", "json"])
def test_a_senders_long_values_are_cut_in_the_log_line(
    served: Served, caplog: pytest.LogCaptureFixture, formatter: logging.Formatter
) -> None:
    """A refused 5,000-character id made a 5,148-character line; a body may be 2 MB."""
    caplog.set_level(logging.INFO)
    headers = {"Authorization": served.token, "Content-Type": "application/json"}
    long_id, long_reason = "i" * 5_000, "r" * 300
    refused = requests.post(served.url, data=json.dumps(sample_payload(long_id)), headers=headers, timeout=5)
    accepted = requests.post(
        served.url, data=json.dumps(sample_payload(77, end_reason=long_reason)), headers=headers, timeout=5
    )
    assert (refused.status_code, accepted.status_code) == (422, 202)
    lines = [formatter.format(r) for r in caplog.records if r.name.startswith("connector")]
    assert any("...(+4744 chars)" in line for line in lines), lines  # the refused id, cut with what was left out
    assert not any("r" * 20 in line for line in lines), lines  # an unknown end_reason is never logged at all
    assert max(len(line) for line in lines) < 1_000


@pytest.mark.parametrize("formatter", [PlainFormatter("%(message)s"), JsonFormatter()], ids=["plain", "json"])
def test_an_unknown_end_reason_is_logged_as_unknown(
    served: Served, caplog: pytest.LogCaptureFixture, formatter: logging.Formatter
) -> None:
    """end_reason is free text when 2X did not document it: a sender's note with a name and a number must stay in
    the stored event, not reach the INFO line."""
    caplog.set_level(logging.INFO)
    headers = {"Authorization": served.token, "Content-Type": "application/json"}
    odd = {"id": "dbg2", "call": {"end_reason": "Zebulon +12025550111"}}
    assert requests.post(served.url, data=json.dumps(odd), headers=headers, timeout=5).status_code == 202
    known = sample_payload(78, end_reason="no_answer")
    assert requests.post(served.url, data=json.dumps(known), headers=headers, timeout=5).status_code == 202
    accepted = {r.event_id: formatter.format(r) for r in caplog.records if r.getMessage() == "event accepted"}
    assert {r.end_reason for r in caplog.records if r.getMessage() == "event accepted"} == {"unknown", "no_answer"}
    assert "Zebulon" not in accepted["dbg2"] and "2025550111" not in accepted["dbg2"]
    assert "unknown" in accepted["dbg2"] and "no_answer" in accepted["78"]
    assert not any("Zebulon" in formatter.format(r) for r in caplog.records)
    stored = served.ledger.get_event("dbg2")
    assert stored is not None and stored["end_reason"] == "Zebulon +12025550111"  # kept verbatim where it belongs
