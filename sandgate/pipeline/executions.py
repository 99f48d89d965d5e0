"""`POST /executions`, top to bottom: admission and the code screened (a `Job`) -> queued -> 202.

A worker then concludes it (runs it, screens its output and records it) exactly as `/execute`
would; the answer waits at `GET /executions/{id}` and, with a `webhook_url`, is POSTed there.
Code that screening blocks is concluded here at once (`done`, status `blocked`, recorded by
this node) and its webhook is still sent. A full queue is 429 and an unreachable one 503:
nothing was queued.
"""

from __future__ import annotations

import time

from sandgate.dispatch.base import ExecutionState
from sandgate.models import ExecutionsRequest
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.carry import fresh_sandbox
from sandgate.pipeline.execute import admitted
from sandgate.pipeline.execution import conclude
from sandgate.pipeline.queueing import queue_errors
from sandgate.services import Services

__all__ = ["submit"]


async def submit(services: Services, caller: Caller, body: ExecutionsRequest) -> ExecutionState:
    """Queue `body` for a worker; its state as it stands (`queued`, or `done` if blocked)."""
    webhook = str(body.webhook_url) if body.webhook_url else None
    job = await admitted(services, caller, body)
    job = job.model_copy(update={"webhook_url": webhook})
    with queue_errors(services.settings):
        if not job.blocked:
            return await services.dispatch.submit(job)
        response = await conclude(services, job, fresh_sandbox(services))
        caller.recorded()
        now = time.time()
        blocked = ExecutionState(
            execution_id=job.execution_id,
            status="done",
            response=response,
            queued_at=now,
            finished_at=now,
            tenant=caller.key.tenant,
        )
        await services.dispatch.settle(blocked, webhook)
        return blocked
