"""The whole pipeline works with no network at all, and nothing in it tries to connect."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _unshare_works(), reason="needs util-linux unshare and root")
def test_when_network_is_cut_then_pipeline_screens_and_never_connects(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # A fresh home: no cached public-suffix list or model can hide a fetch.
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PYTHONPATH": str(REPO),
    }
    child = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.guards._offline_child"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    assert report["verdicts"] == ["redact", "block", "redact", "block", "redact"]
