"""`POST /screen`: vet a text going into or out of an agent (the path is
`sandgate.pipeline.screen`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from sandgate.api.responses import errors
from sandgate.deps import ServicesDep, caller
from sandgate.keys import Scope
from sandgate.models import ScreenRequest, ScreenResponse
from sandgate.pipeline import screen as pipeline
from sandgate.pipeline.caller import Caller

__all__ = ["router"]

router = APIRouter(tags=["screen"])


@router.post(
    "/screen",
    name="screen",
    summary="Screen a text for PII, secrets and injection.",
    responses=errors(400, 403, 413, 415, 422, 429),
)
async def screen(
    body: ScreenRequest,
    services: ServicesDep,
    who: Annotated[Caller, Depends(caller(Scope.SCREEN, "screen"))],
) -> ScreenResponse:
    """The verdict (allow, redact, block), each finding with offsets into the text as sent,
    and the text itself, redacted when the verdict is `redact`. Answered only once the audit
    record is committed."""
    return await pipeline.screen(services, who, body)
