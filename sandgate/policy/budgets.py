"""Policy sections on how much a caller may use: rate limits, daily quotas, key lifetimes.

`rate_limits` hold per key and `tenant_rate_limits` for all of a tenant's keys together; the
same for `quotas` and `tenant_quotas`. A missing entry (or a missing section) means no limit of
that kind. Per-key sections come from the key's bound policy, tenant sections from the policy
bound to the tenant; a policy a request names for itself never changes them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["KeyLifetime", "Quotas", "RateLimit", "RateLimits"]


class RateLimit(BaseModel):
    """A bucket of `burst` requests refilled at `rate` requests a second."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: float = Field(gt=0, le=100_000, description="Sustained requests per second.")
    burst: int = Field(gt=0, le=100_000, description="Most requests at once (the bucket size).")


class RateLimits(BaseModel):
    """One limit per limited route; a missing entry leaves that route unlimited."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    execute: RateLimit | None = Field(None, description="`POST /execute`.")
    sessions: RateLimit | None = Field(
        None, description="Session calls: `POST /sessions` and `POST /sessions/{id}/execute`."
    )
    screen: RateLimit | None = Field(None, description="`POST /screen`.")


class Quotas(BaseModel):
    """Daily budgets (UTC days); a missing entry is no quota of that kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    executions_per_day: int | None = Field(
        None, gt=0, description="Executions started (sessions' included)."
    )
    cpu_seconds_per_day: float | None = Field(
        None, gt=0, description="CPU-seconds of executions, as each result's `cpu_ms` measured."
    )
    session_hours_per_day: float | None = Field(
        None, gt=0, description="Hours that sessions of the caller stay open."
    )


class KeyLifetime(BaseModel):
    """How long keys bound to this policy live, and when their holders are warned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    expiry_days: float = Field(90, gt=0, le=3650, description="A new key's lifetime.")
    rotation_grace_hours: float = Field(
        24, ge=0, le=24 * 90, description="How long a rotated key stays valid beside its successor."
    )
    warn_days: float = Field(
        14, ge=0, le=365, description="Keys this close to expiry are listed in /ready and logged."
    )
