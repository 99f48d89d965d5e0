"""`POST /executions`, top to bottom: admission and the code screened (`intake`) -> queued -> 202.

A worker then runs it, screens its output and records it, exactly as `/execute` would; the
answer waits at `GET /executions/{id}` and, with a `webhook_url`, is POSTed there. Code that
screening blocks is answered at once (`done`, status `blocked`, recorded here) and its webhook
is still sent. A full queue is 429 and an unreachable one 503: nothing was queued.
"""

from __future__ import annotations

import time

from sandgate.dispatch.base import ExecutionState
from sandgate.models import ExecuteResponse, ExecutionsRequest
from sandgate.pipeline import intake
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.queueing import queue_errors
from sandgate.services import Services

__all__ = ["submit"]


async def submit(services: Services, caller: Caller, body: ExecutionsRequest) -> ExecutionState:
    """Queue `body` for a worker; its state as it stands (`queued`, or `done` if blocked)."""
    webhook = str(body.webhook_url) if body.webhook_url else None
    job = await intake.take(services, caller, body, webhook)
    with queue_errors(services.settings):
        if not isinstance(job, ExecuteResponse):
            return await services.dispatch.submit(job)
        now = time.time()
        blocked = ExecutionState(
            execution_id=job.execution_id,
            status="done",
            response=job,
            queued_at=now,
            finished_at=now,
            tenant=caller.key.tenant,
        )
        await services.dispatch.settle(blocked, webhook)
        return blocked
