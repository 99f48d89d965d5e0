"""The audit log for auditors and SIEMs: page, export (streamed) and verify.

All three need the `audit:read` scope. A key sees only its own tenant's records unless it is an
admin key; a tenant-filtered export is a slice, verified as such (`sandgate audit verify
--filtered`). Times are ISO-8601 strings only: a bare number is refused, never read as Unix time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BeforeValidator

from sandgate.api.responses import NDJSONStream, errors
from sandgate.audit.base import RecordFilter
from sandgate.audit.export import MEDIA_TYPES, Format
from sandgate.deps import ServicesDep, require
from sandgate.errors import Forbidden
from sandgate.keys import ApiKey, Scope

__all__ = ["router"]

router = APIRouter(prefix="/audit", tags=["audit"])
Reader = Annotated[ApiKey, Depends(require(Scope.AUDIT_READ))]


def _iso(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("an ISO-8601 time such as 2026-11-01T00:00:00Z")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("an ISO-8601 time such as 2026-11-01T00:00:00Z") from None


IsoTime = Annotated[datetime, BeforeValidator(_iso)]
Since = Annotated[IsoTime | None, Query(description="Records at or after (ISO-8601; UTC).")]
Until = Annotated[IsoTime | None, Query(description="Records strictly before (ISO-8601).")]
KeyId = Annotated[str | None, Query(alias="key", max_length=256, description="A key id.")]
Tenant = Annotated[str | None, Query(max_length=256, description="A tenant (yours if not admin).")]
ActionQ = Annotated[str | None, Query(max_length=64, description="e.g. execute, auth.denied.")]
Verdict = Annotated[str | None, Query(max_length=64, description="e.g. allow, block, deny.")]


async def record_filter(
    key: Reader,
    since: Since = None,
    until: Until = None,
    key_id: KeyId = None,
    tenant: Tenant = None,
    action: ActionQ = None,
    verdict: Verdict = None,
) -> RecordFilter:
    """The records a request asks for, narrowed to the key's own tenant unless it is admin."""
    if not key.allows(Scope.ADMIN):
        if tenant not in (None, key.tenant):
            raise Forbidden(f"this key may read only tenant {key.tenant!r}")
        tenant = key.tenant
    return RecordFilter(
        since=since, until=until, key_id=key_id, tenant=tenant, action=action, verdict=verdict
    )


Where = Annotated[RecordFilter, Depends(record_filter)]


@router.get(
    "/records",
    name="audit.records",
    summary="Records newest first, a page at a time.",
    responses=errors(403, 422),
)
async def records(
    services: ServicesDep,
    where: Where,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before_seq: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Page before this seq.")
    ] = None,
) -> dict[str, Any]:
    """One page; pass the last record's `seq` as `before_seq` for the next."""
    page = await services.auditor.page(where, limit=limit, before_seq=before_seq)
    return {
        "records": [r.model_dump(mode="json") for r in page],
        "next_before_seq": page[-1].seq if len(page) == limit else None,
    }


@router.get(
    "/export",
    name="audit.export",
    summary="Stream matching records as JSONL, CSV or OCSF, with chain fields.",
    response_class=NDJSONStream,
    responses={
        200: {
            "description": "JSONL and OCSF as `application/x-ndjson`, CSV as `text/csv`.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **errors(403, 422),
    },
)
async def export(
    services: ServicesDep,
    where: Where,
    format: Annotated[Format, Query(description="jsonl, csv or ocsf.")] = "jsonl",  # noqa: A002
) -> NDJSONStream:
    """Streams in constant memory whatever the log's size (a database cursor, read in batches)."""
    await services.auditor.ensure_writable()  # a store that is down is a 503, not a cut stream
    lines = services.auditor.export(format, where)
    return NDJSONStream(
        lines,
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="sandgate-audit.{format}"'},
    )


@router.get(
    "/verify",
    name="audit.verify",
    summary="Walk the whole chain; name the first record that does not hold.",
    responses=errors(403),
)
async def verify(services: ServicesDep, _key: Reader) -> dict[str, Any]:
    """`ok`, the count, and on failure the first bad `seq` and why."""
    report = await services.auditor.verify()
    return {**report.model_dump(mode="json"), "summary": report.summary()}
