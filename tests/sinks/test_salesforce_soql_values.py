"""Values the Salesforce sink puts into SOQL and SOSL reach the org's parser intact.

Why: an idempotency key is data the sink does not control (it carries the event id, and a mapping may add more);
a quote, a backslash or a control character quoted wrongly either breaks the query (the delivery fails) or, worse,
matches another record. The sink quotes SOQL values with ``simple_salesforce.format_soql`` and escapes SOSL terms
with ``errors.sosl_term``; these tests send them through the real simple-salesforce to the emulator's parsers and
check that exactly the record holding the value comes back.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connector.emulators.salesforce.server import SalesforceEmulator
from connector.plan import CreateActivity
from connector.sinks.base import ActionResult, ExecutionContext
from connector.sinks.salesforce.errors import SOSL_RESERVED, sosl_term
from connector.sinks.salesforce.sink import SalesforceSink
from tests.support.salesforce import client, open_sink

VALUES = {
    "quote": "2x-O'Brien",
    "double_quote": '2x-say "hi"',
    "backslash": "2x-back\\slash",
    "trailing_backslash": "2x-end\\",
    "escaped_quote_lookalike": "2x-\\'",
    "newline": "2x-line\nbreak",
    "carriage_return": "2x-cr\rhere",
    "tab": "2x-tab\there",
    "backspace": "2x-bell\bback",
    "form_feed": "2x-form\ffeed",
    "unicode": "2x-Zoë ☎ 電話 𝄞",
    "injection": "2x-' OR Id != null OR CallObject = '",
    "like_wildcards": "2x-100%_sure",
}


def activity(value: str) -> CreateActivity:
    return CreateActivity(
        key=f"key:{value}", object="Task", idempotency_key=value, idempotency_property="CallObject", properties={}
    )


@pytest.fixture(scope="module")
def org() -> Iterator[tuple[SalesforceEmulator, SalesforceSink, dict[str, str]]]:
    """One org holding a Task per value (written by the plain client, so only the lookups go through the sink)."""
    with SalesforceEmulator() as emulator:
        sf = client(emulator)
        ids = {value: sf.Task.create({"Subject": "Call", "CallObject": value})["id"] for value in VALUES.values()}
        sink = open_sink(emulator)
        try:
            yield emulator, sink, ids
        finally:
            sink.close()


@pytest.mark.parametrize("value", list(VALUES.values()), ids=list(VALUES))
def test_a_lookup_by_idempotency_key_finds_exactly_its_record(
    org: tuple[SalesforceEmulator, SalesforceSink, dict[str, str]], value: str
) -> None:
    emulator, sink, ids = org
    stored = [t["CallObject"] for t in emulator.records("Task") if t["Id"] == ids[value]]
    assert stored == [value]  # the emulator kept the value as sent: the lookup below compares like with like
    found = sink.lookup(activity(value), ExecutionContext())
    assert isinstance(found, ActionResult) and found.crm_id == ids[value]
    assert sink.lookup(activity(value + "x"), ExecutionContext()) is None  # equality, not a pattern


def test_one_in_list_carries_every_value(org: tuple[SalesforceEmulator, SalesforceSink, dict[str, str]]) -> None:
    """The batch path's recheck: every key in one ``IN (…)`` list, one SOQL request, each record found once."""
    emulator, sink, ids = org
    actions = [activity(value) for value in VALUES.values()]
    sink.unsettle([a.key for a in actions])  # as if their answers had been lost: looked up before writing
    since, tasks_before = len(emulator.request_log), len(emulator.records("Task"))
    results = sink.execute_batch([(a, ExecutionContext()) for a in actions])
    queries = [r for r in emulator.request_log[since:] if "/query" in r["path"]]
    assert [getattr(r, "crm_id", r) for r in results] == [ids[value] for value in VALUES.values()]
    assert len(queries) == 1 and len(emulator.records("Task")) == tasks_before  # found, nothing written again


@pytest.mark.parametrize("char", sorted(SOSL_RESERVED))
def test_every_sosl_reserved_character_is_escaped(
    org: tuple[SalesforceEmulator, SalesforceSink, dict[str, str]], char: str
) -> None:
    emulator, _, _ = org
    sf = client(emulator)
    term = f"a{char}b"
    answer = sf.search(f"FIND {{{sosl_term(term)}}} IN PHONE FIELDS RETURNING Contact(Id)")
    assert answer["searchRecords"] == []  # accepted as one search word (a Contact's phone holds no such text)


def test_an_unescaped_brace_breaks_the_search(org: tuple[SalesforceEmulator, SalesforceSink, dict[str, str]]) -> None:
    """The control for the test above: the emulator's SOSL parser does refuse what the escaper prevents."""
    emulator, _, _ = org
    with pytest.raises(SalesforceMalformedRequest):
        client(emulator).search("FIND {a}b} IN PHONE FIELDS RETURNING Contact(Id)")
