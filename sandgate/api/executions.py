"""`/executions`: asynchronous executions, polled or delivered to a webhook (the path is
`sandgate.pipeline.executions`), and the dead letters of webhooks that could not be delivered.

A key sees only its own tenant's executions (an `admin` key sees every tenant's); another
tenant's id is answered like an unknown one, 404.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response

from sandgate.api.responses import errors
from sandgate.deps import ServicesDep, caller
from sandgate.dispatch.base import ExecutionState
from sandgate.errors import NotFound
from sandgate.keys import Scope
from sandgate.models import ExecutionsRequest
from sandgate.pipeline import executions as pipeline
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.queueing import queue_errors

__all__ = ["router"]

router = APIRouter(tags=["execute"])
Executor = Annotated[Caller, Depends(caller(Scope.EXECUTE))]
# Queuing code takes a token of the `execute` rate limits, as running it at once does.
Submitter = Annotated[Caller, Depends(caller(Scope.EXECUTE, "execute"))]


def _tenant(who: Caller) -> str | None:
    """The tenant whose executions the caller may see; None for all (admin)."""
    return None if who.key.allows(Scope.ADMIN) else who.key.tenant


@router.post(
    "/executions",
    name="executions.submit",
    summary="Queue code to run in a gVisor sandbox; poll for the answer or get a webhook.",
    status_code=202,
    responses=errors(400, 403, 413, 415, 422, 429),
)
async def submit(
    body: ExecutionsRequest, services: ServicesDep, who: Submitter, response: Response
) -> ExecutionState:
    """202 with `Location: /executions/{id}`; the state is `queued` (or `done` when screening
    blocked the code: nothing runs)."""
    state = await pipeline.submit(services, who, body)
    response.headers["Location"] = f"/executions/{state.execution_id}"
    return state


@router.get(
    "/executions/{execution_id}",
    name="executions.read",
    summary="An asynchronous execution's state and, once done, its answer.",
    responses=errors(404, 422),
)
async def read(
    execution_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")],
    services: ServicesDep,
    who: Executor,
) -> ExecutionState:
    """`queued`, `running`, `done` (with `response`) or `failed` (with `error`)."""
    with queue_errors(services.settings):
        state = await services.dispatch.get(execution_id)
    tenant = _tenant(who)
    if state is None or (tenant is not None and state.tenant != tenant):
        raise NotFound(f"no execution {execution_id!r} (unknown, another tenant's, or expired)")
    return state


@router.get(
    "/executions",
    name="executions.list",
    summary="Executions whose webhook was dead-lettered (`status=dead`), newest first.",
    responses=errors(422),
)
async def dead_letters(
    services: ServicesDep,
    who: Executor,
    status: Annotated[Literal["dead"], Query(description="Only `dead` is listed.")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ExecutionState]:
    """Each with its `webhook` (`state: dead`, attempts, last error) and answer."""
    with queue_errors(services.settings):
        return await services.dispatch.dead_letters(_tenant(who), limit)
