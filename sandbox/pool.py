"""The warm pool: sandboxes started ahead, per class, each handed to exactly one execution.

A class is what is fixed when a sandbox starts (`SlotClass`: language, image, process ceiling,
disk size; egress is part of it too, and a class with egress is never pooled: see README). The
service names the classes to keep warm (`warm`, from its policies; a reload drains the classes
that went away). `claim` hands out a ready slot of a class at once, or None (the caller starts
one cold, never waiting for the refill). The refill starts sandboxes, each inside a background
slot of the host-wide cap (`SandboxSlots.background`: it yields to requests and is thrown away
when one needs its slot), at a low CPU weight, until every class has `size` ready.

Each worker process of the service has its own pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import structlog

from sandbox.base import ExecutionSpec, Limits
from sandbox.languages import language
from sandbox.runner import needs_memory_cap
from sandbox.slot import Slot
from sandbox.slots import SandboxSlots

__all__ = ["NO_POOL", "Pool", "PoolObserver", "PoolOptions", "SlotClass"]

log = structlog.get_logger(__name__)

RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0


@dataclass(frozen=True, order=True)
class SlotClass:
    """What a sandbox is started with, so what a pooled one must match to serve a spec."""

    language: str
    image: str
    max_processes: int
    disk_mb: int
    egress: bool = False

    @classmethod
    def of(cls, spec: ExecutionSpec) -> SlotClass:
        """The class of sandbox `spec` needs."""
        return cls.for_limits(
            spec.language, spec.limits, egress=spec.egress is not None, image=spec.image
        )

    @classmethod
    def for_limits(
        cls, language_name: str, limits: Limits, *, egress: bool, image: str | None = None
    ) -> SlotClass:
        """The class of a run in `language_name` under `limits` (a policy's, say)."""
        return cls(
            language=language_name,
            image=language(language_name).image_for(image),
            max_processes=limits.max_processes,
            disk_mb=limits.disk_mb,
            egress=egress,
        )

    @property
    def name(self) -> str:
        """A stable label for `/ready` and metrics: `python/python/p64/d64[/egress]`."""
        name = f"{self.language}/{self.image}/p{self.max_processes}/d{self.disk_mb}"
        return name + ("/egress" if self.egress else "")

    @property
    def poolable(self) -> bool:
        """Whether sandboxes of the class can be started ahead: a runner whose command needs
        no per-request memory cap, and no egress."""
        lang = language(self.language)
        return lang.runner is not None and not needs_memory_cap(lang) and not self.egress


@dataclass(frozen=True)
class PoolOptions:
    """`size` ready sandboxes per class (0: no pool); `preimport`: modules their runner
    imports before it waits (for Python: stdlib names)."""

    size: int = 0
    preimport: tuple[str, ...] = ()


NO_POOL = PoolOptions()


class PoolObserver(Protocol):
    """Told what the pool does, for metrics."""

    def pool_claimed(self, hit: bool) -> None:
        """A claim found a ready sandbox (hit) or none (miss: the run starts cold)."""

    def pool_ready(self, class_name: str, ready: int) -> None:
        """How many sandboxes of a class are ready now."""


class Pool:
    """Ready slots per class, refilled in the background; see the module docstring."""

    def __init__(
        self,
        options: PoolOptions,
        *,
        boot: Callable[[SlotClass], Awaitable[Slot]],
        retire: Callable[[Slot], None],
        slots: SandboxSlots | None,
        observer: PoolObserver | None = None,
    ) -> None:
        if options.size > 0 and slots is None:
            raise ValueError("a pool needs the host-wide cap its refill must stay within")
        self.size = options.size
        self._boot = boot
        self._retire = retire
        self._slots = slots
        self._observer = observer
        self._targets: set[SlotClass] = set()
        self._ready: dict[SlotClass, deque[Slot]] = {}
        self._booting: list[SlotClass] = []  # one entry per boot in progress
        # Boots at once: all slots of the cap but one, so a request seldom has to take one from
        # a refill (which throws that boot's work away).
        self._parallel = max(1, slots.count - 1) if slots is not None else 1
        self._failures = 0  # boots failed in a row
        self._not_before = 0.0  # no boot starts before this loop time (after failures)
        self._wake = asyncio.Event()
        self._refill: asyncio.Task[None] | None = None

    # -- what the service and the backend call ------------------------------------------------

    def start(self) -> None:
        """Start refilling (in the running loop)."""
        if self.size > 0 and self._refill is None:
            self._refill = asyncio.create_task(self._refill_forever())

    def warm(self, classes: Iterable[SlotClass]) -> None:
        """Keep these classes ready (those that can be pooled); drain every other class."""
        self._targets = {c for c in classes if c.poolable} if self.size > 0 else set()
        for cls in [c for c in self._ready if c not in self._targets]:
            for slot in self._ready.pop(cls):
                self._retire(slot)
            self._notify(cls)
        self._wake.set()

    def claim(self, cls: SlotClass) -> Slot | None:
        """A ready slot of `cls`, taken out of the pool for good; None if there is none."""
        if cls not in self._targets:
            return None
        ready = self._ready.get(cls, deque())
        found = None
        while ready and found is None:
            slot = ready.popleft()
            if slot.alive:
                found = slot
            else:
                log.warning("pool.slot_died", sandbox=slot.name, sandbox_class=cls.name)
                self._retire(slot)
        self._notify(cls)
        if self._observer is not None:
            self._observer.pool_claimed(found is not None)
        self._wake.set()
        return found

    def state(self) -> dict[str, dict[str, int]]:
        """Per class kept warm: sandboxes `ready` now and the `target`."""
        return {
            cls.name: {"ready": len(self._ready.get(cls, ())), "target": self.size}
            for cls in sorted(self._targets)
        }

    async def aclose(self) -> None:
        """Stop refilling and give every ready slot back to the backend for removal."""
        if self._refill is not None:
            self._refill.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refill
            self._refill = None
        self.warm(())

    # -- the refill -----------------------------------------------------------------------------

    def _notify(self, cls: SlotClass) -> None:
        if self._observer is not None:
            self._observer.pool_ready(cls.name, len(self._ready.get(cls, ())))

    def _wanted(self) -> SlotClass | None:
        """The class furthest below its target (counting the ones starting), if any is."""
        have = {c: len(self._ready.get(c, ())) + self._booting.count(c) for c in self._targets}
        short = [c for c in sorted(self._targets) if have[c] < self.size]
        return min(short, key=lambda c: have[c]) if short else None

    async def _boot_in_background(self, cls: SlotClass) -> Slot:
        assert self._slots is not None
        async with self._slots.background():
            return await self._boot(cls)

    async def _refill_forever(self) -> None:
        """Start sandboxes for the classes short of their target, as many at once as the cap
        has slots (each boot waits for a background slot of its own)."""
        assert self._slots is not None
        boots: set[asyncio.Task[Slot]] = set()
        loop = asyncio.get_running_loop()
        try:
            while True:
                cls = self._wanted()
                if cls is None or len(boots) >= self._parallel or loop.time() < self._not_before:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                task = asyncio.create_task(self._boot_in_background(cls))
                boots.add(task)
                self._booting.append(cls)
                task.add_done_callback(boots.discard)
                task.add_done_callback(functools.partial(self._booted, cls))
        finally:
            for task in boots:
                task.cancel()
            await asyncio.gather(*boots, return_exceptions=True)

    def _booted(self, cls: SlotClass, task: asyncio.Task[Slot]) -> None:
        """A boot ended: keep its slot if its class still wants one, else give it back."""
        self._booting.remove(cls)
        self._wake.set()
        if task.cancelled():
            return  # a request needed its cap slot, or the pool is closing
        if (error := task.exception()) is not None:
            # Wait before the next boot, longer each time (a missing image, a broken runtime).
            self._failures += 1
            delay = min(RETRY_MIN_S * 2 ** (self._failures - 1), RETRY_MAX_S)
            loop = asyncio.get_running_loop()
            self._not_before = loop.time() + delay
            loop.call_later(delay, self._wake.set)
            log.error("pool.boot_failed", sandbox_class=cls.name, error=str(error)[:500])
            return
        self._failures = 0
        slot = task.result()
        if cls in self._targets and len(self._ready.get(cls, ())) < self.size:
            self._ready.setdefault(cls, deque()).append(slot)
            slot.exited.add_done_callback(functools.partial(self._died, cls, slot))
            self._notify(cls)
        else:
            self._retire(slot)

    def _died(self, cls: SlotClass, slot: Slot, _exit: object) -> None:
        """A ready sandbox ended on its own (it was not claimed): remove it, start another."""
        ready = self._ready.get(cls, deque())
        if slot in ready:
            ready.remove(slot)
            log.warning("pool.slot_died", sandbox=slot.name, sandbox_class=cls.name)
            self._retire(slot)
            self._notify(cls)
            self._wake.set()
