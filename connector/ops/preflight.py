"""Checks `validate` and `serve` run before anything is accepted: every sink a worker will need can
be built, so `serve` never acknowledges webhooks that no worker could ever deliver."""

from __future__ import annotations

from connector.config import Settings
from connector.errors import ConfigError, ConfigProblem
from connector.sinks.registry import build_sink, installed_sink_types


def sink_problems(settings: Settings, names: list[str] | None = None) -> list[ConfigProblem]:
    """Unknown sink types (listing the installed ones, from the `connector.sinks` entry points) and
    sinks whose factory refuses their settings; builds sinks only, never connects to a CRM."""
    installed = installed_sink_types()
    known = ", ".join(sorted(installed)) or "none"
    problems: list[ConfigProblem] = []
    for name in names if names is not None else settings.enabled_sinks():
        config = settings.sinks[name]
        if config.type not in installed:
            problems.append(
                ConfigProblem(f"sinks.{name}.type", f"no sink type {config.type!r} is installed; installed: {known}")
            )
            continue
        try:
            build_sink(name, config)
        except ConfigError as exc:  # its own path when it names a field of this sink (sinks.NAME.auth.domain)
            problems += [
                ConfigProblem(p.path if p.path.startswith(f"sinks.{name}.") else f"sinks.{name}", p.message)
                for p in exc.problems
            ]
        except Exception as exc:  # noqa: BLE001 - a factory's own error: report it, do not start
            problems.append(ConfigProblem(f"sinks.{name}", f"cannot be built: {exc.__class__.__name__}: {exc}"))
    return problems
