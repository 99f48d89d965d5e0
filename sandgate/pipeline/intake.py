"""The API node's half of an execution: admission, then the code screened, then a `Job`.

Admission checks what the caller's policy allows (and that the audit store can be written)
before anything is screened or run. A `block` on the code ends the execution here: its
`blocked` answer is recorded by this node. Otherwise the job carries the code as screening
let it through (redacted where it said so), the policy's output screening and audit content,
and the code's excerpts, so whichever worker runs it answers exactly as this node would.
"""

from __future__ import annotations

import uuid

from guards import Action, Stage
from sandbox.base import ExecutionSpec
from sandgate.dispatch.base import Job
from sandgate.models import ExecuteRequest, ExecuteResponse, ExecutionStatus, PolicyRef
from sandgate.pipeline import answer
from sandgate.pipeline.admission import admit_execution
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.screening import screen_texts
from sandgate.services import Services

__all__ = ["take"]


async def take(
    services: Services, caller: Caller, body: ExecuteRequest, webhook_url: str | None = None
) -> Job | ExecuteResponse:
    """A job to run, or the `blocked` answer (already recorded) when screening refused the code."""
    resolved = services.policies.resolve(caller.key.name, caller.key.tenant, body.policy)
    limits = admit_execution(body, resolved)
    await services.auditor.ensure_writable()
    inputs = {"code": body.code} | {f"file:{name}": text for name, text in body.files.items()}
    code = await screen_texts(
        services.screener,
        inputs,
        Stage.CODE,
        resolved.policy.screening,
        tenant=caller.key.tenant,
        metrics=services.metrics,
    )
    execution_id = uuid.uuid4().hex
    job = Job(
        execution_id=execution_id,
        request_id=caller.request_id,
        client=caller.client,
        key=caller.key,
        policy=PolicyRef(name=resolved.name, hash=resolved.hash),
        screening=resolved.policy.screening,
        audit_content=resolved.policy.audit.content,
        spec=ExecutionSpec(
            execution_id=execution_id,
            code=code.shown("code"),
            language=body.language,
            stdin=body.stdin,
            files={name: code.shown(f"file:{name}") for name in body.files},
            limits=limits,
            egress=resolved.policy.network.egress_spec(),
        ),
        code_screening=code.stage,
        code_excerpts=code.excerpts(resolved.policy.audit.content),
        webhook_url=webhook_url,
    )
    if code.verdict is not Action.BLOCK:
        return job
    services.metrics.executions.labels(ExecutionStatus.BLOCKED.value).inc()
    response = answer.blocked(job)
    await answer.record(services.auditor, job, response)
    caller.recorded()
    return response
