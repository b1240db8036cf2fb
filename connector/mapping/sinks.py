"""Which mapping each configured sink uses: its `mapping` file, else the packaged default for its type."""

from __future__ import annotations

from pathlib import Path

from connector.config import Settings
from connector.default_mappings import KNOWN, default_mapping_path
from connector.errors import ConfigError, ConfigProblem
from connector.mapping.loader import LoadedMapping, load_mapping


def mapping_path(settings: Settings, sink: str) -> Path:
    """The mapping file of a configured sink (relative paths start at the config file's folder)."""
    sink_settings = settings.sinks[sink]
    if sink_settings.mapping:
        return settings.base_dir / sink_settings.mapping
    if sink_settings.type in KNOWN:
        return default_mapping_path(sink_settings.type)
    raise ConfigError(settings.source, [ConfigProblem(f"sinks.{sink}.mapping", "required for a plugin sink")])


def load_sink_mappings(settings: Settings, sinks: list[str] | None = None) -> dict[str, LoadedMapping]:
    """Load the mappings of the given (default: enabled) sinks; one ConfigError, under the config file's name,
    listing every problem (a mapping file's own problems start with that file's name)."""
    loaded: dict[str, LoadedMapping] = {}
    problems: list[ConfigProblem] = []
    for name in sinks if sinks is not None else settings.enabled_sinks():
        try:
            path = mapping_path(settings, name)
        except ConfigError as exc:
            problems += exc.problems
            continue
        if not path.is_file():
            problems.append(ConfigProblem(f"sinks.{name}.mapping", f"file not found: {settings.sinks[name].mapping}"))
            continue
        try:
            loaded[name] = load_mapping(path)
        except ConfigError as exc:
            problems += [ConfigProblem(f"{exc.source}: {p.path}", p.message) for p in exc.problems]
    if problems:
        raise ConfigError(settings.source, problems)
    return loaded
