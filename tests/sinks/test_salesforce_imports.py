"""The Salesforce sink package has no import cycle, and its batched paths never reach the sink object.

Why: ``batch``, ``callbacks`` and ``resolve`` used to take the sink and call back into it, so any sink member was
reachable from anywhere and ``sink`` and they imported each other. Every import counts here, at module level or
inside a function or an ``if TYPE_CHECKING`` block.
"""

from __future__ import annotations

import ast
from pathlib import Path

import connector.sinks.salesforce as package

PACKAGE = package.__name__
ROOT = Path(package.__file__).parent
NARROW = ("batch", "callbacks", "resolve", "composite", "collaborators", "records")


def imports(path: Path) -> set[str]:
    """The package's own modules that one file imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            found |= {f"{PACKAGE}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{PACKAGE}."):
            found.add(str(node.module))
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith(f"{PACKAGE}.")}
    return found


def graph() -> dict[str, set[str]]:
    modules = {f"{PACKAGE}.{p.stem}": p for p in ROOT.glob("*.py") if p.stem != "__init__"}
    return {name: imports(path) & set(modules) - {name} for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            found.append([*path[path.index(node) :], node])
            return
        if node in done:
            return
        for target in sorted(edges.get(node, ())):
            visit(target, [*path, node])
        done.add(node)

    for node in sorted(edges):
        visit(node, [])
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycle_inside_the_package() -> None:
    edges = graph()
    assert f"{PACKAGE}.sink" in edges and edges[f"{PACKAGE}.sink"]  # the graph was read
    assert cycles(edges) == []


def test_the_batched_paths_know_nothing_of_the_sink() -> None:
    for name in NARROW:
        source = (ROOT / f"{name}.py").read_text()
        assert f"{PACKAGE}.sink" not in imports(ROOT / f"{name}.py"), name
        assert "SalesforceSink" not in source, name
