"""Live sessions: their sandboxes, one execution at a time each, idle and lifetime limits.

The manager holds each live session's sandbox (`sandbox.base.SandboxSession`) and its lock;
the registry holds the facts that outlive the process. A session is found only by the tenant
that made it: any other tenant's id, like an unknown one, is 404; an ended one is 410 with its
reason. The reaper ends idle and expired sessions and notices sandboxes that died on their own;
every end is audited (`session.end`, with the reason). At start-up, sessions a previous process
left `active` are ended with reason `restart` (their sandboxes went with it and are reaped).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from sandbox.base import SandboxBackend, SandboxSession, SessionSpec, SessionsUnsupported
from sandgate.errors import Busy, Conflict, Gone, QuotaExceeded, SessionNotFound
from sandgate.keys import ApiKey
from sandgate.policy.loader import ResolvedPolicy
from sandgate.sessions.registry import KEEP_ENDED_S, SessionRecord, SessionRegistry

__all__ = ["REAP_EVERY_S", "LiveSession", "SessionManager"]

log = structlog.get_logger(__name__)

REAP_EVERY_S = 1.0
EndListener = Callable[[SessionRecord], Awaitable[None]]


@dataclass
class LiveSession:
    """A session whose sandbox this process holds."""

    record: SessionRecord
    sandbox: SandboxSession
    policy: ResolvedPolicy
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SessionManager:
    """The sessions of this process; `on_end` is told of every session that ends."""

    def __init__(
        self,
        backend: SandboxBackend | None,
        registry: SessionRegistry,
        *,
        memory_budget_mb: int,
        on_end: EndListener,
        on_closed: EndListener | None = None,
    ) -> None:
        self.backend = backend
        self.registry = registry
        self.memory_budget_mb = memory_budget_mb
        self.on_end = on_end
        self.on_closed = on_closed  # told of every end, announced or not (quota charging)
        self._live: dict[str, LiveSession] = {}
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """End what an earlier process left active, then reap on a timer."""
        for record in self.registry.active():
            await self._ended(record.id, "restart")
        self.registry.forget_ended(time.time() - KEEP_ENDED_S)
        self._reaper = asyncio.create_task(self._reap_forever())

    async def stop(self) -> None:
        """Stop reaping and end every live session (reason `restart`: the process goes)."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for session_id in list(self._live):
            await self.end(session_id, "restart")

    def memory_in_use_mb(self) -> int:
        """Memory reserved by the live sessions' caps."""
        return sum(live.record.memory_mb for live in self._live.values())

    async def create(
        self,
        key: ApiKey,
        resolved: ResolvedPolicy,
        *,
        language: str,
        image: str | None,
        idle_timeout_s: float,
        ttl_s: float,
    ) -> LiveSession:
        """Start a session's sandbox for `key`; QuotaExceeded past the key's cap, Busy past
        the host's memory budget for sessions."""
        rules = resolved.policy.sessions
        held = len(self.registry.active(key_id=key.id))
        if held >= rules.max_per_key:
            raise QuotaExceeded(
                f"sessions per key: {held} open, policy {resolved.name!r} allows "
                f"{rules.max_per_key}; delete one first",
                details=[{"quota": "sessions_per_key", "limit": rules.max_per_key, "used": held}],
            )
        if self.memory_in_use_mb() + rules.memory_mb > self.memory_budget_mb:
            raise Busy(
                f"session memory of this host: {self.memory_in_use_mb()} of "
                f"{self.memory_budget_mb} MiB in use; retry later",
                headers={"Retry-After": "30"},
            )
        now = time.time()
        record = SessionRecord(
            id="ss_" + secrets.token_urlsafe(24),
            tenant=key.tenant,
            key_id=key.id,
            key_name=key.name,
            policy=resolved.name,
            policy_hash=resolved.hash,
            language=language,
            image=image,
            memory_mb=rules.memory_mb,
            created_at=now,
            expires_at=now + ttl_s,
            idle_timeout_s=idle_timeout_s,
            last_used_at=now,
        )
        limits = resolved.policy.limits.sandbox_limits().model_copy(
            update={"memory_mb": rules.memory_mb}
        )
        spec = SessionSpec(
            session_id=record.id,
            language=language,
            image=image,
            limits=limits,
            egress=resolved.policy.network.egress_spec(),
        )
        if self.backend is None:
            raise SessionsUnsupported("this node runs no sandboxes")
        sandbox = await self.backend.start_session(spec)
        self.registry.add(record)
        live = LiveSession(record=record, sandbox=sandbox, policy=resolved)
        self._live[record.id] = live
        log.info("session.created", session_id=record.id, policy=resolved.name)
        return live

    def find(self, key: ApiKey, session_id: str) -> SessionRecord:
        """The caller's session, live or ended; 404 for an unknown or another tenant's id."""
        record = self.registry.get(session_id)
        if record is None or record.tenant != key.tenant:
            raise SessionNotFound("no session of that id")
        return record

    def live(self, key: ApiKey, session_id: str) -> LiveSession:
        """The caller's live session; 404 as `find`, 410 with its reason once it ended."""
        record = self.find(key, session_id)
        live = self._live.get(session_id)
        if live is None or not record.active:
            raise _gone(record.end_reason or "restart")
        return live

    async def lost(self, live: LiveSession, reason: str) -> Gone:
        """End a session whose sandbox went away under a call; the 410 to answer it with."""
        await self.end(live.record.id, reason)
        return _gone(reason)

    @contextlib.asynccontextmanager
    async def turn(self, live: LiveSession, wait_s: float) -> AsyncIterator[None]:
        """Hold the session for one execution; 409 if another holds it past `wait_s`."""
        try:
            await asyncio.wait_for(live.lock.acquire(), max(wait_s, 0.001))
        except TimeoutError:
            raise Conflict("the session is running another execution; retry later") from None
        try:
            yield
        finally:
            live.lock.release()

    def used(self, live: LiveSession, *, executions: int = 0, files_bytes: int = 0) -> None:
        """Note a use (the idle clock restarts)."""
        self.registry.used(live.record.id, executions=executions, files_bytes=files_bytes)
        live.record = live.record.model_copy(
            update={
                "last_used_at": time.time(),
                "executions": live.record.executions + executions,
                "files_bytes": live.record.files_bytes + files_bytes,
            }
        )

    async def end(
        self, session_id: str, reason: str, *, announce: bool = True
    ) -> SessionRecord | None:
        """Destroy the session's sandbox and note why; None when it had ended already.
        `announce=False` when the caller audits the end itself (a `DELETE`)."""
        live = self._live.pop(session_id, None)
        if live is not None:
            await live.sandbox.close()
        return await self._ended(session_id, reason, announce=announce)

    async def ended_by_itself(self, live: LiveSession) -> SessionRecord | None:
        """If the sandbox died (memory limit, kill), end the session with that reason."""
        reason = live.sandbox.ended
        return await self.end(live.record.id, reason) if reason else None

    async def _ended(
        self, session_id: str, reason: str, *, announce: bool = True
    ) -> SessionRecord | None:
        record = self.registry.end(session_id, reason)
        if record is not None:
            log.info("session.ended", session_id=session_id, reason=reason)
            if self.on_closed is not None:
                await self.on_closed(record)
            if announce:
                await self.on_end(record)
        return record

    async def reap(self, now: float | None = None) -> None:
        """End sessions idle past their timeout, past their lifetime, or already dead."""
        now = time.time() if now is None else now
        for live in list(self._live.values()):
            record = live.record
            if live.lock.locked():
                continue  # running: its execution has limits of its own
            if live.sandbox.ended:
                await self.ended_by_itself(live)
            elif now >= record.expires_at:
                await self.end(record.id, "ttl")
            elif now - record.last_used_at >= record.idle_timeout_s:
                await self.end(record.id, "idle")

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(REAP_EVERY_S)
            try:
                await self.reap()
            except Exception as exc:  # keep reaping: one bad session must not stop the rest
                log.error("session.reap_failed", error=type(exc).__name__)


def _gone(reason: str) -> Gone:
    return Gone(f"the session ended ({reason})", details=[{"reason": reason}])
