"""The connector's import graph: no cycles, and every layer imports only in the pipeline's direction.

The pipeline is webhook → normalized event → ledger → plan → sink → CRM. The graph is read with `ast`
(nothing is imported), so a lazy import inside a function, an import under `if TYPE_CHECKING:` and a
relative import all count: each is a dependency the code relies on, even where it happens not to run at
import time, and a cycle hidden behind a lazy import is still two modules that cannot be understood apart.

How a package's `__init__` is treated (the classic false positive). `from connector.pkg import sub`
names the module `connector.pkg.sub`, so it is an edge to that module, not to `connector.pkg`; likewise
`from . import sub`. An edge to a package (its `__init__`) is recorded only when the import names the
package itself or a name the `__init__` defines or re-exports. So `pkg/__init__` importing `pkg.a` while
`pkg.a` imports `from pkg import b` is not a cycle (both edges go to real modules), while `pkg.a` importing
a name from `pkg`'s `__init__` that the `__init__` gets from `pkg.a` is one, and is reported: it only works
while the `__init__`'s lines stay in a lucky order. The implicit import of parent packages (importing
`connector.a.b` runs `connector/a/__init__`) is not an edge: the package `__init__`s here are empty or
re-export their own package (the dashboard's imports its blueprint lazily, and the config only for type
hints), so counting it would only add false cycles such as config → dashboard.settings → dashboard → config.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = "connector"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / ROOT

# A module's layer is the second part of its name (connector.<layer>...). A top-level module not named below is
# "core": the shared, pure models and helpers every layer may use (errors, payload, plan, config, phones, logs).
CORE = "core"
LAYER_OF_MODULE: dict[str, str] = {
    # The assembly points sit above every layer: they wire receiver, dashboard, worker and CRM checks together.
    "connector.__main__": "entry",
    "connector.app": "entry",
    "connector.cli": "entry",
    "connector.serving": "entry",  # `connector serve`: gunicorn running connector.app, plus the worker
    # The health model: read from the ledger, shown by /readyz, /metrics, `connector status` and the dashboard.
    "connector.sink_health": "health",
    "connector.missing_fields": "health",
    "connector.metrics": "health",
    # config composes each part's settings model; those models stay beside the code they configure, as leaves:
    # core, so they may import nothing but core (which the direction check enforces). Each sink type owns its
    # settings model, so config asks the sink registry for it: config is the one layer below everything that may
    # reach into sinks (their registry and settings), and sinks never import config back.
    "connector.config": "config",
    "connector.dashboard.settings": CORE,
    "connector.engine.retry": CORE,
}
LAYERS = (
    "entry",
    "testing",
    "ops",
    "dashboard",
    "receiver",
    "engine",
    "health",
    "mapping",
    "ledger",
    "sinks",
    "emulators",
    "config",
    CORE,
)


def _all_but(*allowed: str) -> frozenset[str]:
    return frozenset(set(LAYERS) - set(allowed))


# FORBIDDEN[layer] = the layers it must never import. The pipeline: receiver (webhook, normalized event) → ledger;
# engine → ledger, mapping (which makes the plan), sinks; sinks → plan (core) and nothing further back. The ledger
# stores and knows nothing of who reads it. The health model reads the ledger and the sinks' shared records.
# The emulators stand for the CRM on the far side of the wire: they share nothing with the connector but core's
# pure helpers, so they behave like HubSpot and Salesforce rather than like our own client (only ops' sandbox
# starts them). Operator code reads the stages; the dashboard calls ops and never ops the dashboard, and neither
# imports the entry points (app, serving, cli) that assemble the server around them.
FORBIDDEN: dict[str, frozenset[str]] = {
    "entry": frozenset({"testing"}),
    # connector.testing is the contract suite a sink's own tests import: it drives a sink through the engine and
    # the ledger like the worker does, and nothing in the connector imports it.
    "testing": frozenset({"entry", "ops", "dashboard", "emulators"}),
    "ops": frozenset({"entry", "testing", "dashboard"}),
    "dashboard": frozenset({"entry", "testing", "receiver", "emulators"}),
    "receiver": frozenset({"entry", "testing", "ops", "dashboard", "engine", "sinks", "emulators"}),
    "engine": frozenset({"entry", "testing", "ops", "dashboard", "receiver", "emulators"}),
    "health": _all_but("health", "ledger", "sinks", "config", CORE),
    "mapping": _all_but("mapping", "config", CORE),
    "ledger": _all_but("ledger", "config", CORE),
    # sinks may read a mapping (crm-setup and schema inspection ask which fields it writes), never the stages
    # around them: not the ledger, not the engine, not the settings composition.
    "sinks": _all_but("sinks", "mapping", CORE),
    "emulators": _all_but("emulators", CORE),
    "config": _all_but("config", "sinks", CORE),
    CORE: _all_but("config", CORE),
}


def module_files(package_dir: Path, root: str = ROOT) -> dict[str, Path]:
    """Map each dotted module name under `package_dir` to its file (a package to its `__init__.py`)."""
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join([root, *parts])] = path
    return modules


def _is_package(name: str, files: Mapping[str, Path]) -> bool:
    return files[name].name == "__init__.py"


def _resolve(target: str, files: Mapping[str, Path]) -> str | None:
    """The module `target` names, or its nearest enclosing module (`connector.x.attr` → `connector.x`)."""
    while target:
        if target in files:
            return target
        target = target.rpartition(".")[0]
    return None


def imports_of(name: str, source: str, files: Mapping[str, Path], root: str = ROOT) -> set[str]:
    """Every module of `root` that module `name` imports, anywhere in its body."""
    found: set[str] = set()
    package = name if _is_package(name, files) else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from base import x` names module base.x when x is one, otherwise a name defined in base.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
        else:
            continue
        for target in targets:
            if target == root or target.startswith(root + "."):
                resolved = _resolve(target, files)
                if resolved is not None and resolved != name:
                    found.add(resolved)
    return found


def import_graph(package_dir: Path = PACKAGE_DIR, root: str = ROOT) -> dict[str, set[str]]:
    """The import graph of every module under `package_dir`, read with `ast`."""
    files = module_files(package_dir, root)
    return {name: imports_of(name, path.read_text(encoding="utf-8"), files, root) for name, path in files.items()}


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One readable chain (a → b → a) per strongly connected component with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0

    def connect(start: str) -> None:
        # Tarjan's algorithm, iterative so a deep graph cannot hit the recursion limit.
        nonlocal counter
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_chain(component, graph) for component in sorted(components, key=min)]


def _chain(component: set[str], graph: Mapping[str, Iterable[str]]) -> list[str]:
    """A shortest path from the component's first module back to itself, through the component."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child in component and child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"not a cycle: {sorted(component)}")


def layer_of(module: str) -> str:
    """The layer a module belongs to: its top-level package, or "core" for a shared top-level module."""
    if module in LAYER_OF_MODULE:
        return LAYER_OF_MODULE[module]
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FORBIDDEN else CORE


def forbidden_edges(
    graph: Mapping[str, Iterable[str]], forbidden: Mapping[str, frozenset[str]] = FORBIDDEN
) -> list[str]:
    """Each import from a layer into a layer it must not import, as "a (layer) → b (layer)"."""
    found = []
    for module in sorted(graph):
        source_layer = layer_of(module)
        for target in sorted(graph[module]):
            target_layer = layer_of(target)
            if target_layer in forbidden.get(source_layer, frozenset()):
                found.append(f"{module} ({source_layer}) → {target} ({target_layer})")
    return found


def _format(cycles: list[list[str]], graph: Mapping[str, Iterable[str]]) -> str:
    """Each cycle as a chain, then every import that keeps its modules tangled (all edges inside the component)."""
    lines = []
    for chain in cycles:
        members = set(chain)
        component = _component(chain[0], graph)
        lines.append(" → ".join(chain))
        for module in sorted(component):
            inside = sorted(set(graph.get(module, ())) & component)
            if inside and (module not in members or len(component) > len(members)):
                lines.append(f"    {module} → {', '.join(inside)}")
    return "\n".join(lines)


def _component(start: str, graph: Mapping[str, Iterable[str]]) -> set[str]:
    """The modules on some cycle through `start` (reachable from it and reaching it)."""

    def reach(edges: Mapping[str, Iterable[str]]) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for child in edges.get(todo.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return seen

    reverse: dict[str, set[str]] = {}
    for module, targets in graph.items():
        for target in targets:
            reverse.setdefault(target, set()).add(module)
    return reach(graph) & reach(reverse)


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles among connector modules:\n" + _format(cycles, graph)


def test_layers_import_only_in_the_pipeline_direction() -> None:
    edges = forbidden_edges(import_graph())
    assert not edges, "imports against the dependency direction:\n" + "\n".join(edges)


def test_every_layer_is_known() -> None:
    # A new top-level package must be given its place in FORBIDDEN, or it would escape the check as "core".
    packages = {path.parent.name for path in PACKAGE_DIR.glob("*/__init__.py")} - {"default_mappings"}
    assert packages <= set(FORBIDDEN), sorted(packages - set(FORBIDDEN))


# --- the checker checks itself: it must find what it is meant to find ----------------------------------------


def _write(root: Path, files: dict[str, str]) -> Path:
    package = root / ROOT
    for relative, text in files.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return package


def test_checker_flags_a_lazy_cycle(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "def f():\n    from connector import b\n    return b\n",
            "b.py": "from connector.a import f\n",
        },
    )
    assert find_cycles(import_graph(package)) == [["connector.a", "connector.b", "connector.a"]]


def test_checker_flags_a_type_checking_and_relative_cycle(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "__init__.py": "",
            "pkg/__init__.py": "",
            "pkg/x.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .y import Y\n",
            "pkg/y.py": "from . import z\n",
            "pkg/z.py": "import connector.pkg.x as x\n",
        },
    )
    assert find_cycles(import_graph(package)) == [
        ["connector.pkg.x", "connector.pkg.y", "connector.pkg.z", "connector.pkg.x"]
    ]


def test_checker_tells_a_package_init_from_a_cycle(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "__init__.py": "",
            # The __init__ re-exports its submodules, which import each other through the package: no cycle.
            "pkg/__init__.py": "from connector.pkg.a import A\nfrom connector.pkg.b import B\n",
            "pkg/a.py": "from connector.pkg import b\nA = b\n",
            "pkg/b.py": "B = 1\n",
        },
    )
    assert find_cycles(import_graph(package)) == []
    # A submodule taking a name from the __init__ that the __init__ takes from it is a real cycle.
    (package / "pkg" / "b.py").write_text("from connector.pkg import A\nB = A\n", encoding="utf-8")
    assert find_cycles(import_graph(package)) == [
        ["connector.pkg", "connector.pkg.b", "connector.pkg"],
    ]


def test_checker_flags_a_forbidden_direction() -> None:
    graph = {
        "connector.ledger.store": {"connector.engine.worker", "connector.errors"},
        "connector.engine.worker": {"connector.ledger.store", "connector.sinks.base"},
        "connector.errors": set(),
        "connector.sinks.base": {"connector.plan"},
        "connector.plan": set(),
    }
    assert forbidden_edges(graph) == ["connector.ledger.store (ledger) → connector.engine.worker (engine)"]
    assert find_cycles(graph) == [["connector.engine.worker", "connector.ledger.store", "connector.engine.worker"]]


def test_checker_flags_a_forbidden_direction_in_a_package(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "__init__.py": "",
            "plan.py": "",
            "sinks/__init__.py": "",
            "sinks/crm.py": "from connector import plan\n\n\ndef lazy():\n    from ..ledger import store\n",
            "ledger/__init__.py": "",
            "ledger/store.py": "",
        },
    )
    assert forbidden_edges(import_graph(package)) == ["connector.sinks.crm (sinks) → connector.ledger.store (ledger)"]


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("connector.sinks.hubspot.sink", "sinks"),
        ("connector.sinks", "sinks"),
        ("connector.plan", CORE),
        ("connector.cli", "entry"),
        ("connector", CORE),
    ],
)
def test_layer_of(module: str, layer: str) -> None:
    assert layer_of(module) == layer
