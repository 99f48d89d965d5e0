"""The policies in force: the last good set, swapped whole when a valid change lands.

Requests read `registry.current` once and use that snapshot throughout, so no request sees half
a change. A rejected reload leaves the last good set in force and is kept in `rejected` (shown
by `/ready` and `GET /policies`) until a later reload succeeds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog
import watchfiles

from sandgate.errors import PolicyRefused
from sandgate.policy.issues import PolicyIssue, PolicySetInvalid
from sandgate.policy.loader import PolicySet, ResolvedPolicy, load_policy_set
from sandgate.policy.strictness import looser_points
from sandgate.tracing import span

__all__ = ["PolicyRegistry", "Rejection"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Rejection:
    """A reload that was refused, and why."""

    at: float
    issues: list[PolicyIssue]


Listener = Callable[[PolicySet | None, Rejection | None], None]


class PolicyRegistry:
    """Holds the policy set in force for one policy directory."""

    def __init__(
        self,
        directory: Path,
        producers: Mapping[str, Iterable[str]] | None = None,
        listener: Listener | None = None,
    ) -> None:
        self.directory = directory
        self.producers = dict(producers or {})
        self._listener = listener
        self.current: PolicySet = load_policy_set(directory)  # raises on a bad start
        self.rejected: Rejection | None = None
        self._notify(self.current, None)

    def _notify(self, loaded: PolicySet | None, rejected: Rejection | None) -> None:
        if self._listener is not None:
            self._listener(loaded, rejected)

    def reload(self) -> bool:
        """Load the directory again; swap it in if valid. True when swapped."""
        try:
            fresh = load_policy_set(self.directory)
        except PolicySetInvalid as exc:
            self.rejected = Rejection(at=time.time(), issues=exc.issues)
            log.error(
                "policy.reload_rejected",
                issues=[str(i) for i in exc.issues[:20]],
                in_force={n: p.hash[:12] for n, p in self.current.policies.items()},
            )
            self._notify(None, self.rejected)
            return False
        changed = {
            n: p.hash[:12]
            for n, p in fresh.policies.items()
            if n not in self.current.policies or self.current.policies[n].hash != p.hash
        }
        self.current = fresh
        self.rejected = None
        log.info("policy.reloaded", changed=changed, policies=len(fresh.policies))
        self._notify(fresh, None)
        return True

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload on every change of the directory until `stop` is set."""
        async for _changes in watchfiles.awatch(
            self.directory,
            stop_event=stop,
            debounce=300,
            step=50,
            recursive=False,
            force_polling=False,
        ):
            await asyncio.to_thread(self.reload)

    def resolve(self, key_name: str, tenant: str, requested: str | None) -> ResolvedPolicy:
        """The policy a request runs under: its key's, or a stricter one it names."""
        with span("policy.resolve"):
            return self._resolve(key_name, tenant, requested)

    def _resolve(self, key_name: str, tenant: str, requested: str | None) -> ResolvedPolicy:
        policies = self.current
        bound = policies.bound(key_name, tenant)
        if requested is None or requested == bound.name:
            return bound
        chosen = policies.policies.get(requested)
        if chosen is None:
            raise PolicyRefused(f"no policy named {requested!r}")
        looser = looser_points(chosen.policy, bound.policy, self.producers)
        if looser:
            raise PolicyRefused(
                f"policy {requested!r} is looser than this key's policy {bound.name!r}: "
                + "; ".join(looser[:5]),
                details=[{"loc": ["body", "policy"], "msg": point} for point in looser],
            )
        return chosen
