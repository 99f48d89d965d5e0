"""The client distribution installs from the checkout into a fresh virtualenv, offline (from the
wheelhouse `.ci/setup` fills), and works there without any of the service's dependencies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandgate.settings import REPO_ROOT

pytestmark = pytest.mark.slow

WHEELS = REPO_ROOT / ".venv" / "client-wheels"
SERVER_ONLY = (
    "presidio_analyzer",
    "nemoguardrails",
    "docker",
    "fastapi",
    "sandgate",
    "sandbox",
    "guards",
)


def _run(*args: str | Path, cwd: Path) -> str:
    # No pip configuration of this machine (extra indexes, find-links): the wheelhouse only.
    env = {"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INPUT": "1"}
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_when_installed_in_a_fresh_virtualenv_then_it_imports_without_the_service(
    tmp_path: Path,
) -> None:
    assert WHEELS.is_dir(), f"no wheelhouse at {WHEELS}: run .ci/setup run"
    _run(sys.executable, "-m", "venv", tmp_path / "venv", cwd=tmp_path)
    bin_dir = tmp_path / "venv" / "bin"
    _run(
        bin_dir / "pip",
        "install",
        "-q",
        "--no-index",
        "--find-links",
        WHEELS,
        REPO_ROOT / "clients" / "python",
        cwd=tmp_path,
    )
    probe = (
        "import importlib.util, sandgate_client, sandgate_client.cli, sandgate_client.mcp_server;"
        f"print([m for m in {SERVER_ONLY!r} if importlib.util.find_spec(m)])"
    )
    assert _run(bin_dir / "python", "-c", probe, cwd=tmp_path).strip() == "[]"
    assert "session" in _run(bin_dir / "sandgate-client", "--help", cwd=tmp_path)
    assert "streamable-http" in _run(bin_dir / "sandgate-mcp", "--help", cwd=tmp_path)
