"""When keys expire, by their policy's `keys` section, and which are close to it."""

from __future__ import annotations

import datetime as dt

from sandgate.keys.base import ApiKey
from sandgate.policy.budgets import KeyLifetime
from sandgate.policy.loader import PolicySet

__all__ = ["expires_at", "expiring", "grace_until", "lifetime", "when"]


def lifetime(policies: PolicySet, name: str, tenant: str) -> KeyLifetime:
    """The `keys` section of the policy a key of this name and tenant is bound to."""
    return policies.bound(name, tenant).policy.keys


def expires_at(policies: PolicySet, name: str, tenant: str, now: float) -> float:
    """When a key made now expires."""
    return now + lifetime(policies, name, tenant).expiry_days * 86_400


def grace_until(policies: PolicySet, key: ApiKey, now: float, hours: float | None) -> float:
    """Until when a rotated key stays valid (its policy's grace unless `hours` is given)."""
    grace = (
        lifetime(policies, key.name, key.tenant).rotation_grace_hours if hours is None else hours
    )
    return now + grace * 3600


def when(at: float) -> str:
    """A time as ISO 8601 UTC."""
    return (
        dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def expiring(keys: list[ApiKey], policies: PolicySet, now: float) -> list[str]:
    """One warning per live key within its policy's `warn_days` of expiry."""
    warnings = []
    for key in keys:
        if key.revoked_at is not None or key.expires_at is None or key.expired(now):
            continue
        warn_s = lifetime(policies, key.name, key.tenant).warn_days * 86_400
        if key.expires_at - now <= warn_s:
            days = (key.expires_at - now) / 86_400
            warnings.append(
                f"key {key.id} ({key.name}, tenant {key.tenant}) expires at "
                f"{when(key.expires_at)}, in {days:.1f} days: `sandgate keys rotate {key.id}`"
            )
    return warnings
