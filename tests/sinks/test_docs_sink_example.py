"""docs/sinks.md's "A complete example" is code that works: its block is installed as a plugin package
(`acme_connector`, entry point `acme`) and run through the sink contract suite, the real engine against the
recording endpoint, and its settings' rule (https, or http to this machine only)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connector.config import parse_settings
from connector.default_mappings import default_mapping_path
from connector.engine.worker import Worker
from connector.ledger import Ledger
from connector.testing.contract import SinkContract
from connector.testing.endpoint import ActionEndpoint
from tests.support.delivery import drain, ingest
from tests.support.http_harness import HttpHarness
from tests.support.plugins import installed_distribution
from tests.support.recorder import Recorder
from tests.support.settings import TOKEN

DOCS = Path(__file__).parents[2] / "docs" / "sinks.md"


def example_source() -> str:
    """The Python block of docs/sinks.md that starts with `# acme_connector/sink.py`."""
    blocks = re.findall(r"```python\n(# acme_connector/sink\.py\n.*?)```", DOCS.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/sinks.md should have exactly one `# acme_connector/sink.py` block"
    return blocks[0]


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The docs' example installed as a plugin; yields its module."""
    modules = {"acme_connector/__init__.py": "", "acme_connector/sink.py": example_source()}
    with installed_distribution(
        tmp_path / "site",
        monkeypatch,
        name="acme-connector",
        modules=modules,
        entry_points={"acme": "acme_connector.sink:factory"},
    ):
        import acme_connector.sink

        yield acme_connector.sink


class AcmeHarness(HttpHarness):
    """The example against ActionEndpoint, which speaks its API: the `http` sink's harness, with Acme's keys."""

    def sink_config(self) -> dict[str, Any]:
        return {
            "type": "acme",
            "url": self.endpoint.url,
            "api_key": self.endpoint.token,
            "mapping": str(default_mapping_path("hubspot")),
        }


class TestDocsExampleSinkContract(SinkContract):
    @pytest.fixture
    def harness(self, acme: Any) -> Iterator[AcmeHarness]:
        with ActionEndpoint() as endpoint:
            harness = AcmeHarness(endpoint)
            yield harness
            harness.close()


def acme_settings(store_url: str, url: str, api_key: str) -> Any:
    document = {
        "receiver": {"auth": {"tokens": [TOKEN]}},
        "store": {"url": store_url},
        "sinks": {
            "acme": {"type": "acme", "mapping": str(default_mapping_path("hubspot")), "url": url, "api_key": api_key}
        },
        "worker": {"poll_interval_s": 0.05, "retry": {"schedule_s": [0.1, 0.1], "jitter": 0, "quick_wait_s": 0.01}},
    }
    return parse_settings(document, source="<test>", base_dir=Path("."), environ={})


def test_the_example_delivers_through_the_engine_to_a_plain_http_loopback_server(
    acme: Any, recorder: Recorder, tmp_path: Path
) -> None:
    settings = acme_settings(f"sqlite:///{tmp_path / 'ledger.db'}", recorder.url, recorder.token)
    ledger = Ledger.open(settings.store)
    try:
        worker = Worker(settings, ledger=ledger)
        worker.open()
        first = ingest(ledger, 1, sinks=("acme",), end_reason="schedule_call_back")
        recorder.fail_next(1, status=502)  # the first write (the contact) gets a 502: it may have been applied
        drain(worker)
        second = ingest(ledger, 2, sinks=("acme",), record_phone_number="+12025550177")
        drain(worker)
        worker.close()
        rows = [ledger.deliveries_for(event_id)[0] for event_id in (first, second)]
        states, attempts = [r["status"] for r in rows], [r["attempts"] for r in rows]
    finally:
        ledger.dispose()
    assert states == ["succeeded", "succeeded"]
    assert attempts == [1, 1]  # the 502 was retried inside the attempt (OutcomeUnknown: looked up, then sent)
    assert recorder.duplicates() == {}
    assert f"2x-{first}:activity" in recorder.keys() and f"2x-{second}:activity" in recorder.keys()


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://api.acme.example", True),
        ("http://127.0.0.1:18400", True),
        ("http://localhost:18400/", True),
        ("http://[::1]:18400", True),
        ("http://api.acme.example", False),
        ("http://127.0.0.1.evil.example", False),
        ("ftp://127.0.0.1", False),
    ],
)
def test_the_example_settings_take_https_or_http_to_this_machine(acme: Any, url: str, accepted: bool) -> None:
    section = {"type": "acme", "mapping": "m.yaml", "url": url, "api_key": "k"}
    if accepted:
        assert acme.AcmeSettings.model_validate(section).url == url.rstrip("/")
    else:
        with pytest.raises(ValidationError, match="https://"):
            acme.AcmeSettings.model_validate(section)
