"""Sessions' lifecycle, top to bottom: `POST /sessions` (the caller's policy -> its session
rules -> a sandbox -> one audit record -> 201), `GET` one or all, `DELETE` (end -> record -> 204).

A session runs under the policy it was created with for its whole life (a reload does not
change a running sandbox). Ids are unguessable; another tenant's id answers exactly as an
unknown one (404); an ended session answers 410 with its reason. A node without sandboxes (an
API node) opens the session on a worker, and one that does not hold a session hands its
`DELETE` to the worker that does (`session_route`); `GET` is answered from the registry,
which every node shares.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sandbox.base import SessionsUnsupported
from sandbox.languages import language
from sandgate.audit.auditor import Auditor
from sandgate.errors import InvalidInput, NotSupported
from sandgate.models import PolicyRef, SessionCreate, SessionList, SessionView
from sandgate.pipeline import session_route
from sandgate.pipeline.admission import admit_runtime
from sandgate.pipeline.caller import Caller
from sandgate.services import Services
from sandgate.sessions.registry import SessionRecord

__all__ = ["create", "delete", "listing", "view", "view_of"]


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def view_of(record: SessionRecord) -> SessionView:
    """How a session is shown to its owner."""
    return SessionView(
        session_id=record.id,
        state="active" if record.active else "ended",
        end_reason=record.end_reason,
        language=record.language,
        image=record.image,
        policy=PolicyRef(name=record.policy, hash=record.policy_hash),
        created_at=_iso(record.created_at),
        expires_at=_iso(record.expires_at),
        idle_timeout_s=record.idle_timeout_s,
        last_used_at=_iso(record.last_used_at),
        execution_count=record.executions,
        files_bytes=record.files_bytes,
    )


def _within(name: str, asked: float | None, most: float) -> float:
    if asked is None:
        return most
    if asked > most:
        raise InvalidInput(
            f"{name} {asked:g} exceeds the policy's {most:g} s",
            details=[{"loc": ["body", name], "msg": "above the policy's limit"}],
        )
    return asked


async def create(services: Services, caller: Caller, body: SessionCreate) -> SessionView:
    """Start a session for the caller (here, or on a worker)."""
    if services.backend is None:
        return await session_route.create(services, caller, body)
    if services.settings.workers > 1:
        raise NotSupported(
            "sessions are held by one process: run with SANDGATE_WORKERS=1, or several "
            "`sandgate serve --role worker` nodes to scale"
        )
    resolved = services.policies.resolve(caller.key.name, caller.key.tenant, body.policy)
    admit_runtime(resolved, body.language, body.image)
    rules = resolved.policy.sessions
    idle = _within("idle_timeout_s", body.idle_timeout_s, rules.idle_timeout_s)
    ttl = _within("ttl_s", body.ttl_s, rules.ttl_s)
    await services.auditor.ensure_writable()
    await services.budgets.admit_session(caller.key, services.policies.current)
    try:
        live = await services.sessions.create(
            caller.key,
            resolved,
            language=body.language,
            image=language(body.language).image_for(body.image),
            idle_timeout_s=idle,
            ttl_s=ttl,
        )
    except SessionsUnsupported as exc:
        hint = "" if services.backend.name == "runsc" else "; the runsc backend does (python)"
        raise NotSupported(f"{exc}{hint}") from None
    await caller.record(
        services.auditor,
        Auditor.event(
            "session.create",
            key=caller.key,
            request_id=caller.request_id,
            client=caller.client,
            policy=resolved,
            verdict="ok",
            status="active",
            details={
                "session_id": live.record.id,
                "language": body.language,
                "idle_timeout_s": idle,
                "ttl_s": ttl,
                "memory_mb": live.record.memory_mb,
            },
        ),
    )
    return view_of(live.record)


async def view(services: Services, caller: Caller, session_id: str) -> SessionView:
    """The caller's session; 410 once it ended, 404 if it is not the caller's tenant's."""
    found = await services.sessions.locate(caller.key, session_id)
    return view_of(found if isinstance(found, SessionRecord) else found.record)


async def listing(services: Services, caller: Caller) -> SessionList:
    """The caller's tenant's live sessions (on every worker)."""
    records = await asyncio.to_thread(services.sessions.registry.active, tenant=caller.key.tenant)
    return SessionList(sessions=[view_of(r) for r in records])


async def delete(services: Services, caller: Caller, session_id: str) -> None:
    """End the session now (reason `deleted`); its sandbox and files are gone."""
    live = await services.sessions.locate(caller.key, session_id)
    if isinstance(live, SessionRecord):
        return await session_route.delete(services, caller, live)
    await services.auditor.ensure_writable()
    await services.sessions.end(live.record.id, "deleted", announce=False)
    await caller.record(
        services.auditor,
        Auditor.event(
            "session.end",
            key=caller.key,
            request_id=caller.request_id,
            client=caller.client,
            policy=live.policy,
            verdict="ok",
            status="deleted",
            details={"session_id": live.record.id, "executions": live.record.executions},
        ),
    )
