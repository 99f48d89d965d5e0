"""`POST /sessions/{id}/execute` on the worker holding the session, top to bottom: the caller's
live session -> admission under
the session's policy and the code screened -> its turn and a slot -> run in the session's
interpreter -> the output screened -> one audit record -> the answer (the /execute shape plus
`execution_count`).

One execution at a time per session: a second waits up to the queue wait, then 409
`session_busy`. A timeout interrupts the code and the session keeps its state; a memory or
process limit, or code that will not stop, ends the session (the answer says so in `detail`,
and later calls get 410 with the reason).
"""

from __future__ import annotations

from sandbox.base import ExecutionResult, OutputSink, SessionEnded
from sandgate.errors import InvalidInput
from sandgate.models import ExecuteRequest, ExecuteResponse
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.execution import admit, conclude
from sandgate.pipeline.job import Job
from sandgate.pipeline.stream import Events
from sandgate.services import Services
from sandgate.sessions.manager import LiveSession
from sandgate.tracing import span

__all__ = ["admitted", "execute_in_session", "run"]


def _same_session(body: ExecuteRequest, live: LiveSession) -> None:
    if body.language != live.record.language:
        raise InvalidInput(
            f"the session runs {live.record.language}, not {body.language}",
            details=[{"loc": ["body", "language"], "msg": "not the session's language"}],
        )
    if body.image not in (None, live.record.image):
        raise InvalidInput(
            f"the session runs on image {live.record.image!r}",
            details=[{"loc": ["body", "image"], "msg": "not the session's image"}],
        )
    if body.policy not in (None, live.policy.name):
        raise InvalidInput(
            f"the session runs under policy {live.policy.name!r} for its whole life",
            details=[{"loc": ["body", "policy"], "msg": "not the session's policy"}],
        )


async def admitted(
    services: Services, caller: Caller, live: LiveSession, body: ExecuteRequest
) -> Job:
    """The request admitted to the caller's live session, before any answer starts."""
    _same_session(body, live)
    body = body.model_copy(update={"image": live.record.image})
    return await admit(services, caller, body, live.policy, session_id=live.record.id)


async def run(
    services: Services,
    caller: Caller,
    live: LiveSession,
    job: Job,
    events: Events | None = None,
) -> ExecuteResponse:
    """Run the admitted job in the session's interpreter and answer."""

    async def in_session(job: Job, on_output: OutputSink | None) -> ExecutionResult:
        async with services.sessions.turn(live, services.settings.queue_timeout_s):
            try:
                async with services.sandboxes.slot():
                    for name, content in job.file_contents().items():
                        data = content if isinstance(content, bytes) else content.encode()
                        await live.sandbox.write_file(name, data)
                    with span("sandbox.run", execution_id=job.execution_id, session=True):
                        result = await live.sandbox.execute(
                            job.code,
                            limits=job.limits,
                            stdin=job.stdin,
                            outputs=tuple(job.outputs),
                            on_output=on_output,
                        )
            except SessionEnded as exc:
                raise await services.sessions.lost(live, exc.reason) from None
            await services.sessions.used(live, executions=1)
        ended = await services.sessions.ended_by_itself(live)
        if ended is not None:
            note = f"the session ended ({ended.end_reason}); its state is gone"
            detail = f"{result.detail}; {note}" if result.detail else note
            result = result.model_copy(update={"detail": detail})
        return services.sandboxes.counted(result, job.execution_id)

    response = await conclude(services, job, in_session, events=events)
    caller.recorded()
    return response


async def execute_in_session(
    services: Services, caller: Caller, session_id: str, body: ExecuteRequest
) -> ExecuteResponse:
    """Run `body.code` in the caller's session."""
    live = await services.sessions.live(caller.key, session_id)
    return await run(services, caller, live, await admitted(services, caller, live, body))
