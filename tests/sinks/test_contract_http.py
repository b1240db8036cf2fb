"""The sink contract (connector.testing.contract) against the built-in ``http`` sink and a loopback endpoint.

This harness is the worked example of docs/sinks.md, "Contract tests".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.errors import PermanentError, TransientError
from connector.sinks import http as http_sink
from connector.sinks.http import HttpSink
from connector.testing.contract import SinkContract
from connector.testing.endpoint import ActionEndpoint
from connector.testing.harness import CountingGate
from tests.support.http_harness import HttpHarness


class TestHttpSinkContract(SinkContract):
    @pytest.fixture
    def harness(self) -> Iterator[HttpHarness]:
        with ActionEndpoint() as endpoint:
            harness = HttpHarness(endpoint)
            yield harness
            harness.close()


def test_the_documented_example_is_this_harness() -> None:
    """docs/sinks.md, "Contract tests", shows this harness and test class: every code block there is verbatim in
    tests/support/http_harness.py or in this file."""
    docs = (Path(__file__).parents[2] / "docs" / "sinks.md").read_text()
    section = docs.split("## Contract tests", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2
    source = Path(__file__).read_text() + (Path(__file__).parents[1] / "support" / "http_harness.py").read_text()
    for block in blocks:
        assert block in source, block.splitlines()[0]


# -- the contract can fail: sinks broken on purpose ------------------------------------------------------------


@pytest.fixture
def endpoint_harness() -> Iterator[HttpHarness]:
    with ActionEndpoint() as endpoint:
        harness = HttpHarness(endpoint)
        yield harness
        harness.close()


def test_a_sink_whose_lookup_finds_nothing_fails_the_contract(
    endpoint_harness: HttpHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(HttpSink, "lookup", lambda self, action, context: None)
    with pytest.raises(AssertionError):
        SinkContract().test_a_write_whose_answer_was_lost_is_found_by_lookup(endpoint_harness)


def test_a_sink_that_retries_everything_fails_the_contract(
    endpoint_harness: HttpHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sink that calls every failure transient would retry revoked credentials and invalid data forever."""
    monkeypatch.setattr(
        http_sink, "_classify", lambda answer, may_write=False: TransientError(f"HTTP {answer.status_code}")
    )
    with pytest.raises(TransientError):
        SinkContract().test_rejected_credentials_raise_auth_error(endpoint_harness)


def test_a_sink_that_drops_the_crm_message_fails_the_contract(
    endpoint_harness: HttpHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        http_sink, "_classify", lambda answer, may_write=False: PermanentError(f"HTTP {answer.status_code}")
    )
    with pytest.raises(AssertionError):
        SinkContract().test_a_validation_error_raises_permanent_error_with_the_crm_message(endpoint_harness)


def test_a_sink_that_bypasses_the_rate_gate_fails_the_contract(
    endpoint_harness: HttpHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = HttpSink.open

    def open_with_a_private_gate(self: HttpSink, gate: Any) -> None:
        opened(self, CountingGate())  # a gate of its own: the shared budget never hears of its requests

    monkeypatch.setattr(HttpSink, "open", open_with_a_private_gate)
    with pytest.raises(AssertionError):
        SinkContract().test_every_request_waits_for_the_shared_rate_budget(endpoint_harness)
