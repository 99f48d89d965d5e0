"""What a backend needs to start the in-sandbox forwarder: its source, command line and env."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["READY_PREFIX", "forwarder_argv", "forwarder_path", "forwarder_source", "proxy_env"]

READY_PREFIX = "READY "
"""The forwarder prints this and its port, on one line, once it listens."""


def forwarder_path() -> Path:
    """The forwarder script on the host, to copy or bind-mount into the sandbox."""
    return Path(str(resources.files("sandbox.egress").joinpath("forwarder.py")))


def forwarder_source() -> str:
    """The forwarder script's text (standard library only, runs on the sandbox's Python 3.11)."""
    return forwarder_path().read_text(encoding="utf-8")


def forwarder_argv(
    python: str, script: str, socket_path: str, port: int, ready_file: str | None = None
) -> list[str]:
    """The command line that starts the forwarder (paths as seen inside the sandbox)."""
    # -I: ignore PYTHON* variables and the user's site dir; -S: skip site, for a faster start.
    argv = [python, "-I", "-S", script, socket_path, str(port)]
    return argv + ([ready_file] if ready_file else [])


def proxy_env(port: int) -> dict[str, str]:
    """Proxy variables for the user's code; both spellings, as curl reads only lower case."""
    url = f"http://127.0.0.1:{port}"
    env = {name: url for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")}
    env |= {name.lower(): url for name in env}
    env |= {"NO_PROXY": "", "no_proxy": ""}
    return env
