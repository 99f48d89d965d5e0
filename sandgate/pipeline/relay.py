"""An API node's run step: the job goes through the queue to a worker, and its answer comes back.

The worker concludes the job (runs it, screens the output, writes the one audit record) and
this node hands its answer on. Queued longer than the queue wait, the job is cancelled (429
`busy`: it never runs); still running at the bound of the wait (its time limit plus a margin),
the answer is a 503 that names `GET /executions/{id}`, where its end shows. A streamed job's
output lines come through the queue's engine as the worker's screening releases them.
"""

from __future__ import annotations

from sandgate.dispatch.base import Relay
from sandgate.errors import Busy, Unavailable, error_for
from sandgate.models import ExecuteResponse
from sandgate.pipeline.job import Job
from sandgate.pipeline.queueing import queue_errors, retry_after
from sandgate.services import Services

__all__ = ["RELAY_MARGIN_S", "relay"]

# Beyond the execution's own time limit: screening, audit and the hops of the queue.
RELAY_MARGIN_S = 30.0


async def relay(services: Services, job: Job, events: Relay | None = None) -> ExecuteResponse:
    """Queue the job, wait for a worker's answer and hand it on (its record is the worker's)."""
    settings = services.settings
    with queue_errors(settings):
        state = await services.dispatch.call(
            job.model_copy(update={"stream": events is not None}),
            start_within=settings.queue_timeout_s,
            finish_within=job.limits.timeout_s + RELAY_MARGIN_S,
            relay=events,
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
