"""A session call on a node that does not hold the session: handed to the worker that does.

The registry says which worker holds a session's sandbox; the call goes through the queue's
engine to that worker (`sandgate.dispatch.calls`), which runs the very pipeline this node would
(admission under the session's own policy, screening, the run, one audit record) and answers.
This node hands the answer on: a refusal as the same error, a streamed execute's output lines
as they come. A new session is opened on the live worker with the most free capacity.

A worker that dies takes its sessions with it: a call waiting on it ends when its heartbeat
stays away, the session is ended `killed` (recorded once, whichever node sees it first) and
the answer is 410 `session_ended`. Redis away is a 503 (nothing was sent); a worker that does
not answer by the call's deadline (the execution's time limit plus a margin) is a 503 too.
"""

from __future__ import annotations

import base64
import random
import time
from typing import Any

from sandgate.dispatch.base import Relay
from sandgate.dispatch.calls import (
    CallReply,
    CallTimedOut,
    Follow,
    Op,
    SessionCall,
    SessionCalls,
    WorkerGone,
)
from sandgate.errors import Gone, Unavailable, error_for
from sandgate.models import ExecuteRequest, ExecuteResponse, FileWritten, SessionCreate, SessionView
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.queueing import queue_errors
from sandgate.pipeline.relay import RELAY_MARGIN_S
from sandgate.services import Services
from sandgate.sessions.registry import SessionRecord

__all__ = ["Sent", "create", "delete", "download", "execute", "executed", "send", "upload"]


class Sent:
    """A call on its way to a session's worker."""

    def __init__(
        self, services: Services, caller: Caller, record: SessionRecord | None, follow: Follow
    ) -> None:
        self.services = services
        self.caller = caller
        self.record = record
        self.follow = follow

    async def admitted(self) -> None:
        """Return once the worker admitted the call; raise its refusal as this node's."""
        refused = await self._waiting(self.follow.admitted())
        if refused is not None:
            self._unpack(refused)

    async def answer(self, relay: Relay | None = None) -> Any:
        """The worker's answer (the result's JSON), output lines to `relay` before it."""
        reply = await self._waiting(self.follow.reply(relay))
        return self._unpack(reply)

    async def _waiting(self, wait: Any) -> Any:
        try:
            return await wait
        except WorkerGone as exc:
            if self.record is None:  # a session it was to open: nothing was opened
                raise Unavailable(f"the worker {exc} stopped; retry") from None
            raise await self.services.sessions.killed(self.record) from None
        except CallTimedOut as exc:
            raise Unavailable(str(exc)) from None

    def _unpack(self, reply: CallReply) -> Any:
        if reply.recorded:
            self.caller.recorded()  # the worker wrote the request's record
        if reply.error is not None:
            e = reply.error
            raise error_for(e.type, e.message, e.status_code, e.details, e.headers)
        return base64.b64decode(reply.data) if reply.data is not None else reply.result


def _calls(services: Services) -> SessionCalls:
    calls = services.calls
    if calls is None:  # no queue to route through: only this node's sessions exist
        raise Gone("the session ended (restart)", details=[{"reason": "restart"}])
    return calls


async def send(
    services: Services,
    caller: Caller,
    worker: str,
    record: SessionRecord | None,
    op: Op,
    **call: Any,
) -> Sent:
    """Hand one call to `worker` (on the session `record`; None: a session to open)."""
    timeout_s = call.pop("timeout_s", services.settings.queue_timeout_s)
    message = SessionCall(
        op=op,
        key=caller.key,
        request_id=caller.request_id,
        client=caller.client,
        session_id=record.id if record else None,
        deadline=time.time() + timeout_s + RELAY_MARGIN_S,
        **call,
    )
    with queue_errors(services.settings):
        follow = await _calls(services).send(worker, message)
    return Sent(services, caller, record, follow)


async def _send(
    services: Services, caller: Caller, record: SessionRecord, op: Op, **call: Any
) -> Sent:
    """Hand one call on the session `record` to the worker holding it."""
    assert record.worker is not None
    return await send(services, caller, record.worker, record, op, **call)


async def execute(
    services: Services, caller: Caller, record: SessionRecord, body: ExecuteRequest, stream: bool
) -> Sent:
    """Send an execute; streamed, this returns once the worker admitted it."""
    sent = await _send(
        services,
        caller,
        record,
        "execute",
        execute=body,
        stream=stream,
        timeout_s=services.settings.queue_timeout_s + (body.timeout_s or 300),
    )
    if stream:
        await sent.admitted()
    return sent


async def executed(sent: Sent, relay: Relay | None = None) -> ExecuteResponse:
    """A sent execute's answer."""
    return ExecuteResponse.model_validate(await sent.answer(relay))


async def upload(
    services: Services, caller: Caller, record: SessionRecord, path: str, data: bytes
) -> FileWritten:
    """Write a file into the session's /work, on its worker."""
    encoded = base64.b64encode(data).decode("ascii")
    sent = await _send(services, caller, record, "upload", path=path, data=encoded)
    return FileWritten.model_validate(await sent.answer())


async def download(services: Services, caller: Caller, record: SessionRecord, path: str) -> bytes:
    """Read a file of the session's /work, from its worker."""
    data: bytes = await (await _send(services, caller, record, "download", path=path)).answer()
    return data


async def delete(services: Services, caller: Caller, record: SessionRecord) -> None:
    """End the session, on its worker."""
    await (await _send(services, caller, record, "delete")).answer()


async def create(services: Services, caller: Caller, body: SessionCreate) -> SessionView:
    """Open a session on the live worker with the most free capacity."""
    with queue_errors(services.settings):
        workers = [w for w in (await services.dispatch.stats()).workers if w.consumer]
    if not workers:
        raise Unavailable("no live worker to hold a session; retry later")
    random.shuffle(workers)  # among equals, any
    chosen = min(workers, key=lambda w: w.running / max(1, w.capacity))
    sent = await send(services, caller, chosen.consumer, None, "create", create=body)
    return SessionView.model_validate(await sent.answer())
