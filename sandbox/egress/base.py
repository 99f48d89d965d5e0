"""The egress proxy's contract: what it is given (filter, resolver, caps) and what it reports.

The proxy holds no policy of its own. It asks an injected `EgressFilter` whether a host and
port may be reached, asks an injected `Resolver` for the addresses of a name (once per
attempt: it connects only to an address it checked), and reports every attempt as a
`sandbox.base.EgressAttempt` to an optional `AttemptCallback`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from sandbox.base import EgressAttempt, MiB

__all__ = [
    "AttemptCallback",
    "EgressCaps",
    "EgressFilter",
    "IPAddress",
    "Resolver",
    "ResolveError",
    "Verdict",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

AttemptCallback = Callable[[EgressAttempt], Awaitable[None] | None]
"""Called once per attempt when it is finished (denied, failed or closed), final byte counts set."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A filter's answer for one host and port."""

    allowed: bool
    reason: str


class EgressFilter(Protocol):
    """Decides which hosts may be reached; `sandbox.egress.rules.Allowlist` is the real one."""

    def check(self, host: str, port: int) -> Verdict:
        """Decide for a normalised host (lower-case IDNA name or IP text) and port."""

    def names_address(self, address: IPAddress, port: int) -> bool:
        """True when an allow entry names exactly this address and port (not a name for it)."""


class ResolveError(Exception):
    """A name could not be resolved; the message is safe to show to the sandboxed program."""


class Resolver(Protocol):
    """Looks a name up; the proxy calls it once per attempt and never connects by name."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Return the addresses of `host` in preference order, or raise `ResolveError`."""


class EgressCaps(BaseModel):
    """Limits of one execution's egress; every one closes or refuses a connection when hit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bytes_per_connection: int = Field(
        256 * MiB, gt=0, description="Bytes up plus down one connection may carry."
    )
    bytes_per_execution: int = Field(
        1024 * MiB, gt=0, description="Bytes up plus down all connections together may carry."
    )
    connections_per_execution: int = Field(
        256, gt=0, description="Connections accepted over the whole execution; later ones refused."
    )
    open_connections: int = Field(
        32, gt=0, description="Connections open at once; one more is refused (kernel memory)."
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="Time a client has to send a complete request head (slowloris)."
    )
    idle_timeout_s: float = Field(
        60.0, gt=0, description="A connection with no bytes either way for this long is closed."
    )
    connect_timeout_s: float = Field(10.0, gt=0, description="Time to connect to the origin.")
    resolve_timeout_s: float = Field(5.0, gt=0, description="Time to resolve the origin's name.")
    max_head_bytes: int = Field(
        32 * 1024, ge=1024, description="Largest request line plus headers accepted."
    )
