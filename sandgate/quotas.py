"""Daily quotas per key and per tenant, and the host's CPU breaker, in front of every execution.

A pipeline calls `admit_execution` before it runs anything (429 `quota_exceeded` naming the
quota when the key or its tenant has used up `executions_per_day` or `cpu_seconds_per_day`;
503 when the host's CPU breaker is open) and `charge_execution` with the result's measured
`cpu_ms` afterwards. `POST /sessions` calls `admit_session` before a session opens, and the
session manager charges the hours each stayed open when it ends (`charge_session_hours`); a
session's executions go through `admit_execution`/`charge_execution` like any other.

Quotas count UTC days: what was used resets at midnight UTC. A run that starts under its quota
is never cut short; the next one is refused. Per-key quotas come from the key's bound policy,
tenant ones from the tenant's (`sandgate.ratelimit.tenant_policy`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from sandgate.breaker import CpuBreaker
from sandgate.errors import QuotaExceeded, Unavailable
from sandgate.keys import ApiKey
from sandgate.policy.budgets import Quotas
from sandgate.policy.loader import PolicySet
from sandgate.ratelimit import tenant_policy
from sandgate.tracing import span
from sandgate.usage.base import Usage, UsageStore

__all__ = ["Budgets", "Charge", "QuotaLine", "UsageReport"]

_FIELDS = {
    "executions_per_day": "executions",
    "cpu_seconds_per_day": "cpu_seconds",
    "session_hours_per_day": "session_hours",
}
_EXECUTION_QUOTAS = ("executions_per_day", "cpu_seconds_per_day")
Scope = Literal["key", "tenant"]


class QuotaLine(BaseModel):
    """One quota of one subject today."""

    quota: str
    used: float
    limit: float | None = Field(description="None: no such quota.")
    left: float | None


class UsageReport(BaseModel):
    """`GET /usage`: what a key and its tenant used today, and what is left."""

    key_id: str
    tenant: str
    day: str = Field(description="The UTC day counted.")
    resets_at: str = Field(description="When the counters start again (midnight UTC).")
    key: list[QuotaLine]
    tenant_usage: list[QuotaLine]


@dataclass(frozen=True)
class Charge:
    """What `admit_execution` hands to `charge_execution`: the breaker's probe flag."""

    probe: bool


class Budgets:
    """Quotas and the CPU breaker over one usage store; `clock` is injectable for tests."""

    def __init__(
        self,
        store: UsageStore,
        breaker: CpuBreaker,
        clock: Callable[[], float] = time.time,
        on_refused: Callable[[str], None] = lambda _reason: None,
    ) -> None:
        self.store = store
        self.breaker = breaker
        self.clock = clock
        self.on_refused = on_refused

    def day(self) -> str:
        """Today, UTC, as `YYYY-MM-DD`."""
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC).date().isoformat()

    def resets_at(self) -> dt.datetime:
        """The next midnight UTC."""
        today = dt.datetime.fromtimestamp(self.clock(), dt.UTC).date()
        return dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), dt.UTC)

    def _subjects(self, key: ApiKey, policies: PolicySet) -> list[tuple[Scope, str, Quotas]]:
        own = policies.bound(key.name, key.tenant).policy.quotas
        shared = tenant_policy(policies, key.tenant).policy.tenant_quotas
        return [("key", f"key:{key.id}", own), ("tenant", f"tenant:{key.tenant}", shared)]

    def _check(self, key: ApiKey, policies: PolicySet, quotas: tuple[str, ...]) -> None:
        day = self.day()
        for scope, subject, limits in self._subjects(key, policies):
            used: Usage | None = None
            for quota in quotas:
                limit = getattr(limits, quota)
                if limit is None:
                    continue
                used = used or self.store.used(subject, day)
                spent = getattr(used, _FIELDS[quota])
                if spent >= limit:
                    raise self._exceeded(scope, quota, spent, limit)

    def _exceeded(self, scope: Scope, quota: str, spent: float, limit: float) -> QuotaExceeded:
        resets = self.resets_at()
        retry = max(1, int(resets.timestamp() - self.clock()))
        return QuotaExceeded(
            f"quota {quota} of this {scope} is used up ({spent:g} of {limit:g} today); "
            f"it resets at {resets.isoformat().replace('+00:00', 'Z')}",
            details=[
                {
                    "quota": quota,
                    "scope": scope,
                    "used": spent,
                    "limit": limit,
                    "resets_at": resets.isoformat(),
                }
            ],
            headers={"Retry-After": str(retry)},
        )

    async def admit_execution(self, key: ApiKey, policies: PolicySet) -> Charge:
        """Raise QuotaExceeded (429) or Unavailable (503, the CPU breaker) before a run."""
        try:
            return Charge(probe=await asyncio.to_thread(self._admit, key, policies))
        except QuotaExceeded:
            self.on_refused("quota_exceeded")
            raise
        except Unavailable:
            self.on_refused("cpu_budget")
            raise

    def _admit(self, key: ApiKey, policies: PolicySet) -> bool:
        """The quotas, then the breaker, on one thread hop; True for the breaker's probe."""
        self._check(key, policies, _EXECUTION_QUOTAS)
        return self.breaker.admit()

    async def charge_execution(self, key: ApiKey, cpu_ms: int, charge: Charge) -> None:
        """Count one execution and its CPU-seconds for the key, its tenant and the host."""
        seconds = max(0, cpu_ms) / 1000
        with span("budget.charge", cpu_seconds=seconds):
            usage = Usage(executions=1, cpu_seconds=seconds)
            await asyncio.to_thread(self._charge, key, usage, charge.probe)

    def _charge(self, key: ApiKey, usage: Usage, probe: bool) -> None:
        """Both writes of a charge on one thread hop (each hop costs more than its write)."""
        self._add(key.id, key.tenant, usage)
        self.breaker.record(usage.cpu_seconds, probe=probe)

    async def admit_session(self, key: ApiKey, policies: PolicySet) -> None:
        """Raise QuotaExceeded (429) when the key or its tenant has no session-hours left."""
        try:
            await asyncio.to_thread(self._check, key, policies, ("session_hours_per_day",))
        except QuotaExceeded:
            self.on_refused("quota_exceeded")
            raise

    async def charge_session_hours(self, key_id: str, tenant: str, hours: float) -> None:
        """Count hours a session of a key stayed open (the service calls it as each ends)."""
        await asyncio.to_thread(self._add, key_id, tenant, Usage(session_hours=max(0.0, hours)))

    def _add(self, key_id: str, tenant: str, usage: Usage) -> None:
        self.store.add([f"key:{key_id}", f"tenant:{tenant}"], self.day(), usage)

    def report(self, key: ApiKey, policies: PolicySet) -> UsageReport:
        """What the key and its tenant used today, per quota, and what is left."""
        day = self.day()
        lines: dict[str, list[QuotaLine]] = {}
        for scope, subject, limits in self._subjects(key, policies):
            used = self.store.used(subject, day)
            lines[scope] = [
                _line(quota, getattr(used, field), getattr(limits, quota))
                for quota, field in _FIELDS.items()
            ]
        return UsageReport(
            key_id=key.id,
            tenant=key.tenant,
            day=day,
            resets_at=self.resets_at().isoformat(),
            key=lines["key"],
            tenant_usage=lines["tenant"],
        )

    def prune(self) -> None:
        """Drop counters older than a week (host minutes older than two hours)."""
        today = dt.datetime.fromtimestamp(self.clock(), dt.UTC).date()
        self.store.prune((today - dt.timedelta(days=7)).isoformat(), int(self.clock() // 60) - 120)


def _line(quota: str, used: Any, limit: float | None) -> QuotaLine:
    left = None if limit is None else max(0.0, limit - used)
    return QuotaLine(quota=quota, used=round(float(used), 6), limit=limit, left=left)
