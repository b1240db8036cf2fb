"""A custom field created while the connector runs is fitted like any other: the sink described the object before
the field existed, Salesforce refuses the long value (STRING_TOO_LONG), and the sink describes afresh and sends the
write again, cut, in the same delivery — on the single Composite path and on the sObject Collections batch path,
through the real engine, simple-salesforce and the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.emulators.salesforce.schema import FieldDef
from connector.emulators.salesforce.server import SalesforceEmulator
from connector.errors import PermanentError
from connector.sinks.fit import MARKER
from tests.support.delivery import drain, ingest, journal, statuses
from tests.support.salesforce import Engine, engine_settings, seed_contacts, with_question_fields

FIELD = "TwoX_Q_Notes__c"
ANSWER = "Wants a call back after the budget review in March."  # 50 characters; the field holds 20
NOTES = FieldDef(FIELD, "Notes", "string", length=20, custom=True)


@pytest.fixture
def org() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator() as running:
        yield running


@pytest.fixture
def engine(org: SalesforceEmulator, tmp_path: Path) -> Iterator[Engine]:
    mapping = with_question_fields(tmp_path, notes=FIELD)
    yield (running := Engine(engine_settings(org, tmp_path, mapping=mapping)))
    running.close()


def create_notes_field(org: SalesforceEmulator) -> None:
    """What the tester did while `connector serve` ran: Text(20) on Contact and Lead (then crm-setup: nothing to do)."""
    for sobject in ("Contact", "Lead"):
        org.add_field(sobject, NOTES)


def assert_cut_and_named(org: SalesforceEmulator, engine: Engine, event_id: str) -> None:
    assert statuses(engine.ledger, event_id) == ["succeeded"]
    update = journal(engine.ledger, event_id)[f"2x-{event_id}:contact-update"]
    assert FIELD in update["detail"]["truncated"] and "skipped_fields" not in update["detail"]
    stored = org.get(update["object"], update["crm_id"])[FIELD]
    assert len(stored) == 20 and stored.endswith(MARKER) and ANSWER.startswith(stored[: -len(MARKER)])


def test_the_emulator_refuses_the_long_answer_as_salesforce_does(org: SalesforceEmulator, engine: Engine) -> None:
    create_notes_field(org)
    contact_id = org.seed_ids["contact_john"]
    with pytest.raises(PermanentError) as caught:
        engine.sink.connection.call(
            lambda sf: sf.restful(f"sobjects/Contact/{contact_id}", method="PATCH", json={FIELD: ANSWER}), where="t"
        )
    assert (caught.value.status, caught.value.code) == (400, "STRING_TOO_LONG")
    assert caught.value.crm_message == f"Notes: data value too large: {ANSWER} (max length=20)"
    assert caught.value.details == [{"code": "STRING_TOO_LONG", "message": caught.value.crm_message, "fields": [FIELD]}]


def test_single_path_describes_afresh_and_cuts_a_field_created_while_running(
    org: SalesforceEmulator, engine: Engine
) -> None:
    ingest(engine.ledger, 1, sinks=("sf",))
    drain(engine.worker)  # the sink describes Contact and Lead now, without the field
    create_notes_field(org)
    before = org.api_calls()
    event_id = ingest(engine.ledger, 2, sinks=("sf",), question_fields={"notes": ANSWER})
    drain(engine.worker)
    assert_cut_and_named(org, engine, event_id)
    # resolve (SOSL, or none when the number is known) aside: the refused Composite, one describe, the fitted one
    assert org.api_calls() - before <= 4


def test_batch_path_describes_afresh_and_cuts_a_field_created_while_running(
    org: SalesforceEmulator, engine: Engine
) -> None:
    known = seed_contacts(org, 3)
    for i, (phone, _) in enumerate(known):  # the sink describes Contact/Lead; the numbers are known afterwards
        ingest(engine.ledger, 10 + i, sinks=("sf",), record_phone_number=phone)
    drain(engine.worker)
    create_notes_field(org)
    since = len(org.request_log)
    ids = [
        ingest(engine.ledger, 20 + i, sinks=("sf",), record_phone_number=phone, question_fields={"notes": ANSWER})
        for i, (phone, _) in enumerate(known)
    ]
    drain(engine.worker)
    for event_id in ids:
        assert_cut_and_named(org, engine, event_id)
    patches = [
        r for r in org.request_log[since:] if r["path"].endswith("/composite/sobjects") and r["method"] == "PATCH"
    ]
    assert [len(r["body"]["records"]) for r in patches] == [3]  # the updates went through sObject Collections
    describes = [r for r in org.request_log[since:] if "describe" in r["path"] or "describe" in str(r.get("body"))]
    assert len(describes) == 1  # one fresh describe of Contact serves all three


@pytest.mark.parametrize(
    ("refused", "outdated"),
    [
        ({FIELD: ANSWER}, True),  # the cached describe does not list the field: created since
        ({"LastName": "x" * 50}, True),  # its cached limit (80) accepts the value: shortened since
        ({"LastName": "x" * 81}, False),  # its cached limit refuses it too (a value the sink was told to keep)
        ({"Email": "x" * 100}, False),  # never cut (an email), describing again changes nothing
    ],
    ids=["unknown_field", "stale_limit", "known_limit", "never_cut"],
)
def test_outdated_tells_a_stale_describe_from_a_value_that_cannot_fit(
    org: SalesforceEmulator, engine: Engine, refused: dict[str, str], outdated: bool
) -> None:
    types = engine.sink._parts.types
    types.ensure(["Contact"])
    assert types.outdated("Contact", refused) is outdated
