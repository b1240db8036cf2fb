"""No call moves a connector-owned contact property backwards; do-not-call is never cleared."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.plan import FieldUpdate
from connector.precedence import WrittenField, may_write

T0 = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
EARLIER, LATER = T0 - timedelta(hours=1), T0 + timedelta(hours=1)


def update(rule: str, *, value: object = "X", rank: int = 50, at: datetime = T0) -> FieldUpdate:
    return FieldUpdate(property="p", value=value, rule=rule, rank=rank, call_time=at)


def written(rank: int = 50, at: datetime = T0) -> WrittenField:
    return WrittenField(value="old", rank=rank, call_time=at, event_id="e0")


@pytest.mark.parametrize(
    ("new", "previous", "allowed"),
    [
        (update("newest_call"), None, True),
        (update("newest_call", at=LATER), written(), True),
        (update("newest_call", at=EARLIER), written(), False),  # an older call arriving late
        (update("newest_call", at=T0), written(), False),  # the same call replayed
        (update("ranked", rank=10, at=LATER), written(rank=50), False),  # "no answer" after "not interested"
        (update("ranked", rank=90, at=EARLIER), written(rank=50), True),  # higher rank wins even if older
        (update("ranked", rank=50, at=LATER), written(rank=50), True),
        (update("ranked", rank=50, at=EARLIER), written(rank=50), False),
        (update("always", at=EARLIER), written(), True),
        (update("sticky_true", value=True, at=EARLIER), written(rank=100), True),
        (update("sticky_true", value=False), None, False),  # nothing ever clears do-not-call
        (update("sticky_true", value="false"), written(), False),
    ],
)
def test_may_write(new: FieldUpdate, previous: WrittenField | None, allowed: bool) -> None:
    assert may_write(new, previous) is allowed


def test_order_of_arrival_does_not_change_the_result() -> None:
    """Whatever order three calls arrive in, the ranked field ends at the same value."""
    import itertools

    calls = [
        update("ranked", value="NOT_INTERESTED", rank=50, at=T0),
        update("ranked", value="ATTEMPTED", rank=10, at=LATER),
        update("ranked", value="CONNECTED", rank=50, at=EARLIER),
    ]
    finals = set()
    for order in itertools.permutations(calls):
        state: WrittenField | None = None
        for call in order:
            if may_write(call, state):
                state = WrittenField(call.value, call.rank, call.call_time, "e")
        finals.add(state.value)
    assert finals == {"NOT_INTERESTED"}
