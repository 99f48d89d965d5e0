"""`/sessions`: stateful interpreters (the paths are `sandgate.pipeline.sessions`,
`session_execute` and `session_files`). Every route needs the `execute` scope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from sandgate.api.responses import errors
from sandgate.api.streaming import STREAM_DOC, streamed, wants_stream
from sandgate.deps import ServicesDep, caller
from sandgate.keys import Scope
from sandgate.models import (
    ExecuteRequest,
    ExecuteResponse,
    FileWritten,
    SessionCreate,
    SessionList,
    SessionView,
)
from sandgate.pipeline import session_execute, session_files, session_route, sessions
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.execution import events_for
from sandgate.pipeline.stream import relayed_events
from sandgate.sessions.registry import SessionRecord

__all__ = ["router"]

router = APIRouter(prefix="/sessions", tags=["sessions"])
Who = Annotated[Caller, Depends(caller(Scope.EXECUTE))]
# Opening a session and running code in one take a token of the `sessions` rate limits.
Limited = Annotated[Caller, Depends(caller(Scope.EXECUTE, "sessions"))]
SessionId = Annotated[str, Path(max_length=64, description="The id `POST /sessions` gave.")]
FilePath = Annotated[str, Path(max_length=1024, description="A path relative to /work.")]
_OF_ONE = (403, 404, 410, 422)


@router.post(
    "",
    name="session.create",
    status_code=201,
    summary="Start a session: one long-lived sandbox whose interpreter keeps its state.",
    responses=errors(400, 403, 413, 415, 422, 429, 501),
)
async def create(body: SessionCreate, services: ServicesDep, who: Limited) -> SessionView:
    """Its id, expiry and policy; idle and lifetime limits within the policy's."""
    return await sessions.create(services, who, body)


@router.get(
    "", name="session.list", summary="The caller's tenant's live sessions.", responses=errors(403)
)
async def listing(services: ServicesDep, who: Who) -> SessionList:
    """Live sessions only; an ended one answers 410 on its own URL."""
    return await sessions.listing(services, who)


@router.get("/{session_id}", name="session.get", summary="One session.", responses=errors(*_OF_ONE))
async def view(session_id: SessionId, services: ServicesDep, who: Who) -> SessionView:
    """State, limits, use so far; 410 with the reason once ended."""
    return await sessions.view(services, who, session_id)


@router.delete(
    "/{session_id}",
    name="session.delete",
    status_code=204,
    summary="End a session now; its sandbox and files are gone.",
    responses=errors(*_OF_ONE),
)
async def delete(session_id: SessionId, services: ServicesDep, who: Who) -> Response:
    """Later calls answer 410 (`deleted`)."""
    await sessions.delete(services, who, session_id)
    return Response(status_code=204)


@router.post(
    "/{session_id}/execute",
    name="session.execute",
    response_model=ExecuteResponse,
    summary="Run code in the session's interpreter (variables, imports and /work persist).",
    responses=STREAM_DOC | errors(400, 409, 413, 415, 429, *_OF_ONE),
)
async def execute(
    session_id: SessionId,
    body: ExecuteRequest,
    request: Request,
    services: ServicesDep,
    who: Limited,
) -> Any:
    """The /execute answer plus `execution_count`; streamed with `Accept:
    application/x-ndjson`. Held by another worker, the session runs it there."""
    live = await services.sessions.locate(who.key, session_id)
    if isinstance(live, SessionRecord):
        sent = await session_route.execute(services, who, live, body, wants_stream(request))
        if not wants_stream(request):
            return await session_route.executed(sent)
        relayed = relayed_events()
        return streamed(
            request, services.auditor, relayed, lambda: session_route.executed(sent, relayed)
        )
    job = await session_execute.admitted(services, who, live, body)
    if not wants_stream(request):
        return await session_execute.run(services, who, live, job)
    events = events_for(services, job)
    return streamed(
        request,
        services.auditor,
        events,
        lambda: session_execute.run(services, who, live, job, events),
    )


@router.put(
    "/{session_id}/files/{path:path}",
    name="session.file.upload",
    status_code=201,
    summary="Write a file (the raw body) into the session's /work.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
    responses=errors(409, 413, *_OF_ONE),
)
async def upload(
    session_id: SessionId, path: FilePath, request: Request, services: ServicesDep, who: Who
) -> FileWritten:
    """Text files are screened as code is; the answer holds what was written."""
    data = await request.body()
    return await session_files.upload(services, who, session_id, path, data)


@router.get(
    "/{session_id}/files/{path:path}",
    name="session.file.download",
    summary="Read a file of the session's /work.",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }
        },
        **errors(409, 413, *_OF_ONE),
    },
)
async def download(
    session_id: SessionId, path: FilePath, services: ServicesDep, who: Who
) -> Response:
    """Text files are screened as output is."""
    data = await session_files.download(services, who, session_id, path)
    return Response(data, media_type="application/octet-stream")
