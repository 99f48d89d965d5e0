"""The audit log for auditors and SIEMs: page, export (streamed) and verify.

All three need the `audit:read` scope. A key sees only its own tenant's records unless it is an
admin key; a tenant-filtered export is a slice, verified as such (`sandgate audit verify
--filtered`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from sandgate.audit.base import AuditError, RecordFilter
from sandgate.audit.export import MEDIA_TYPES, Format, export_lines
from sandgate.deps import ServicesDep, require
from sandgate.errors import Forbidden, Unavailable
from sandgate.keys import ApiKey, Scope

__all__ = ["router"]

router = APIRouter(prefix="/audit", tags=["audit"])
Reader = Annotated[ApiKey, Depends(require(Scope.AUDIT_READ))]


Since = Annotated[datetime | None, Query(description="Records at or after (ISO-8601; UTC).")]
Until = Annotated[datetime | None, Query(description="Records strictly before.")]
KeyId = Annotated[str | None, Query(alias="key", description="A key id.")]
Tenant = Annotated[str | None, Query(description="A tenant (non-admin keys: their own).")]
ActionQ = Annotated[str | None, Query(description="e.g. execute, screen, auth.denied.")]
Verdict = Annotated[str | None, Query(description="e.g. allow, redact, block, deny.")]


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


@router.get("/records", summary="Records newest first, a page at a time.")
async def records(
    services: ServicesDep,
    where: Where,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before_seq: Annotated[int | None, Query(ge=1, description="Page before this seq.")] = None,
) -> dict[str, Any]:
    """One page; pass the last record's `seq` as `before_seq` for the next."""
    try:
        page = await anyio.to_thread.run_sync(
            lambda: services.auditor.store.page(where, limit=limit, before_seq=before_seq)
        )
    except AuditError:
        raise Unavailable("the audit log is unavailable") from None
    return {
        "records": [r.model_dump(mode="json") for r in page],
        "next_before_seq": page[-1].seq if len(page) == limit else None,
    }


@router.get("/export", summary="Stream matching records as JSONL, CSV or OCSF, with chain fields.")
async def export(
    services: ServicesDep,
    where: Where,
    format: Annotated[Format, Query(description="jsonl, csv or ocsf.")] = "jsonl",  # noqa: A002
) -> StreamingResponse:
    """Streams in constant memory whatever the log's size (a database cursor, read in batches)."""
    return StreamingResponse(
        export_lines(services.auditor.store, format, where),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="sandgate-audit.{format}"'},
    )


@router.get("/verify", summary="Walk the whole chain; name the first record that does not hold.")
async def verify(services: ServicesDep, _key: Reader) -> dict[str, Any]:
    """`ok`, the count, and on failure the first bad `seq` and why."""
    try:
        report = await anyio.to_thread.run_sync(
            lambda: services.auditor.store.verify(services.audit_hmac_key)
        )
    except AuditError:
        raise Unavailable("the audit log is unavailable") from None
    return {**report.model_dump(mode="json"), "summary": report.summary()}
