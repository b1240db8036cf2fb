"""The test tree keeps one helper package: shared code lives in tests/support, conftest.py files hold only
fixtures and hooks, and no module imports from a conftest or from a test module (pytest may import those
twice, under two names, and a helper hidden in a test module is found by nobody)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
HELPER_HOMES = ("support", "cases")
"""Folders of tests/ that may hold modules that are neither tests nor conftest (helpers, data)."""


def module_name(path: Path, root: Path) -> str:
    """`tests/sinks/test_x.py` -> `tests.sinks.test_x` (packages: without `__init__`)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_forbidden(module: str, package: str) -> bool:
    """A conftest or a test_*.py module of the test package."""
    if module != package and not module.startswith(package + "."):
        return False
    last = module.rsplit(".", 1)[-1]
    return last == "conftest" or last.startswith("test_")


def imported_modules(tree: ast.Module, name: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) of everything a module imports, relative imports resolved; `from pkg import mod` counts
    `pkg.mod` too, since `mod` may be a module."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def conftest_problems(tree: ast.Module, where: str) -> list[str]:
    """A conftest.py may define fixtures and pytest hooks (and import); anything else is a helper."""
    problems = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom) or (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        ):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            fixture = any("fixture" in ast.unparse(decorator) for decorator in node.decorator_list)
            if fixture or node.name.startswith("pytest_"):
                continue
        if isinstance(node, ast.Assign) and all(
            isinstance(t, ast.Name) and t.id in ("pytest_plugins", "pytestmark") for t in node.targets
        ):
            continue
        problems.append(f"{where}:{node.lineno}: a conftest holds only fixtures and hooks; move this to tests/support")
    return problems


def layout_problems(root: Path) -> list[str]:
    """Everything wrong with the layout of the test package at `root`, one line each."""
    package = root.name
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        where = str(path.relative_to(root.parent))
        is_test = path.name.startswith("test_")
        if not (is_test or path.name in ("conftest.py", "__init__.py") or relative.parts[0] in HELPER_HOMES):
            problems.append(f"{where}: a helper module outside {package}/support")
        tree = ast.parse(path.read_text(), filename=str(path))
        name = module_name(path, root)
        for line, module in imported_modules(tree, name, path.name == "__init__.py"):
            if is_forbidden(module, package):
                problems.append(f"{where}:{line}: imports {module}; import shared code from {package}.support")
        if path.name == "conftest.py":
            problems += conftest_problems(tree, where)
    return sorted(set(problems))


def test_the_test_tree_keeps_one_helper_package() -> None:
    assert layout_problems(TESTS) == []


def write(root: Path, relative: str, text: str = "") -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small, correct test package to break one way at a time."""
    root = tmp_path / "tests"
    write(root, "__init__.py")
    write(root, "support/__init__.py")
    write(root, "support/net.py", "PORT = 1\n")
    write(root, "cases/payloads/readme.txt", "data\n")
    write(root, "conftest.py", '"""Fixtures."""\nimport pytest\nfrom tests.support.net import PORT\n\n')
    write(root, "conftest.py", (root / "conftest.py").read_text() + "@pytest.fixture\ndef port():\n    return PORT\n")
    write(root, "sinks/__init__.py")
    write(root, "sinks/test_a.py", "from tests.support import net\nfrom tests.support.net import PORT\n")
    return root


def test_a_correct_tree_passes(tree: Path) -> None:
    assert layout_problems(tree) == []


@pytest.mark.parametrize(
    ("relative", "text", "expected"),
    [
        ("test_b.py", "from tests.conftest import TOKEN\n", "test_b.py:1: imports tests.conftest"),
        ("test_b.py", "def f():\n    from tests.sinks.test_a import x\n", "test_b.py:2: imports tests.sinks.test_a"),
        ("test_b.py", "from tests.sinks import test_a as a\n", "test_b.py:1: imports tests.sinks.test_a"),
        ("test_b.py", "import tests.sinks.test_a\n", "test_b.py:1: imports tests.sinks.test_a"),
        ("sinks/test_b.py", "from .test_a import x\n", "sinks/test_b.py:1: imports tests.sinks.test_a"),
        ("sinks/test_b.py", "from . import conftest\n", "sinks/test_b.py:1: imports tests.sinks.conftest"),
        ("support/x.py", "from tests.sinks.conftest import y\n", "support/x.py:1: imports tests.sinks.conftest"),
        ("delivery_support.py", "X = 1\n", "delivery_support.py: a helper module outside tests/support"),
        ("sinks/helpers.py", "", "sinks/helpers.py: a helper module outside tests/support"),
        ("sinks/conftest.py", "def make():\n    pass\n", "sinks/conftest.py:1: a conftest holds only fixtures"),
        ("sinks/conftest.py", "TOKEN = 'x'\n", "sinks/conftest.py:1: a conftest holds only fixtures"),
        ("sinks/conftest.py", "class Served:\n    pass\n", "sinks/conftest.py:1: a conftest holds only fixtures"),
    ],
)
def test_each_breach_is_found(tree: Path, relative: str, text: str, expected: str) -> None:
    write(tree, relative, text)
    [problem] = layout_problems(tree)
    assert problem.startswith("tests/" + expected), problem


def test_imports_outside_the_test_package_and_hooks_are_fine(tree: Path) -> None:
    write(tree, "test_b.py", "from connector.test_utils import x\nimport test_helpers\n")
    write(tree, "sinks/conftest.py", "def pytest_configure(config):\n    pass\n\n\npytest_plugins = []\n")
    assert layout_problems(tree) == []
