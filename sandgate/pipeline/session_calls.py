"""The worker's side of a session call another node handed it: the same pipeline as a call
that arrived here (`sessions`, `session_execute`, `session_files`), for the caller the call
names, and its answer (or refusal) as a reply.

The worker writes the request's audit record, as it would for its own caller, and says so in
the reply (the node that took the request then writes none). A streamed execute says
`admitted` once its refusals are over, then hands on its output lines as screening releases
them.
"""

from __future__ import annotations

import base64
from typing import Any

from sandgate.audit.errors import AuditUnavailable
from sandgate.audit.trail import AUDITED
from sandgate.dispatch.base import Failure
from sandgate.dispatch.calls import CallChannel, CallReply, SessionCall
from sandgate.errors import SandgateError, Unavailable
from sandgate.pipeline import session_execute, session_files, sessions
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.execution import events_for
from sandgate.pipeline.stream import streamed_to
from sandgate.services import Services

__all__ = ["serve"]


async def serve(services: Services, call: SessionCall, channel: CallChannel) -> CallReply:
    """Run `call` here; its reply."""
    caller = Caller(key=call.key, request_id=call.request_id, client=call.client, state={})
    try:
        result, data = await _run(services, caller, call, channel)
    except SandgateError as exc:
        error = Failure(
            type=exc.type,
            message=exc.message,
            status_code=exc.status_code,
            details=exc.details,
            headers=exc.headers,
        )
        return CallReply(error=error, recorded=bool(caller.state.get(AUDITED)))
    except AuditUnavailable as exc:
        error = Failure(type=Unavailable.type, message=str(exc), status_code=503)
        return CallReply(error=error, recorded=bool(caller.state.get(AUDITED)))
    encoded = base64.b64encode(data).decode("ascii") if data is not None else None
    return CallReply(result=result, data=encoded, recorded=bool(caller.state.get(AUDITED)))


async def _run(
    services: Services, caller: Caller, call: SessionCall, channel: CallChannel
) -> tuple[Any, bytes | None]:
    """The call's result as JSON, or a file's bytes."""
    session_id = call.session_id or ""
    if call.op == "create":
        assert call.create is not None
        view = await sessions.create(services, caller, call.create)
        return view.model_dump(mode="json"), None
    if call.op == "execute":
        assert call.execute is not None
        live = await services.sessions.live(caller.key, session_id)
        job = await session_execute.admitted(services, caller, live, call.execute)
        await channel.admitted()
        if not call.stream:
            response = await session_execute.run(services, caller, live, job)
        else:
            events = events_for(services, job)
            running = session_execute.run(services, caller, live, job, events)
            response = await streamed_to(channel, events, running)
        return response.model_dump(mode="json"), None
    if call.op == "upload":
        assert call.path is not None and call.data is not None
        data = base64.b64decode(call.data)
        written = await session_files.upload(services, caller, session_id, call.path, data)
        return written.model_dump(mode="json"), None
    if call.op == "download":
        assert call.path is not None
        return None, await session_files.download(services, caller, session_id, call.path)
    await sessions.delete(services, caller, session_id)
    return None, None
