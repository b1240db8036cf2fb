"""Finds sink types through the `connector.sinks` entry-point group (built-ins included): each one's settings model
(``connector.config`` validates a sink section with it) and its factory, whose sinks are checked once, when built,
for what they declare (``SinkAbilities``)."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel

from connector.errors import ConfigError, ConfigProblem
from connector.sinks.base import RecordLinker, Sink, SinkAbilities, SinkDeclarationError, SinkFactory
from connector.sinks.settings import PluginSinkSettings

GROUP = "connector.sinks"


def installed_sink_types() -> dict[str, EntryPoint]:
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


def settings_model(sink_type: str) -> type[BaseModel]:
    """The pydantic model a sink type declares for its config section (``settings_model`` on what its entry point
    names); PluginSinkSettings (common keys checked, the rest kept for the factory) when it declares none or is not
    installed; ValueError when its package fails to import."""
    entry = installed_sink_types().get(sink_type)
    if entry is None:
        return PluginSinkSettings
    try:
        loaded = entry.load()
    except Exception as exc:  # noqa: BLE001 - a broken plugin is a config problem at its section, not a crash
        raise ValueError(f"sink type {sink_type!r} cannot be loaded: {exc.__class__.__name__}: {exc}") from None
    model = getattr(loaded, "settings_model", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else PluginSinkSettings


def sink_inspector(sink_type: str) -> Any:
    """The type's schema inspection (``SchemaInspection``: `validate` and `crm-setup`), or None when it has none."""
    entry = installed_sink_types().get(sink_type)
    if entry is None:
        return None
    try:
        return getattr(entry.load(), "inspection", None)
    except Exception:  # noqa: BLE001 - a broken plugin has nothing to inspect (config validation names it)
        return None


def record_linker(sink_type: str) -> RecordLinker | None:
    """The type's ``record_link`` (links from CRM ids to the CRM), or None when it declares none."""
    entry = installed_sink_types().get(sink_type)
    if entry is None:
        return None
    try:
        return getattr(entry.load(), "record_link", None)
    except Exception:  # noqa: BLE001 - a broken plugin has no links (config validation names it)
        return None


def build_sink(name: str, settings: Any) -> Sink:
    """Instantiate the configured sink `name` (not yet opened); refuse a sink whose declarations contradict what it
    implements (e.g. ``max_batch > 1`` without ``execute_batch``)."""
    return build_sink_with_abilities(name, settings)[0]


def build_sink_with_abilities(name: str, settings: Any) -> tuple[Sink, SinkAbilities]:
    """``build_sink``, with the abilities it checked: the worker hands them to the engine, which never probes the
    sink again."""
    sink = sink_factory(settings.type)(name, settings)
    if not isinstance(sink, Sink):
        raise ConfigError("<config>", [ConfigProblem(f"sinks.{name}.type", "the factory did not return a Sink")])
    try:
        abilities = SinkAbilities.of(sink)
    except SinkDeclarationError as exc:
        raise ConfigError("<config>", [ConfigProblem(f"sinks.{name}.type", str(exc))]) from None
    return sink, abilities
