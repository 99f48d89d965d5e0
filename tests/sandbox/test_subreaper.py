"""The launcher's own removal of its sandbox when the service is gone (`remove_orphan`).

Its `runsc delete` once never returned in a loaded run (the sandbox's state, cgroups and bundle
were all still there 30 s after the service was killed). A `runsc` that hangs stands in for it
here (a unit test of the removal's logic); the removal must go on without it.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from sandbox.cgroup import CGROUP_ROOT

pytestmark = pytest.mark.sandbox

_REMOVE = """
import sys
from sandbox.subreaper import remove_orphan
runsc, root, bundle, cgroups = sys.argv[1:5]
remove_orphan([runsc, f"--root={root}", "run", "-detach", "sg-x"], bundle, cgroups.split(":"))
"""


def test_when_runsc_delete_hangs_then_the_launcher_still_removes_its_sandbox(
    tmp_path: Path,
) -> None:
    runsc = tmp_path / "runsc"
    runsc.write_text("#!/bin/sh\nexec sleep 600\n")
    runsc.chmod(0o755)
    root = tmp_path / "root"
    root.mkdir()
    (root / "sg-x_sandbox:sg-x.state").write_text("{}")
    bundle = tmp_path / "bundle"
    (bundle / "input").mkdir(parents=True)
    name = uuid.uuid4().hex
    cgroups = [CGROUP_ROOT / c / "sandgate-test" / name for c in ("pids", "memory")]
    for directory in cgroups:
        directory.mkdir(parents=True)
    started = time.monotonic()
    try:
        subprocess.run(
            [sys.executable, "-c", _REMOVE, str(runsc), str(root), str(bundle)]
            + [":".join(str(d) for d in cgroups)],
            check=True,
            timeout=30,
            cwd=Path(__file__).parents[2],
        )
    finally:
        for directory in cgroups:
            for path in (directory, directory.parent):
                if path.exists() and not any(p.is_dir() for p in path.iterdir()):
                    path.rmdir()
    assert time.monotonic() - started < 15
    assert not bundle.exists()
    assert list(root.iterdir()) == []
    assert not any(d.exists() for d in cgroups)
    assert subprocess.run(["pgrep", "-f", "^sleep 600$"], capture_output=True).stdout == b""
