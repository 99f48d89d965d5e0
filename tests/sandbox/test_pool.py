"""The warm pool in the runsc backend (real gVisor): its refill stays within the host's cap,
yields to executions and is thrown away when one needs its slot; a sandbox that died while
waiting is never handed out; draining and closing leave nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.base import ExecutionResult, ExecutionSpec, Status
from sandbox.cgroup import kill_all
from sandbox.image import ImageStore
from sandbox.pool import PoolOptions, SlotClass
from sandbox.runsc import RunscBackend
from sandbox.slot import Slot
from sandbox.slots import SandboxSlots
from sandgate.settings import REPO_ROOT
from tests.conftest import make_state_dir
from tests.helpers import LoopThread
from tests.sandbox.conftest import Claims

pytestmark = pytest.mark.sandbox

SPEC = ExecutionSpec(execution_id="template", code="")
CLASS = SlotClass.of(SPEC)


class Busy:
    """Counts what holds the host's CPU: sandboxes booting ahead and executions running."""

    def __init__(self) -> None:
        self.booting = 0
        self.running = 0
        self.peak = 0
        self.boots_cancelled = 0
        self.boots_while_running = 0

    def _seen(self) -> None:
        self.peak = max(self.peak, self.booting + self.running)
        if self.booting and self.running:
            self.boots_while_running += 1

    def boot(self, real: Callable[[SlotClass], Awaitable[Slot]]) -> Callable[..., Any]:
        async def counted(cls: SlotClass) -> Slot:
            self.booting += 1
            self._seen()
            try:
                return await real(cls)
            except asyncio.CancelledError:
                self.boots_cancelled += 1
                raise
            finally:
                self.booting -= 1

        return counted


class Pooled:
    """A runsc backend with a pool, its cap, its loop, and the counters above."""

    def __init__(self, state: Path, *, cap: int, size: int) -> None:
        self.slots = SandboxSlots(state / "slots", cap, 60)
        self.claims = Claims()
        self.backend = RunscBackend(
            state_dir=state,
            images=ImageStore(REPO_ROOT / "images", state),
            pool=PoolOptions(size=size),
            slots=self.slots,
            observer=self.claims,
        )
        self.busy = Busy()
        pool = self.backend.pool
        pool._boot = self.busy.boot(pool._boot)  # noqa: SLF001 - count the real boots
        self.loop = LoopThread()
        self.loop.run(self.backend.start())

    async def execute(self, code: str) -> ExecutionResult:
        """What the service's executor does: hold a cap slot, run, count it as running."""
        async with self.slots.acquire():
            self.busy.running += 1
            self.busy._seen()  # noqa: SLF001
            try:
                spec = ExecutionSpec(execution_id=uuid.uuid4().hex, code=code)
                return await self.backend.run(spec)
            finally:
                self.busy.running -= 1

    async def ready(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.backend.pool_state()[CLASS.name]["ready"] < count:
            assert time.monotonic() < deadline, self.backend.pool_state()
            await asyncio.sleep(0.02)

    def close(self) -> None:
        self.loop.run(self.backend.aclose())
        self.loop.close()
        assert self.backend.leftovers() == []


@pytest.fixture
def make_pooled(tmp_path: Path, images: Any) -> Iterator[Callable[..., Pooled]]:
    made: list[Pooled] = []

    def make(**kwargs: int) -> Pooled:
        made.append(Pooled(make_state_dir(tmp_path / f"state{len(made)}"), **kwargs))
        return made[-1]

    yield make
    for pooled in made:
        pooled.close()


def test_when_the_pool_refills_beside_executions_then_never_more_than_the_cap_at_once(
    make_pooled: Callable[..., Pooled],
) -> None:
    pooled = make_pooled(cap=1, size=3)

    async def scenario() -> list[ExecutionResult]:
        pooled.backend.warm([CLASS])
        results = [await pooled.execute("print('x')") for _ in range(6)]
        await pooled.ready(3)
        return results

    results = pooled.loop.run(scenario())
    assert [r.status for r in results] == [Status.OK] * 6
    assert pooled.busy.peak == 1
    assert pooled.busy.boots_while_running == 0


def test_when_a_request_needs_the_slot_a_refill_holds_then_the_refill_gives_it_up(
    make_pooled: Callable[..., Pooled],
) -> None:
    pooled = make_pooled(cap=1, size=1)

    async def scenario() -> tuple[float, ExecutionResult]:
        pooled.backend.warm([CLASS])
        while not pooled.busy.booting:
            await asyncio.sleep(0.005)
        started = time.monotonic()
        async with pooled.slots.acquire():
            waited = time.monotonic() - started
        return waited, await pooled.execute("print('first')")

    waited, result = pooled.loop.run(scenario())
    assert pooled.busy.boots_cancelled >= 1
    assert waited < 0.5, f"the request waited {waited:.2f} s for the refill"
    assert result.status is Status.OK
    pooled.loop.run(pooled.ready(1))  # and the refill comes back once the slot is free


def test_when_a_ready_sandbox_dies_then_it_is_removed_and_never_handed_out(
    make_pooled: Callable[..., Pooled],
) -> None:
    pooled = make_pooled(cap=2, size=1)
    pooled.loop.run(_warm_and_wait(pooled, 1))
    backend = pooled.backend
    (dead,) = list(backend.run_dir.iterdir())
    for directory in backend.footprint.cgroups():  # all of them are the one ready sandbox's
        kill_all(directory)
    deadline = time.monotonic() + 30
    while dead.exists():  # the pool saw it die and removed it
        assert time.monotonic() < deadline, "the dead sandbox is still kept"
        time.sleep(0.05)
    result = pooled.loop.run(pooled.execute("print('still fine')"))
    assert (result.status, result.stdout) == (Status.OK, "still fine\n")


def test_when_a_class_is_no_longer_wanted_then_its_sandboxes_are_removed(
    make_pooled: Callable[..., Pooled],
) -> None:
    pooled = make_pooled(cap=2, size=2)
    pooled.loop.run(_warm_and_wait(pooled, 2))
    assert len(pooled.backend.footprint.leftovers()) > 0  # what the pool keeps is on the host

    async def drain() -> None:
        pooled.backend.warm([])
        await pooled.backend.settle()

    pooled.loop.run(drain())
    assert pooled.backend.pool_state() == {}
    assert pooled.backend.footprint.leftovers() == []


async def _warm_and_wait(pooled: Pooled, count: int) -> None:
    pooled.backend.warm([CLASS])
    await pooled.ready(count)
