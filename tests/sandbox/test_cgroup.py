"""A sandbox's cgroups are removed even when its killed tasks take seconds to leave them.

Under load a killed sentry can take longer than a second to exit; the removal waited one second
per controller, gave up on the first (blkio, in sorted order) and left it behind. A task in a
frozen freezer cgroup cannot act on SIGKILL until it is thawed, which makes that slow exit
happen on demand.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from sandbox.cgroup import CGROUP_ROOT, CONTROLLERS, SandboxCgroup

pytestmark = pytest.mark.sandbox

FREEZER = CGROUP_ROOT / "freezer"


@pytest.fixture
def cgroup() -> Iterator[SandboxCgroup]:
    """A sandbox-like cgroup of the test's own, removed afterwards whatever happened."""
    name = uuid.uuid4().hex
    group = SandboxCgroup(f"sandgate-test/{name[:8]}", name)
    group.create(memory_bytes=64 * 2**20, max_processes=4, cpus=None)
    yield group
    group.remove()
    for controller in CGROUP_ROOT.iterdir():
        for parent in (controller / "sandgate-test" / name[:8], controller / "sandgate-test"):
            if parent.exists() and not any(p.is_dir() for p in parent.iterdir()):
                parent.rmdir()


def _frozen_task_in(cgroup: SandboxCgroup) -> subprocess.Popen[bytes]:
    """A process in `cgroup` in the controllers runsc and the backend use (blkio first), frozen."""
    process = subprocess.Popen(["sleep", "600"])
    for controller in ("blkio", *CONTROLLERS, "freezer"):
        directory = CGROUP_ROOT / controller / cgroup.path.lstrip("/")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "cgroup.procs").write_text(str(process.pid))
    freezer = FREEZER / cgroup.path.lstrip("/")
    (freezer / "freezer.state").write_text("FROZEN")
    while (freezer / "freezer.state").read_text().strip() != "FROZEN":
        time.sleep(0.01)
    return process


def test_when_a_killed_task_leaves_after_seconds_then_every_controller_is_still_removed(
    cgroup: SandboxCgroup,
) -> None:
    process = _frozen_task_in(cgroup)
    freezer = FREEZER / cgroup.path.lstrip("/")
    thaw = threading.Timer(2.5, lambda: (freezer / "freezer.state").write_text("THAWED"))
    thaw.start()
    try:
        removed = cgroup.remove(timeout=10.0)
    finally:
        thaw.join()
        process.wait(timeout=10)
    assert removed
    assert cgroup.remaining() == {}
    assert process.returncode == -9


def test_when_a_task_never_leaves_then_removal_gives_up_and_names_it(
    cgroup: SandboxCgroup,
) -> None:
    process = _frozen_task_in(cgroup)
    freezer = FREEZER / cgroup.path.lstrip("/")
    try:
        assert not cgroup.remove(timeout=0.5)
        held = cgroup.remaining()
        assert set(held) >= {"memory", "pids", "freezer"}
        assert all(
            any(entry.startswith(f"{process.pid} ") and entry.endswith(" sleep") for entry in tasks)
            for tasks in held.values()
        )
    finally:
        (freezer / "freezer.state").write_text("THAWED")
        process.wait(timeout=10)
