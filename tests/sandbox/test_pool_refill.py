"""The pool's refill as logic, with boots that need no sandbox (the behaviour on real gVisor is
in test_pool.py): a class whose sandboxes cannot start holds back no other class."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

from sandbox.base import Limits
from sandbox.pool import Pool, PoolOptions, SlotClass
from sandbox.slot import Slot
from sandbox.slots import SandboxSlots

BROKEN = SlotClass.for_limits("node", Limits(), egress=False)
FINE = SlotClass.for_limits("python", Limits(), egress=False)


class _Started:
    """What the pool reads of a started sandbox: whether it lives, and when it exits."""

    def __init__(self) -> None:
        self.alive = True
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.name = "stand-in"


def test_when_one_class_cannot_start_then_the_others_still_fill(tmp_path: Path) -> None:
    attempts = {BROKEN: 0, FINE: 0}

    async def boot(cls: SlotClass) -> Slot:
        attempts[cls] += 1
        await asyncio.sleep(0)
        if cls == BROKEN:
            raise RuntimeError("the runner's first line is not `ready`")
        return cast(Slot, _Started())

    async def scenario() -> dict[str, dict[str, int]]:
        slots = SandboxSlots(tmp_path / "slots", count=2, wait_s=1)
        pool = Pool(PoolOptions(size=3), boot=boot, retire=lambda _slot: None, slots=slots)
        pool.start()
        pool.warm([BROKEN, FINE])
        for _ in range(200):
            if pool.state()[FINE.name]["ready"] == 3:
                break
            await asyncio.sleep(0.02)
        state = pool.state()
        await pool.aclose()
        return state

    state = asyncio.run(scenario())
    assert state[FINE.name] == {"ready": 3, "target": 3}
    assert state[BROKEN.name]["ready"] == 0
    # backing off: a handful of attempts in those seconds, not one per loop turn
    assert 1 <= attempts[BROKEN] <= 5
