"""An execution's state as its Redis hash holds it (`sandgate:exec:<id>`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandgate.dispatch.base import ExecutionState, Failure, WebhookState
from sandgate.models import ExecuteResponse

__all__ = ["state_of"]


def state_of(execution_id: str, fields: Mapping[Any, Any]) -> ExecutionState | None:
    """An execution's state from its hash (None when it has none)."""
    if not fields:
        return None
    times = ("queued_at", "started_at", "finished_at")
    number = {k: float(fields[k]) for k in times if k in fields}
    return ExecutionState(
        execution_id=execution_id,
        status=fields["status"],
        response=ExecuteResponse.model_validate_json(fields["response"])
        if "response" in fields
        else None,
        error=Failure.model_validate_json(fields["error"]) if "error" in fields else None,
        webhook=WebhookState.model_validate_json(fields["webhook"])
        if "webhook" in fields
        else None,
        tenant=fields.get("tenant", ""),
        **number,
    )
