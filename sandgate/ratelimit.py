"""Rate limits per key and per tenant: token buckets from pyrate-limiter, in memory or in Redis.

Each limited route (`execute`, `sessions`, `screen`) of each key has a bucket of the key's
policy's `rate_limits`, and each tenant one of its policy's `tenant_rate_limits`, shared by all
of its keys. A request takes one token from its key's bucket, then from its tenant's; it is
refused (429 `rate_limited`, `Retry-After`) when either is empty, and a refused request spends
nothing from the bucket that refused it. The buckets are pyrate-limiter's `TokenBucket` (GCRA:
one number per bucket), kept in this process by default or, with `SANDGATE_REDIS_URL`, in Redis
where every worker and host shares them (the update is one atomic Lua script).

Every answer of a limited route carries `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset` (seconds until the bucket is full again) of the tighter of its two buckets:
the dependency leaves them in the request's state (`sandgate.logs.EXTRA_HEADERS`) and the
request-id middleware adds them to whatever the answer turns out to be.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal, TypeVar, cast

from pyrate_limiter import (
    AbstractClock,
    InMemoryStateStore,
    Rate,
    RateItem,
    RedisStateStore,
    StateBucket,
    StateStore,
    TokenBucket,
    WallClock,
)
from redis.asyncio import Redis

from sandgate.policy.budgets import RateLimit, RateLimits
from sandgate.policy.loader import PolicySet, ResolvedPolicy

__all__ = [
    "Allowance",
    "LimitedRoute",
    "RateLimiter",
    "tenant_policy",
]

T = TypeVar("T")
LimitedRoute = Literal["execute", "sessions", "screen"]
_ALGORITHM = TokenBucket()
# A rate of r a second as pyrate-limiter's integer `limit per interval (ms)`: exact to 1/1000.
_INTERVAL_MS = 1_000_000


@dataclass(frozen=True)
class Allowance:
    """What one bucket says about a request: allowed or not, and what is left."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int
    scope: Literal["key", "tenant"]

    def headers(self) -> dict[str, str]:
        """The `RateLimit-*` headers (and `Retry-After` when refused)."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


def tenant_policy(policies: PolicySet, tenant: str) -> ResolvedPolicy:
    """The policy bound to a tenant (its keys' own bindings aside): where its shared limits
    and quotas come from."""
    return policies.policies[policies.bindings.tenants.get(tenant) or policies.bindings.default]


def _rate(limit: RateLimit) -> Rate:
    return Rate(max(1, round(limit.rate * _INTERVAL_MS / 1000)), _INTERVAL_MS, burst=limit.burst)


class RateLimiter:
    """Token buckets per (key or tenant, route), in memory or in Redis."""

    def __init__(self, redis_url: str | None = None, clock: AbstractClock | None = None) -> None:
        """`clock` answers wall-clock milliseconds synchronously (Redis compares them across
        hosts)."""
        self._redis: Redis | None = Redis.from_url(redis_url) if redis_url else None
        self._clock = clock or WallClock()
        self._buckets: dict[tuple[str, str], tuple[RateLimit, StateBucket]] = {}

    @property
    def storage(self) -> str:
        """Where the buckets live: `memory` or `redis`."""
        return "redis" if self._redis is not None else "memory"

    async def close(self) -> None:
        """Close the Redis connection, if any."""
        if self._redis is not None:
            await self._redis.aclose()

    async def ping(self) -> None:
        """Raise if Redis does not answer (nothing to do in memory)."""
        if self._redis is not None:
            await self._redis.ping()

    def _bucket(self, subject: str, route: str, limit: RateLimit) -> StateBucket:
        known = self._buckets.get((subject, route))
        if known is not None and known[0] == limit:
            return known[1]
        store: StateStore
        if known is not None:  # the policy changed: same state, new rate
            store = known[1].store
        elif self._redis is not None:
            store = RedisStateStore(self._redis, key=f"sandgate:ratelimit:{subject}:{route}")
        else:
            store = InMemoryStateStore()
        bucket = StateBucket([_rate(limit)], algorithm=_ALGORITHM, store=store, clock=self._clock)
        self._buckets[(subject, route)] = (limit, bucket)
        return bucket

    async def _take(
        self, subject: str, route: str, limit: RateLimit, scope: Literal["key", "tenant"]
    ) -> Allowance:
        bucket = self._bucket(subject, route, limit)
        item = RateItem(route, cast(int, self._clock.now()))  # a synchronous clock
        allowed: bool
        owed: int
        retry_ms = 0
        if self._redis is None:  # in memory everything answers at once: nothing to await
            allowed = cast(bool, bucket.put(item))
            owed = cast(int, bucket.count())
            if not allowed:
                retry_ms = cast(int, bucket.waiting(item))
        else:  # async Redis: an awaitable, unless the bucket already knows the answer
            allowed = await _settled(bucket.put(item))
            owed = await _settled(bucket.count())
            if not allowed:
                retry_ms = await _settled(bucket.waiting(item))
        rate = bucket.rates[0]
        owed = min(rate.burst, owed)
        return Allowance(
            allowed=allowed,
            limit=rate.burst,
            remaining=max(0, rate.burst - owed),
            reset_s=math.ceil(owed * rate.interval / rate.limit / 1000),
            retry_after_s=max(1, math.ceil(retry_ms / 1000)),
            scope=scope,
        )

    async def admit(
        self, key_id: str, key_policy: ResolvedPolicy, tenant: str, policies: PolicySet, route: str
    ) -> Allowance | None:
        """Take a token for `route` from the key's bucket, then its tenant's; the tighter
        allowance (None when neither is limited). Refused: the first bucket that was empty."""
        checks: list[tuple[str, RateLimit, Literal["key", "tenant"]]] = []
        own = _limit(key_policy.policy.rate_limits, route)
        if own is not None:
            checks.append((f"key:{key_id}", own, "key"))
        shared = _limit(tenant_policy(policies, tenant).policy.tenant_rate_limits, route)
        if shared is not None:
            checks.append((f"tenant:{tenant}", shared, "tenant"))
        tightest: Allowance | None = None
        for subject, limit, scope in checks:
            allowance = await self._take(subject, route, limit, scope)
            if not allowance.allowed:
                return allowance
            if tightest is None or allowance.remaining < tightest.remaining:
                tightest = allowance
        return tightest


def _limit(limits: RateLimits, route: str) -> RateLimit | None:
    found: RateLimit | None = getattr(limits, route)
    return found


async def _settled(value: T | Awaitable[T]) -> T:
    return await value if inspect.isawaitable(value) else value
