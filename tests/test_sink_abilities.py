"""Optional sink abilities are Protocols checked once, when the registry builds a sink: a declaration the sink cannot
honour is refused with a clear error, a sink without abilities takes the single path, and the built-ins declare what
they have. Each sink type owns its settings model, validated through the registry like a built-in one."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.config import parse_settings
from connector.engine.batch import BatchingRunner
from connector.engine.single import SinkRuntime
from connector.errors import ConfigError
from connector.ledger import Ledger
from connector.ledger._clock import utcnow
from connector.ledger.schema import DeliveryOutcome
from connector.ops.crm_checks import setup_types
from connector.sinks.base import (
    SinkAbilities,
    SinkCapabilities,
    SinkDeclarationError,
)
from connector.sinks.http import HttpSink
from connector.sinks.hubspot.settings import HubSpotSinkSettings
from connector.sinks.registry import build_sink, settings_model
from connector.sinks.settings import PluginSinkSettings
from tests.support.delivery import drain, engine_settings, ingest, statuses, worker_on
from tests.support.recorder import Recorder

PLUGIN = """
from typing import Literal

from pydantic import Field
from connector.sinks.http import HttpSink, HttpSinkSettings
from connector.sinks.base import ActionResult, SinkCapabilities, SinkType
from connector.sinks.settings import SinkSettingsBase


class PlainSink:
    capabilities = SinkCapabilities()
    def __init__(self, name, settings): self.name, self.settings = name, settings
    def open(self, gate): pass
    def close(self): pass
    def execute(self, action, context): return ActionResult(crm_id="1")
    def lookup(self, action, context): return None
    def check_auth(self): pass


class BatchWithoutExecuteBatch(PlainSink):
    capabilities = SinkCapabilities(max_batch=50)


class CombineWithoutExecuteMany(PlainSink):
    capabilities = SinkCapabilities(combine_actions=True)


class BatchingSink(PlainSink):
    capabilities = SinkCapabilities(max_batch=50)
    def execute_batch(self, items): return [ActionResult(crm_id="1") for _ in items]


class AcmeSettings(SinkSettingsBase):
    url: str = Field(pattern=r"^https?://")
    retries: int = Field(3, ge=0)


class BatchingHttpSettings(HttpSinkSettings):
    type: Literal["acme-http"] = "acme-http"


class BatchingHttpSink(HttpSink):
    # the http sink with a batch form (one POST per item still) and no other optional ability

    capabilities = SinkCapabilities(max_batch=10)
    batches = []

    def execute_batch(self, items):
        BatchingHttpSink.batches.append([action.kind for action, _ in items])
        return [self.execute(action, context) for action, context in items]


plain = SinkType(settings_model=AcmeSettings, build=PlainSink)
overpromising_batch = SinkType(settings_model=AcmeSettings, build=BatchWithoutExecuteBatch)
overpromising_combine = SinkType(settings_model=AcmeSettings, build=CombineWithoutExecuteMany)
batching = SinkType(settings_model=AcmeSettings, build=BatchingSink)
batching_http = SinkType(settings_model=BatchingHttpSettings, build=BatchingHttpSink)
"""

TYPES = {
    "acme": "plain",
    "acme-batch": "overpromising_batch",
    "acme-combine": "overpromising_combine",
    "acme-batching": "batching",
    "acme-http": "batching_http",
    "acme-broken": "no_such_name",
}


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed distribution (a .dist-info on sys.path) registering the sink types of PLUGIN."""
    (tmp_path / "acme_abilities.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "acme_abilities-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-abilities\nVersion: 1.0\n")
    lines = "".join(f"{kind} = acme_abilities:{attr}\n" for kind, attr in TYPES.items())
    (info / "entry_points.txt").write_text("[connector.sinks]\n" + lines)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("acme_abilities", None)


def sinks_config(**sinks: dict) -> object:
    return parse_settings(
        {"receiver": {"auth": {"tokens": ["t"]}}, "sinks": sinks}, source="t", base_dir=Path("."), environ={}
    )


# -- declarations are checked once, when the sink is built ------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "missing"), [("acme-batch", "execute_batch"), ("acme-combine", "execute_many")], ids=["batch", "combine"]
)
def test_a_sink_declaring_an_ability_it_lacks_is_refused_when_built(acme: None, kind: str, missing: str) -> None:
    settings = sinks_config(crm={"type": kind, "url": "https://acme.example"})
    with pytest.raises(ConfigError) as exc:
        build_sink("crm", settings.sinks["crm"])
    [problem] = exc.value.problems
    assert problem.path == "sinks.crm.type" and missing in problem.message


def test_abilities_of_refuses_max_batch_without_execute_batch_and_accepts_it_with() -> None:
    class Batching:
        capabilities = SinkCapabilities(max_batch=10)

        def execute_batch(self, items: list) -> list:
            return []

    class Overpromising:
        capabilities = SinkCapabilities(max_batch=10)

    with pytest.raises(SinkDeclarationError, match="max_batch=10"):
        SinkAbilities.of(Overpromising())  # type: ignore[arg-type]
    sink = Batching()
    abilities = SinkAbilities.of(sink)  # type: ignore[arg-type]
    assert abilities.batch is sink and abilities.names() == ["batch"]


def test_a_consistent_third_party_sink_is_built_with_its_abilities(acme: None) -> None:
    settings = sinks_config(crm={"type": "acme-batching", "url": "https://acme.example"})
    sink = build_sink("crm", settings.sinks["crm"])
    assert SinkAbilities.of(sink).names() == ["batch"]


# -- each sink type owns its settings model ---------------------------------------------------------------------


def test_a_third_party_settings_model_validates_its_section_through_the_registry(acme: None) -> None:
    with pytest.raises(ConfigError) as exc:
        sinks_config(crm={"type": "acme", "url": "ftp://acme.example", "retries": -1, "retires": 2})
    paths = {p.path for p in exc.value.problems}
    assert paths == {"sinks.crm.url", "sinks.crm.retries", "sinks.crm.retires"}
    settings = sinks_config(crm={"type": "acme", "url": "https://acme.example"})
    section = settings.sinks["crm"]
    assert type(section).__name__ == "AcmeSettings" and section.retries == 3  # type: ignore[attr-defined]
    assert build_sink("crm", section).settings is section  # type: ignore[attr-defined]


def test_a_sink_type_that_cannot_be_loaded_is_a_problem_at_its_section(acme: None) -> None:
    with pytest.raises(ConfigError) as exc:
        sinks_config(crm={"type": "acme-broken"}, web={"type": "http", "url": "http://127.0.0.1:1"})
    [problem] = exc.value.problems
    assert problem.path == "sinks.crm" and "sink type 'acme-broken' cannot be loaded" in problem.message


def test_builtin_types_declare_their_models_and_unknown_types_keep_their_keys() -> None:
    assert settings_model("hubspot") is HubSpotSinkSettings
    assert settings_model("http").__name__ == "HttpSinkSettings"
    assert settings_model("not-installed") is PluginSinkSettings
    with pytest.raises(ConfigError) as exc:
        sinks_config(hubspot={"type": "hubspot", "base_url": "http://127.0.0.1:1"})
    assert [p.path for p in exc.value.problems] == ["sinks.hubspot.access_token"]  # the sink's name is kept


# -- the built-ins declare what they have -----------------------------------------------------------------------


def test_the_builtin_sinks_declare_their_abilities() -> None:
    settings = sinks_config(
        web={"type": "http", "url": "http://127.0.0.1:1"},
        hs={"type": "hubspot", "access_token": "t", "base_url": "http://127.0.0.1:1"},
        sf={"type": "salesforce", "instance_url": "http://127.0.0.1:1", "auth": {"session_id": "s"}},
    )
    found = {name: SinkAbilities.of(build_sink(name, settings.sinks[name])).names() for name in ("web", "hs", "sf")}
    assert found == {
        "web": [],
        "hs": ["batch", "resolve_many", "do_not_call", "do_not_call_many", "settling"],
        "sf": ["batch", "combined", "resolve_many", "do_not_call", "do_not_call_many", "settling"],
    }
    assert build_sink("hs", settings.sinks["hs"]).capabilities.rate_limited_wait_s == 10.0
    assert setup_types() == ["hubspot", "salesforce"]  # the http sink has no schema inspection


# -- the engine uses the computed abilities ---------------------------------------------------------------------


def test_a_sink_without_optional_abilities_is_driven_by_the_single_path(
    ledger: Ledger, store_url: str, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_batch(*args: object) -> list[str]:
        raise AssertionError("a sink without execute_batch must not reach the batch runner")

    monkeypatch.setattr(BatchingRunner, "_run_batch", no_batch)
    ids = [ingest(ledger, 700 + i, record_phone_number=f"+1202555{4000 + i}") for i in range(3)]
    with worker_on(engine_settings(store_url, recorder.url, batch_size=10)) as (ledger, worker):
        assert worker._runtimes["rec"].abilities == SinkAbilities()
        assert drain(worker) == 3
    assert all(statuses(ledger, i) == ["succeeded"] for i in ids)
    assert recorder.duplicates() == {}
    assert {f"2x-{i}:contact" for i in ids} <= recorder.keys()


def test_a_sink_with_only_a_batch_form_resolves_and_guards_one_by_one(
    acme: None, ledger: Ledger, store_url: str, recorder: Recorder
) -> None:
    settings = engine_settings(store_url, recorder.url, batch_size=10)
    section = {**settings.sinks["rec"].model_dump(), "type": "acme-http"}
    settings = settings.model_copy(update={"sinks": {"rec": settings_model("acme-http").model_validate(section)}})
    reasons = ["call_transferred", "schedule_call_back", "no_answer"]
    ids = [
        ingest(ledger, 740 + i, end_reason=reason, record_phone_number=f"+1202555{4100 + i}")
        for i, reason in enumerate(reasons)
    ]
    with worker_on(settings) as (ledger, worker):
        sink_class = type(worker._runtimes["rec"].sink)
        assert worker._runtimes["rec"].abilities.names() == ["batch"]
        assert drain(worker) == 3
    assert all(statuses(ledger, i) == ["succeeded"] for i in ids)
    assert recorder.duplicates() == {}
    kinds = [kind for batch in sink_class.batches for kind in batch]
    assert kinds.count("create_activity") == 3 and "resolve_contact" not in kinds  # resolved one by one
    assert max(len(batch) for batch in sink_class.batches) > 1
    assert {f"2x-{i}:contact" for i in ids} <= recorder.keys() and "2x-741:task:callback" in recorder.keys()


def test_a_rate_limit_without_retry_after_waits_the_sinks_declared_time(
    ledger: Ledger, store_url: str, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(HttpSink, "capabilities", SinkCapabilities(rate_limited_wait_s=42.0))
    ingest(ledger, 720)
    recorder.fail_next(1, status=429)
    with worker_on(engine_settings(store_url, recorder.url)) as (ledger, worker):
        before = utcnow()
        worker.run_once()
        blocked = (ledger.sinks.status("rec").blocked_until - before).total_seconds()
    assert 41 <= blocked <= 43


def test_a_runtime_given_abilities_keeps_them_and_outcomes_keep_their_stored_values() -> None:
    class Plain:
        capabilities = SinkCapabilities()

    abilities = SinkAbilities()
    runtime = SinkRuntime(Plain(), mapping=None, abilities=abilities)  # type: ignore[arg-type]
    assert runtime.abilities is abilities
    assert SinkRuntime(Plain(), mapping=None).abilities == SinkAbilities()  # type: ignore[arg-type]
    assert [o.value for o in DeliveryOutcome] == [
        "succeeded",
        "retry",
        "rate_limited",
        "dead",
        "paused",
        "held",
        "released",
        "lease_lost",
    ]
    assert DeliveryOutcome.SUCCEEDED == "succeeded"
