"""A third-party package "installed" for one test: its modules and a .dist-info on sys.path, so the
`connector.sinks` entry points find it the way they find a pip-installed plugin."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def installed_distribution(
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    name: str,
    modules: Mapping[str, str],
    entry_points: Mapping[str, str],
) -> Iterator[Path]:
    """Write `modules` (relative path → source) under `folder` with a `name-1.0.dist-info` registering
    `entry_points` (sink type → `module:attribute`) in `connector.sinks`, and put `folder` on sys.path; on exit
    its modules are forgotten (monkeypatch restores the path), so the next test imports its own copy."""
    for relative, source in modules.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    info = folder / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = [f"{sink_type} = {target}" for sink_type, target in entry_points.items()]
    (info / "entry_points.txt").write_text("[connector.sinks]\n" + "\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(folder))
    roots = {Path(relative).parts[0].removesuffix(".py") for relative in modules}
    try:
        yield folder
    finally:
        for module in [m for m in sys.modules if m.split(".")[0] in roots]:
            sys.modules.pop(module, None)
