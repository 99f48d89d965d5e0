"""Live sessions: their sandboxes, one execution at a time each, idle and lifetime limits.

The manager holds the sandboxes of the sessions this node's worker (`worker`, its name in the
queue) started (`sandbox.base.SandboxSession`) and their locks; the registry holds the facts
that outlive the process, and, shared by the nodes, says which worker holds every other
session (`locate`: a call to it goes there). A session is found only by the tenant that made
it: any other tenant's id, like an unknown one, is 404; an ended one is 410 with its reason.
The reaper ends idle and expired sessions and notices sandboxes that died on their own, and
ends with reason `killed` the sessions of a worker that died (`dead`, the queue's verdict on
its heartbeat); every end is audited (`session.end`, with the reason), once, by whichever node
ends it. At start-up, sessions a previous process of this node left `active` are ended with
reason `restart` (their sandboxes went with it and are reaped). The registry is read and
written off the event loop: it may be PostgreSQL, and may be away (503).
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
DeadCheck = Callable[[str], Awaitable[bool]]


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
        node: str,
        worker: str,
        memory_budget_mb: int,
        on_end: EndListener,
        on_closed: EndListener | None = None,
        dead: DeadCheck | None = None,
    ) -> None:
        self.backend = backend  # None on an API node: it holds no session
        self.registry = registry
        self.node = node
        self.worker = worker
        self.dead = dead
        self.memory_budget_mb = memory_budget_mb
        self.on_end = on_end
        self.on_closed = on_closed  # told of every end, announced or not (quota charging)
        self._live: dict[str, LiveSession] = {}
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """End what an earlier process of this node left active, then reap on a timer."""
        for record in await asyncio.to_thread(self.registry.left_by, self.node):
            await self._ended(record.id, "restart")
        await asyncio.to_thread(self.registry.forget_ended, time.time() - KEEP_ENDED_S)
        self._reaper = asyncio.create_task(self._reap_forever())

    async def stop(self) -> None:
        """Stop reaping and end every live session (reason `restart`: the process goes)."""
        await self.stop_reaping()
        for session_id in list(self._live):
            await self.end(session_id, "restart")

    async def stop_reaping(self) -> None:
        """Stop the reaper: before the queue it asks about dead workers closes (a Redis command
        retried across that close would open a connection nothing closes)."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None

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
        held = len(await asyncio.to_thread(self.registry.active, key_id=key.id))
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
            node=self.node,
            worker=self.worker,
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
        try:
            await asyncio.to_thread(self.registry.add, record)
        except BaseException:
            await sandbox.close()  # unregistered, it would be held by nobody
            raise
        live = LiveSession(record=record, sandbox=sandbox, policy=resolved)
        self._live[record.id] = live
        log.info("session.created", session_id=record.id, policy=resolved.name)
        return live

    async def find(self, key: ApiKey, session_id: str) -> SessionRecord:
        """The caller's session, live or ended; 404 for an unknown or another tenant's id."""
        record = await asyncio.to_thread(self.registry.get, session_id)
        if record is None or record.tenant != key.tenant:
            raise SessionNotFound("no session of that id")
        return record

    async def locate(self, key: ApiKey, session_id: str) -> LiveSession | SessionRecord:
        """The caller's live session: held here, or (its record) by another worker; 404 as
        `find`, 410 with its reason once it ended."""
        record = await self.find(key, session_id)
        live = self._live.get(session_id)
        if live is not None and record.active:
            return live
        if record.active and record.worker not in (None, self.worker):
            return record
        raise _gone(record.end_reason or "restart")

    async def live(self, key: ApiKey, session_id: str) -> LiveSession:
        """The caller's session held here; 404 as `find`, 410 once it ended (or if another
        worker holds it: only its holder runs it)."""
        found = await self.locate(key, session_id)
        if isinstance(found, SessionRecord):
            raise _gone("restart")
        return found

    async def killed(self, record: SessionRecord) -> Gone:
        """End a session whose worker died (reason `killed`); the 410 to answer it with."""
        ended = await self._ended(record.id, "killed")
        reason = ended.end_reason if ended else None
        if reason is None:  # another node ended it first: answer with its reason
            now = await asyncio.to_thread(self.registry.get, record.id)
            reason = now.end_reason if now else "killed"
        return _gone(reason or "killed")

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

    async def used(self, live: LiveSession, *, executions: int = 0, files_bytes: int = 0) -> None:
        """Note a use (the idle clock restarts)."""
        await asyncio.to_thread(
            self.registry.used, live.record.id, executions=executions, files_bytes=files_bytes
        )
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
        try:  # the reason first: a call while the sandbox goes already answers 410 with it
            return await self._ended(session_id, reason, announce=announce)
        finally:
            if live is not None:
                await live.sandbox.close()

    async def ended_by_itself(self, live: LiveSession) -> SessionRecord | None:
        """If the sandbox died (memory limit, kill), end the session with that reason."""
        reason = live.sandbox.ended
        return await self.end(live.record.id, reason) if reason else None

    async def _ended(
        self, session_id: str, reason: str, *, announce: bool = True
    ) -> SessionRecord | None:
        record = await asyncio.to_thread(self.registry.end, session_id, reason)
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

    async def sweep(self) -> None:
        """End the sessions of workers that died (reason `killed`)."""
        if self.dead is None:
            return
        for worker in await asyncio.to_thread(self.registry.holders):
            if worker != self.worker and await self.dead(worker):
                log.warning("session.worker_lost", worker=worker)
                for record in await asyncio.to_thread(self.registry.active, worker=worker):
                    await self._ended(record.id, "killed")

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(REAP_EVERY_S)
            try:
                await self.reap()
                await self.sweep()
            except Exception as exc:  # keep reaping: one bad session must not stop the rest
                log.error("session.reap_failed", error=type(exc).__name__)


def _gone(reason: str) -> Gone:
    return Gone(f"the session ended ({reason})", details=[{"reason": reason}])
