"""Values that only read keys and call filters are evaluated directly, without Jinja (connector.mapping.templates):
their results must be exactly Jinja's. Checked here plan by plan against a twin of each default mapping whose
values all render through Jinja, over generated payloads, and value by value for what the direct path hands back
to Jinja."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from connector.default_mappings import default_mapping_path
from connector.errors import MappingError, PayloadError
from connector.mapping.loader import LoadedMapping, load_mapping
from connector.mapping.planner import plan_event
from connector.mapping.templates import CompiledValue, Where, compile_value, make_environment
from connector.payload import parse_webhook
from tests.support.payload_strategies import call_times, payloads

MAPPINGS = {crm: load_mapping(default_mapping_path(crm)) for crm in ("hubspot", "salesforce")}
WHERE = Where("test.yaml", "activity.properties.x", 7)


def jinja_only(mapping: LoadedMapping) -> LoadedMapping:
    values = {path: dataclasses.replace(value, _direct=None) for path, value in mapping.values.items()}
    return dataclasses.replace(mapping, values=values)


JINJA_ONLY = {crm: jinja_only(mapping) for crm, mapping in MAPPINGS.items()}


def test_the_default_mappings_are_rendered_directly() -> None:
    """Otherwise the comparison below compares Jinja with itself."""
    for crm, mapping in MAPPINGS.items():
        templated = [v for v in mapping.values.values() if v.kind != "literal"]
        direct = [v for v in templated if v._direct is not None]
        assert len(direct) >= len(templated) - 1, crm
        assert all(v._direct is None for v in JINJA_ONLY[crm].values.values())


def outcome(mapping: LoadedMapping, document: dict[str, Any], call_time: datetime) -> Any:
    try:
        event = parse_webhook(document)
    except PayloadError:
        return "rejected"
    try:
        return plan_event(event, mapping, sink="crm", call_time=call_time).model_dump(mode="json")
    except MappingError as exc:
        return f"MappingError: {exc}"


@pytest.mark.parametrize("crm", sorted(MAPPINGS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=payloads, call_time=call_times)
def test_plans_are_those_jinja_renders(crm: str, document: dict[str, Any], call_time: datetime) -> None:
    assert outcome(MAPPINGS[crm], document, call_time) == outcome(JINJA_ONLY[crm], document, call_time)


def both(text: str, context: dict[str, Any]) -> tuple[Any, Any]:
    """(direct or Jinja's fallback, Jinja alone), each a value or the MappingError's message."""
    value = compile_value(make_environment(), text, WHERE)

    def render(compiled: CompiledValue) -> Any:
        try:
            result = compiled.render(context)
            return (type(result), result)
        except MappingError as exc:
            return f"MappingError: {exc}"

    return render(value), render(dataclasses.replace(value, _direct=None))


CONTEXT = {
    "record": {"first_name": None, "phone": {"e164": "+12025550143"}},
    "call": {"duration_ms": 0, "direction": "inbound"},
    "meta": {"items": "a key named like a dict method", "n": 5},
    "flag": True,
    "when": datetime(2026, 1, 5, 15, tzinfo=UTC),
    "thing": object(),
}


@pytest.mark.parametrize(
    "text",
    [
        "{{ record.phone.e164 }}",
        "{{ record['phone']['e164'] }}",
        "{{ record.first_name }}",  # None, natively
        "name: {{ record.first_name }}",  # "None", as Jinja writes it
        "{{ record.first_name or 'there' }}",
        "{{ call.duration_ms or 0 }}",
        "{{ call.duration_ms and 'long' }}",
        "{{ not flag }}",
        "{{ meta.n }} calls",
        "{{ flag }}",
        "{{ (call.direction or 'outbound') | upper }}",
        "{{ when | iso_utc }}",
        "{{ when | local_time('America/New_York', '%H:%M') }}",
        "{{ record.phone.e164 | phone('international') }}",
        "{{ meta.items }}",  # Jinja reads the dict's method first: never the key
        "{{ meta['items'] }}",  # a subscript reads the key
        "{{ nothing }}",  # undefined: StrictUndefined's error
        "{{ record.nothing }}",
        "{{ record.phone.e164.x }}",  # not a dict: Jinja's getattr
        "{{ thing.__class__ }}",  # the sandbox's refusal
        "{{ record.first_name | iso_utc }}",  # a filter's error
        "{{ range(2) | list }}",  # globals and calls: Jinja alone
        "{{ 'a' ~ meta.n }}",
    ],
)
def test_a_value_renders_as_jinja_renders_it(text: str) -> None:
    direct, jinja = both(text, CONTEXT)
    assert direct == jinja


def test_direct_evaluation_covers_keys_filters_and_text() -> None:
    environment = make_environment()
    covered = ["{{ a.b }}", "x {{ a['b'] }} y", "{{ a or b }}", "{{ a | upper }}", "{{ not a }}"]
    not_covered = ["{{ a ~ b }}", "{% if a %}x{% endif %}", "{{ a(1) }}", "{{ a if b else c }}"]
    assert all(compile_value(environment, t, WHERE)._direct is not None for t in covered)
    assert all(compile_value(environment, t, WHERE)._direct is None for t in not_covered)
