"""Complete commands for the hints the connector prints, stores and shows (`connector crm-setup --config … --sink …`).

Why: a hint is only useful when it can be pasted. The config file is the one part a message deep inside a sink or
a schema check cannot know, so the process remembers the file it loaded its settings from (every command, the
gunicorn app and the worker load exactly one) and every hint names it.
"""

from __future__ import annotations

import shlex
from pathlib import Path

_config_file: Path | None = None


def remember_config(path: str | Path) -> None:
    """The config file this process runs with (called by `load_settings`)."""
    global _config_file
    _config_file = Path(path).resolve()


def command(name: str, *args: str) -> str:
    """`connector NAME --config <this process's config file> ARGS…`, quoted for a POSIX shell."""
    config = shlex.quote(str(_config_file)) if _config_file is not None else "FILE"
    return " ".join(["connector", name, "--config", config, *(shlex.quote(a) for a in args)])
