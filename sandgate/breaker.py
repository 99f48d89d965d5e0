"""The host-wide circuit breaker on CPU-seconds per hour: past the budget, new executions stop.

    closed --(the last 60 minutes' CPU-seconds reach the budget)--> open
    open --(cooldown passed)--> half_open
    half_open: one probe execution at a time; after it, under budget -> closed, else -> open
               (and under budget is checked first: a probe that could only re-trip is not run)

The CPU-seconds come from the usage store, so every worker of the host sees the same sum and
trips on it; each worker keeps its own state. `SANDGATE_CPU_BUDGET_PER_HOUR` unset: never trips.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import structlog

from sandgate.errors import Unavailable
from sandgate.usage.base import UsageStore

__all__ = ["BreakerState", "CpuBreaker"]

log = structlog.get_logger(__name__)
WINDOW_MINUTES = 60


class BreakerState(StrEnum):
    """Where the breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CpuBreaker:
    """Refuses new executions (503) while the host's CPU-seconds of the last hour pass the
    budget, and for `cooldown_s` after; then lets one probe through at a time."""

    def __init__(
        self,
        store: UsageStore,
        budget_s: float | None,
        cooldown_s: float,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[BreakerState, float], None] | None = None,
    ) -> None:
        self.store = store
        self.budget_s = budget_s
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.state = BreakerState.CLOSED
        self.opened_at = 0.0
        self._probe_since: float | None = None
        self._on_change = on_change

    def used_s(self) -> float:
        """CPU-seconds the host used in the last hour."""
        now_minute = int(self.clock() // 60)
        return self.store.host_cpu(now_minute - WINDOW_MINUTES + 1)

    def _move(self, state: BreakerState, used: float) -> None:
        if state is BreakerState.OPEN:
            self.opened_at = self.clock()
        if state is not self.state:
            log.warning("cpu_budget." + state.value, used_s=round(used, 3), budget_s=self.budget_s)
        self.state = state
        self._probe_since = None
        if self._on_change is not None:
            self._on_change(state, used)

    def _refuse(self, used: float) -> Unavailable:
        retry = max(1, round(self.opened_at + self.cooldown_s - self.clock()))
        return Unavailable(
            f"the host's CPU budget of {self.budget_s:g} CPU-seconds per hour is spent "
            f"({used:.1f} used in the last hour): new executions are refused until it "
            "recovers (see /ready)",
            headers={"Retry-After": str(retry)},
        )

    def admit(self) -> bool:
        """Raise Unavailable when no new execution may start; True when this one is the
        half-open probe (the caller must `record` it, whatever happens)."""
        if self.budget_s is None:
            return False
        now = self.clock()
        if self.state is BreakerState.OPEN and now >= self.opened_at + self.cooldown_s:
            self._move(BreakerState.HALF_OPEN, self.used_s())
        if self.state is BreakerState.OPEN:
            raise self._refuse(self.used_s())
        used = self.used_s()
        if used >= self.budget_s:
            self._move(BreakerState.OPEN, used)
            raise self._refuse(used)
        if self.state is BreakerState.CLOSED:
            return False
        if self._probe_since is not None and now < self._probe_since + self.cooldown_s:
            raise self._refuse(used)  # one probe at a time (a lost probe expires)
        self._probe_since = now
        return True

    def record(self, cpu_seconds: float, *, probe: bool) -> None:
        """Count an execution's CPU-seconds; trip, or close after a good probe."""
        if self.budget_s is None:
            return
        if cpu_seconds > 0:
            self.store.add_host_cpu(int(self.clock() // 60), cpu_seconds)
        used = self.used_s()
        if used >= self.budget_s:
            if self.state is not BreakerState.OPEN:
                self._move(BreakerState.OPEN, used)
        elif probe and self.state is BreakerState.HALF_OPEN:
            self._move(BreakerState.CLOSED, used)

    def status(self) -> dict[str, Any]:
        """For /ready: `ok` unless open, the state, the last hour's use and the budget."""
        if self.budget_s is None:
            return {"ok": True, "state": "off"}
        used = self.used_s()
        body: dict[str, Any] = {
            "ok": self.state is not BreakerState.OPEN,
            "state": self.state.value,
            "used_s_last_hour": round(used, 3),
            "budget_s_per_hour": self.budget_s,
        }
        if self.state is BreakerState.OPEN:
            body["detail"] = (
                f"CPU budget tripped: {used:.1f} of {self.budget_s:g} CPU-seconds used in the "
                f"last hour; a probe is let through from "
                f"{time.strftime('%H:%M:%S', time.gmtime(self.opened_at + self.cooldown_s))} UTC"
            )
        return body
