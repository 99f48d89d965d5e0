"""Every guards module declares `__all__`, and each name in it exists."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import guards

MODULES = sorted(m.name for m in pkgutil.iter_modules(guards.__path__, "guards."))


@pytest.mark.parametrize("name", MODULES)
def test_when_module_is_imported_then_its_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    for item in exported:
        assert hasattr(module, item), f"{name}.{item}"


def test_when_guards_is_imported_then_nothing_of_sandgate_is_loaded() -> None:
    import subprocess
    import sys

    code = (
        "import sys, guards, guards.registry, guards.screener;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sandgate', 'presidio_analyzer', 'nemoguardrails')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
