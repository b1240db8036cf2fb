"""The HubSpot sink package has no import cycle: control flows sink → batch/resolve/callbacks, never back.

Why a test: the batch code used to reach back into the sink object (and import it under TYPE_CHECKING); the
collaborators in ``hubspot.parts`` replaced that, and this keeps it so. Every import counts, including
function-level and TYPE_CHECKING ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import connector.sinks.hubspot as package

PACKAGE = "connector.sinks.hubspot"
ROOT = Path(package.__file__).parent


def imports_of(path: Path) -> set[str]:
    """The modules of this package that ``path`` imports anywhere in its text."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
            found |= {n for n in names if (ROOT / f"{n.rsplit('.', 1)[1]}.py").exists() and n.startswith(PACKAGE)}
            if node.module.startswith(PACKAGE + "."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(PACKAGE + ".")}
    return found


def graph() -> dict[str, set[str]]:
    return {f"{PACKAGE}.{p.stem}": imports_of(p) for p in ROOT.glob("*.py") if p.stem != "__init__"}


def test_the_batch_code_never_imports_the_sink() -> None:
    edges = graph()
    for name in ("batch", "resolve", "callbacks", "parts"):
        assert f"{PACKAGE}.sink" not in edges[f"{PACKAGE}.{name}"], name
    assert {f"{PACKAGE}.batch", f"{PACKAGE}.resolve", f"{PACKAGE}.callbacks"} <= edges[f"{PACKAGE}.sink"]


def test_no_module_of_the_package_reaches_itself() -> None:
    edges = graph()

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(edges.get(start, ()))
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += edges.get(name, ())
        return seen

    assert [name for name in edges if name in reachable(name)] == []
