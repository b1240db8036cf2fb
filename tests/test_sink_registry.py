"""Sinks come from the `connector.sinks` entry-point group: a third-party package adds one without
touching the core; an unknown type names what is installed."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.config import parse_settings
from connector.errors import ConfigError
from connector.sinks.base import Sink
from connector.sinks.registry import build_sink, installed_sink_types
from tests.support.plugins import installed_distribution

ACME_SINK = textwrap.dedent("""
    from connector.sinks.base import ActionResult, SinkCapabilities

    class AcmeSink:
        capabilities = SinkCapabilities()
        def __init__(self, name, settings):
            self.name, self.url = name, settings.model_extra["url"]
        def open(self, gate): pass
        def close(self): pass
        def execute(self, action, context): return ActionResult(crm_id="1")
        def lookup(self, action, context): return None
        def check_auth(self): pass

    def factory(name, settings):
        return AcmeSink(name, settings)
""")


@pytest.fixture
def third_party_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An installed distribution `acme-sink` (a .dist-info on sys.path) registering type `acme`."""
    with installed_distribution(
        tmp_path,
        monkeypatch,
        name="acme-sink",
        modules={"acme_sink.py": ACME_SINK},
        entry_points={"acme": "acme_sink:factory"},
    ) as folder:
        yield folder


def settings_with(sink: dict) -> object:
    return parse_settings(
        {"receiver": {"auth": {"tokens": ["t"]}}, "sinks": {"crm": sink}}, source="t", base_dir=Path("."), environ={}
    )


def test_builtin_sinks_are_registered_through_the_same_group() -> None:
    assert {"http"} <= set(installed_sink_types())


def test_a_third_party_sink_is_found_and_built(third_party_package: Path) -> None:
    assert "acme" in installed_sink_types()
    settings = settings_with({"type": "acme", "url": "https://acme.example", "mapping": "m.yaml"})
    sink = build_sink("crm", settings.sinks["crm"])
    assert isinstance(sink, Sink) and sink.url == "https://acme.example"


def test_an_unknown_type_lists_the_installed_ones() -> None:
    settings = settings_with({"type": "pipedrive", "mapping": "m.yaml"})
    with pytest.raises(ConfigError) as exc:
        build_sink("crm", settings.sinks["crm"])
    assert "no sink type 'pipedrive' is installed" in str(exc.value) and "http" in str(exc.value)
