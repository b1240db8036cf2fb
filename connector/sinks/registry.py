"""Finds sink factories through the `connector.sinks` entry-point group (built-ins included)."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from connector.errors import ConfigError, ConfigProblem
from connector.sinks.base import Sink, SinkFactory

GROUP = "connector.sinks"


def installed_sink_types() -> dict[str, Any]:
    """Sink type name → entry point, for every installed package that provides one."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def sink_factory(sink_type: str) -> SinkFactory:
    """The factory registered for a sink type; a ConfigError listing the installed ones otherwise."""
    found = installed_sink_types()
    if sink_type not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ConfigError(
            "<config>", [ConfigProblem("sinks.*.type", f"no sink type {sink_type!r} is installed; installed: {known}")]
        )
    factory = found[sink_type].load()
    return factory  # type: ignore[no-any-return]


def build_sink(name: str, settings: Any) -> Sink:
    """Instantiate the configured sink `name` (not yet opened)."""
    sink = sink_factory(settings.type)(name, settings)
    if not isinstance(sink, Sink):
        raise ConfigError("<config>", [ConfigProblem(f"sinks.{name}.type", "the factory did not return a Sink")])
    return sink
