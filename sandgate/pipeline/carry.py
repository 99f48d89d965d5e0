"""The worker's half of a queued execution: `conclude` its `Job` in a fresh sandbox of this node.

The side that runs the code records it, so a run is audited even when the API node that took
the request is gone: the store is checked before the sandbox starts (down: nothing runs), and
a record (or a charge) that cannot be written after the run is retried until the store is back
(the job then ends, and its waiter or poller sees it). A streamed job's output lines go to its
`relay` as screening releases them. `run_job` turns what cannot be carried out (no slot,
sandbox runtime or audit store down) into a `Failure`, the error answer the API node gives;
`lose` ends a job whose worker died while running it.
"""

from __future__ import annotations

import structlog

from sandbox.base import ExecutionResult, OutputSink
from sandgate.audit.errors import AuditUnavailable
from sandgate.dispatch.base import Failure, Relay
from sandgate.errors import SandgateError, Unavailable
from sandgate.models import ExecuteResponse
from sandgate.pipeline import outcome
from sandgate.pipeline.execution import Run, conclude, events_for, record
from sandgate.pipeline.job import Job
from sandgate.pipeline.stream import streamed_to
from sandgate.services import Services

__all__ = ["fresh_sandbox", "lose", "run_job"]

log = structlog.get_logger(__name__)
FOREVER = float("inf")  # what ran is recorded once the store is back, however long that takes


def fresh_sandbox(services: Services) -> Run:
    """The run step of a one-shot execution: a fresh sandbox of this node, in a slot."""

    async def run(job: Job, on_output: OutputSink | None) -> ExecutionResult:
        return await services.sandboxes.run(job.spec(), policy=job.policy.name, on_output=on_output)

    return run


async def run_job(services: Services, job: Job, relay: Relay | None) -> ExecuteResponse | Failure:
    """Conclude a queued job here: its answer, or why it could not be carried out."""
    try:
        await services.auditor.ensure_writable()
        if relay is None:
            return await conclude(services, job, fresh_sandbox(services), patience_s=FOREVER)
        events = events_for(services, job)
        run = conclude(services, job, fresh_sandbox(services), events=events, patience_s=FOREVER)
        return await streamed_to(relay, events, run)
    except SandgateError as exc:
        return Failure(type=exc.type, message=exc.message, status_code=exc.status_code)
    except AuditUnavailable as exc:
        return Failure(type=Unavailable.type, message=str(exc), status_code=503)
    except Exception as exc:
        log.error("execution.crashed", execution_id=job.execution_id, exc_info=exc)
        return Failure(type="internal_error", message="internal error", status_code=500)


async def lose(services: Services, job: Job, worker: str) -> ExecuteResponse:
    """End a job whose worker died while running it: `sandbox_error`, recorded, never rerun."""
    response = outcome.lost(job, worker)
    log.warning("execution.worker_lost", execution_id=job.execution_id, worker=worker)
    await record(services.auditor, job, response, patience_s=FOREVER)
    return response
