"""runsc-only behaviour: what a crashed service leaves on the host, and its reaping.

Everything both backends must do is in test_conformance.py; the Docker backend's crash and
daemon faults are in tests/docker/.
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from sandbox.runsc import RunscBackend

pytestmark = pytest.mark.sandbox


def test_when_the_service_is_killed_mid_run_then_reap_removes_what_it_left(
    tmp_path: Any, images: Any
) -> None:
    from tests.conftest import make_state_dir

    state = make_state_dir(tmp_path / "crash-state")
    script = textwrap.dedent(f"""
        import asyncio
        from pathlib import Path
        from sandbox.base import ExecutionSpec
        from sandbox.image import ImageStore
        from sandbox.runsc import RunscBackend
        state = Path({str(state)!r})
        store = ImageStore(Path({str(images.recipes_dir)!r}), state)
        b = RunscBackend(state_dir=state, images=store)
        spec = ExecutionSpec(execution_id="crashme", code="import time; time.sleep(600)")
        asyncio.run(b.run(spec))
    """)
    import subprocess
    import sys
    import time

    from sandbox.image import ImageStore

    child = subprocess.Popen([sys.executable, "-c", script])
    crashed = RunscBackend(state_dir=state, images=ImageStore(images.recipes_dir, state))
    deadline = time.monotonic() + 30
    while not any(item.startswith("process") for item in crashed.leftovers()):
        assert time.monotonic() < deadline, "the child never started its sandbox"
        time.sleep(0.1)
    time.sleep(0.5)
    child.kill()
    child.wait()
    left = crashed.leftovers()
    assert any(item.startswith("cgroup") for item in left)
    assert any(item.startswith("bundle") for item in left)
    assert crashed.reap() > 0
    assert crashed.leftovers() == []


def test_when_a_cgroup_outlives_its_slot_then_a_start_removes_it_and_spares_live_slots(
    tmp_path: Any, images: Any
) -> None:
    """A cgroup whose bundle is gone belongs to no slot (a slot makes its bundle first and
    removes it last): a start removes it. A slot of a live worker (here, this process) stays."""
    import asyncio

    from sandbox.cgroup import SandboxCgroup
    from sandbox.image import ImageStore
    from sandbox.languages import language
    from tests.conftest import make_state_dir

    state = make_state_dir(tmp_path / "stray-state")
    backend = RunscBackend(state_dir=state, images=ImageStore(images.recipes_dir, state))
    stray = SandboxCgroup(backend.cgroup_parent, "0" * 32)
    stray.create(memory_bytes=None, max_processes=8, cpus=None)

    async def start_beside_a_live_slot() -> list[str]:
        live = backend._new_slot(language("python"), ahead=False)
        live.cgroup.create(memory_bytes=None, max_processes=8, cpus=None)
        try:
            await backend.start()
            return backend.footprint.leftovers()
        finally:
            await live.destroy()
            await backend.aclose()

    left = asyncio.run(start_beside_a_live_slot())
    assert stray.remaining() == {}
    assert left and all("0" * 32 not in item for item in left)
    assert backend.leftovers() == []
