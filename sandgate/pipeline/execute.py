"""`POST /execute`, top to bottom: admission and the code screened (`intake`) -> run, the output
screened, one audit record (`carry`, on this node or on a worker) -> the answer.

A `block` on the code runs nothing and answers `status: blocked`; a `redact` runs the code with
its findings replaced. A `block` on the output withholds stdout and stderr; a `redact` returns
them redacted. The answer goes out only once its record is committed; the store is checked
before anything runs. On an API node (no sandboxes of its own) the job goes through the queue
and this node relays the worker's answer: queued longer than the queue wait, it is cancelled
(429, it never runs); still running at the bound of the wait, the answer is a 503 that names
`GET /executions/{id}`, where its end shows.
"""

from __future__ import annotations

from sandgate.dispatch.base import Job
from sandgate.errors import Busy, Unavailable, error_for
from sandgate.models import ExecuteRequest, ExecuteResponse
from sandgate.pipeline import carry, intake
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.queueing import queue_errors, retry_after
from sandgate.services import Services

__all__ = ["execute"]

# Beyond the execution's own time limit: screening, audit and the hops of the queue.
RELAY_MARGIN_S = 30.0


async def execute(services: Services, caller: Caller, body: ExecuteRequest) -> ExecuteResponse:
    """Run `body.code` under the caller's policy (or a stricter one it names)."""
    job = await intake.take(services, caller, body)
    if isinstance(job, ExecuteResponse):
        return job  # blocked, and recorded
    if services.executor is not None:
        response = await carry.carry_out(services, job)
    else:
        response = await _relay(services, job)
    caller.recorded()
    return response


async def _relay(services: Services, job: Job) -> ExecuteResponse:
    """Queue the job, wait for a worker's answer and hand it on (its record is the worker's)."""
    settings = services.settings
    with queue_errors(settings):
        state = await services.dispatch.call(
            job,
            start_within=settings.queue_timeout_s,
            finish_within=job.spec.limits.timeout_s + RELAY_MARGIN_S,
        )
    if state.response is not None:
        return state.response
    if state.error is not None:
        error = error_for(state.error.type, state.error.message, state.error.status_code)
        if isinstance(error, Busy):
            error.headers = retry_after(settings)
        raise error
    raise Unavailable(
        f"execution {job.execution_id} is still {state.status}; its answer will be at "
        f"GET /executions/{job.execution_id}"
    )
