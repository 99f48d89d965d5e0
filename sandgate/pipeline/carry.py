"""The worker's half of an execution: run the job, screen the output, one audit record, answer.

The side that runs the code records it, so a run is audited even when the API node that took
the request is gone. The store is checked before the sandbox starts (down: nothing runs); a
queued job's record that cannot be written after the run is retried until the store is back
(the job then ends, and its waiter or poller sees it). `run_job` turns what
cannot be carried out (no slot, sandbox runtime or audit store down) into a `Failure`, the
error answer the API node gives; `lose` ends a job whose worker died while running it.
"""

from __future__ import annotations

import structlog

from guards import Stage
from sandgate.audit.errors import AuditUnavailable
from sandgate.dispatch.base import Failure, Job
from sandgate.errors import SandgateError, Unavailable
from sandgate.models import ExecuteResponse
from sandgate.pipeline import answer
from sandgate.pipeline.screening import screen_texts
from sandgate.services import Services

__all__ = ["carry_out", "lose", "run_job"]

log = structlog.get_logger(__name__)
FOREVER = float("inf")  # what ran is recorded once the store is back, however long that takes


async def carry_out(services: Services, job: Job, *, patience_s: float = 0.0) -> ExecuteResponse:
    """Run `job` in a sandbox of this node and answer it, recorded."""
    assert services.executor is not None, "only a node with sandboxes carries out jobs"
    await services.auditor.ensure_writable()
    result = await services.executor.run(job.spec, policy=job.policy.name)
    output = await screen_texts(
        services.screener,
        {"stdout": result.stdout, "stderr": result.stderr},
        Stage.OUTPUT,
        job.screening,
        tenant=job.key.tenant,
        metrics=services.metrics,
    )
    response = answer.ran(job, result, output)
    excerpts = output.excerpts(job.audit_content)
    await answer.record(services.auditor, job, response, excerpts, patience_s=patience_s)
    return response


async def run_job(services: Services, job: Job) -> ExecuteResponse | Failure:
    """`carry_out` for a queued job: its answer, or why it could not be carried out."""
    try:
        return await carry_out(services, job, patience_s=FOREVER)
    except SandgateError as exc:
        return Failure(type=exc.type, message=exc.message, status_code=exc.status_code)
    except AuditUnavailable as exc:
        return Failure(type=Unavailable.type, message=str(exc), status_code=503)
    except Exception as exc:
        log.error("execution.crashed", execution_id=job.execution_id, exc_info=exc)
        return Failure(type="internal_error", message="internal error", status_code=500)


async def lose(services: Services, job: Job, worker: str) -> ExecuteResponse:
    """End a job whose worker died while running it: `sandbox_error`, recorded, never rerun."""
    response = answer.lost(job, worker)
    log.warning("execution.worker_lost", execution_id=job.execution_id, worker=worker)
    await answer.record(services.auditor, job, response, patience_s=FOREVER)
    return response
