"""Every module of the three packages and of the client declares `__all__`, each exported name
exists and has a docstring, and the layering holds: `sandbox`, `guards` and the client never
import `sandgate`."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest
import sandgate_client

import guards
import sandbox
import sandgate

MODULES = sorted(
    info.name
    for package in (sandgate, sandbox, guards, sandgate_client)
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    if not info.name.endswith("__main__") and info.name != "sandbox.egress.forwarder"
)


@pytest.mark.parametrize("name", MODULES)
def test_when_module_is_imported_then_its_all_names_exist_with_docstrings(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if module.__file__ and module.__file__.endswith("__init__.py") and exported is None:
        return  # a package marker with nothing to export
    assert exported is not None, f"{name} has no __all__"
    for item in exported:
        assert hasattr(module, item), f"{name}.{item}"
        value = getattr(module, item)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__doc__, f"{name}.{item} has no docstring"


@pytest.mark.parametrize("package", ["sandbox", "guards", "sandgate_client"])
def test_when_a_lower_package_is_imported_then_nothing_of_sandgate_is_loaded(package: str) -> None:
    names = [n for n in MODULES if n.startswith(package + ".")]
    code = (
        f"import sys, importlib; [importlib.import_module(n) for n in {names!r}];"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sandgate'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_when_guards_is_imported_then_presidio_and_nemo_stay_unloaded() -> None:
    code = (
        "import sys, guards, guards.registry, guards.screener;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('presidio_analyzer', 'nemoguardrails')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
