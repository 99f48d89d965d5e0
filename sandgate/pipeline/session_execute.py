"""`POST /sessions/{id}/execute`, top to bottom: the caller's live session -> admission under the
session's policy -> screen the code -> its turn and a slot -> run in the session's interpreter
-> screen the output -> one audit record -> the answer (the /execute shape plus
`execution_count`).

One execution at a time per session: a second waits up to the queue wait, then 409
`session_busy`. A timeout interrupts the code and the session keeps its state; a memory or
process limit, or code that will not stop, ends the session (the answer says so in `detail`,
and later calls get 410 with the reason).
"""

from __future__ import annotations

import uuid

from guards import Action, Stage
from sandbox.base import ExecutionResult, Limits, SessionEnded
from sandgate.audit.auditor import Auditor
from sandgate.errors import InvalidInput
from sandgate.models import ExecuteRequest, ExecuteResponse, ExecutionStatus, PolicyRef
from sandgate.pipeline.admission import admit_execution
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.outcome import answer, code_inputs, details, output_texts, spec_files
from sandgate.pipeline.screening import Screened, screen_texts, strongest
from sandgate.services import Services
from sandgate.sessions.manager import LiveSession

__all__ = ["execute_in_session"]


def _same_session(body: ExecuteRequest, live: LiveSession) -> None:
    if body.language != live.record.language:
        raise InvalidInput(
            f"the session runs {live.record.language}, not {body.language}",
            details=[{"loc": ["body", "language"], "msg": "not the session's language"}],
        )
    if body.policy not in (None, live.policy.name):
        raise InvalidInput(
            f"the session runs under policy {live.policy.name!r} for its whole life",
            details=[{"loc": ["body", "policy"], "msg": "not the session's policy"}],
        )


async def execute_in_session(
    services: Services, caller: Caller, session_id: str, body: ExecuteRequest
) -> ExecuteResponse:
    """Run `body.code` in the caller's session."""
    live = services.sessions.live(caller.key, session_id)
    _same_session(body, live)
    resolved = live.policy
    limits = admit_execution(body, resolved)
    await services.auditor.ensure_writable()
    execution_id = uuid.uuid4().hex
    screening, tenant = resolved.policy.screening, caller.key.tenant

    code = await screen_texts(
        services.screener,
        code_inputs(body),
        Stage.CODE,
        screening,
        tenant=tenant,
        metrics=services.metrics,
    )
    result: ExecutionResult | None = None
    output: Screened | None = None
    if code.verdict is Action.BLOCK:
        services.metrics.executions.labels(ExecutionStatus.BLOCKED.value).inc()
    else:
        result = await _run(services, live, body, code, limits, execution_id)
        output = await screen_texts(
            services.screener,
            output_texts(result),
            Stage.OUTPUT,
            screening,
            tenant=tenant,
            metrics=services.metrics,
        )

    policy = PolicyRef(name=resolved.name, hash=resolved.hash)
    caps = resolved.policy.limits
    response = answer(execution_id, caller.request_id, policy, caps, code, result, output)
    keep = resolved.policy.audit.content
    await caller.record(
        services.auditor,
        Auditor.event(
            "session.execute",
            key=caller.key,
            request_id=caller.request_id,
            client=caller.client,
            policy=resolved,
            verdict=strongest(*response.screening.values()).value,
            status=response.status.value,
            content=code.excerpts(keep) | (output.excerpts(keep) if output else {}),
            details=details(response, body, limits.model_dump())
            | {"session_id": session_id, "execution_count": response.execution_count},
        ),
    )
    return response


async def _run(
    services: Services,
    live: LiveSession,
    body: ExecuteRequest,
    code: Screened,
    limits: Limits,
    execution_id: str,
) -> ExecutionResult:
    """The session's turn, a slot, the files, the execution; ends the session if its sandbox
    died doing it."""
    async with services.sessions.turn(live, services.settings.queue_timeout_s):
        try:
            async with services.executor.slot():
                for name, content in spec_files(body, code).items():
                    data = content if isinstance(content, bytes) else content.encode("utf-8")
                    await live.sandbox.write_file(name, data)
                result = await live.sandbox.execute(
                    code.shown("code"),
                    limits=limits,
                    stdin=body.stdin,
                    outputs=tuple(body.outputs),
                )
        except SessionEnded as exc:
            raise await services.sessions.lost(live, exc.reason) from None
        services.sessions.used(live, executions=1)
    ended = await services.sessions.ended_by_itself(live)
    if ended is not None:
        note = f"the session ended ({ended.end_reason}); its state is gone"
        detail = f"{result.detail}; {note}" if result.detail else note
        result = result.model_copy(update={"detail": detail})
    return services.executor.counted(result, execution_id)
