"""`GET /usage`: what the caller's key and its tenant used today, and what is left."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sandgate.api.responses import errors
from sandgate.deps import CurrentKey, ServicesDep
from sandgate.errors import Forbidden, NotFound
from sandgate.keys import Scope
from sandgate.quotas import UsageReport

__all__ = ["router"]

router = APIRouter(tags=["usage"])


@router.get(
    "/usage",
    name="usage.read",
    summary="Today's usage and quotas of a key and its tenant.",
    responses=errors(403, 404, 422),
)
async def usage(
    services: ServicesDep,
    key: CurrentKey,
    key_id: Annotated[
        str | None, Query(max_length=64, description="Another key's id (admin keys only).")
    ] = None,
) -> UsageReport:
    """Executions, CPU-seconds and session-hours used today (UTC) by the calling key, or by
    `key_id` for an admin key, and by its tenant, each beside its quota and what is left."""
    subject = key
    if key_id is not None and key_id != key.id:
        if not key.allows(Scope.ADMIN):
            raise Forbidden("only an admin key may read another key's usage")
        found = next((k for k in services.keys.list() if k.id == key_id), None)
        if found is None:
            raise NotFound(f"no key with id {key_id!r}")
        subject = found
    return services.budgets.report(subject, services.policies.current)
