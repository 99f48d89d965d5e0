"""Every module of sandbox.egress declares `__all__`, and the package exports what it promises."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import sandbox.egress
from sandbox.egress import proxy_env


def test_when_modules_are_imported_then_each_declares_its_public_names() -> None:
    for info in pkgutil.iter_modules(sandbox.egress.__path__):
        module = importlib.import_module(f"sandbox.egress.{info.name}")
        assert hasattr(module, "__all__"), info.name
        for name in module.__all__:
            assert hasattr(module, name), f"{info.name}.{name}"
            value = getattr(module, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                assert value.__doc__, f"{info.name}.{name} has no docstring"


def test_when_package_is_imported_then_its_all_names_resolve() -> None:
    for name in sandbox.egress.__all__:
        assert getattr(sandbox.egress, name) is not None


def test_when_proxy_env_is_built_then_both_spellings_point_at_the_forwarder() -> None:
    env = proxy_env(3128)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        assert env[name] == "http://127.0.0.1:3128"
    assert env["NO_PROXY"] == "" and env["no_proxy"] == ""
