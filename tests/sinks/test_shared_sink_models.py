"""The models every sink shares: the Retry-After parser and the tracker of writes whose outcome is unknown."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from requests.structures import CaseInsensitiveDict

from connector.errors import OutcomeUnknown, PermanentError, TransientError
from connector.sinks.retry_after import parse_retry_after, retry_after_header
from connector.sinks.uncertain import UncertainWrites

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10", 10.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        (b"7", 7.0),
        (4, 4.0),
        ("Fri, 04 Dec 2026 12:00:30 GMT", 30.0),  # an HTTP date, RFC 9110 §10.2.3
        ("Fri, 04 Dec 2026 11:59:00 GMT", 0.0),  # in the past: no wait
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: object, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected  # type: ignore[arg-type]


def test_retry_after_header_ignores_the_header_case() -> None:
    assert retry_after_header({"retry-after": "3"}) == 3.0
    assert retry_after_header(CaseInsensitiveDict({"RETRY-AFTER": "4"})) == 4.0
    assert retry_after_header({"Content-Type": "text/plain"}) is None
    assert retry_after_header(None) is None


def test_outcome_unknown_is_transient_and_not_permanent() -> None:
    error = OutcomeUnknown("read timed out")
    assert isinstance(error, TransientError) and not isinstance(error, PermanentError)


def test_uncertain_writes_mark_settle_and_keep_the_first_time() -> None:
    tracker = UncertainWrites()
    tracker.mark(["a", "b"])
    first = tracker.since("a")
    tracker.mark(["a"])
    assert tracker.since("a") == first
    assert "a" in tracker and tracker.keys() == {"a", "b"}
    tracker.settle(["a", "missing"])
    assert "a" not in tracker and tracker.since("a") is None and tracker.keys() == {"b"}


def test_uncertain_writes_expire_and_stay_bounded() -> None:
    expired = UncertainWrites(ttl_s=0.0)
    expired.mark(["gone"])
    assert "gone" not in expired
    bounded = UncertainWrites(max_keys=3)
    bounded.mark(str(i) for i in range(10))
    assert len(bounded.keys()) == 3
