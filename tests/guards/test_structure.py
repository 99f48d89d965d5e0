"""The shape of the `guards` package: no import cycles, the registry matches the policy
vocabulary, and the libraries screening needs are installed (a missing one fails, never skips)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from guards.config import DETECTOR_NAMES
from guards.registry import DETECTORS

PACKAGE = Path(__file__).resolve().parents[2] / "guards"
# What the shipped detectors cannot work without (pyproject's dependencies, by import name).
REQUIRED = ["presidio_analyzer", "presidio_anonymizer", "nemoguardrails", "yara", "detect_secrets",
            "phonenumbers", "regex", "spacy"]  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every `guards` module `path` imports, at any depth (functions, TYPE_CHECKING blocks)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path) & set(modules) - {name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_when_guards_modules_import_each_other_then_there_is_no_cycle() -> None:
    graph = _graph()
    graph.pop("guards")  # the package's face imports its modules; none imports it back
    assert not any("guards" in deps for deps in graph.values()), "a module imports `guards`"
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_when_the_cycle_check_sees_a_cycle_then_it_reports_it() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_when_a_policy_names_a_detector_then_the_registry_has_it() -> None:
    assert set(DETECTORS) == set(DETECTOR_NAMES)
    assert all(cls.name == name for name, cls in DETECTORS.items())


@pytest.mark.parametrize("module", REQUIRED)
def test_when_a_required_library_is_missing_then_the_suite_fails(module: str) -> None:
    importlib.import_module(module)  # an ImportError here is a failure, not a skip
