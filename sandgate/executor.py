"""The /execute path between the HTTP layer and the sandbox: limits, a slot, a run, a result."""

from __future__ import annotations

import uuid

import structlog

from sandbox.base import ExecutionResult, ExecutionSpec, Limits, SandboxBackend, SandboxUnavailable
from sandgate.errors import Busy, InvalidInput, Unavailable
from sandgate.models import ExecuteRequest
from sandgate.slots import NoSlot, SandboxSlots

__all__ = ["Executor"]

log = structlog.get_logger(__name__)


class Executor:
    """Runs requests on a backend within a host-wide cap on concurrent sandboxes."""

    def __init__(self, backend: SandboxBackend, slots: SandboxSlots) -> None:
        self.backend = backend
        self.slots = slots

    @staticmethod
    def limits_for(request: ExecuteRequest, limits: Limits) -> Limits:
        """The limits a request runs under: the policy's, with a shorter timeout if asked."""
        if request.timeout_s is None:
            return limits
        if request.timeout_s > limits.timeout_s:
            raise InvalidInput(
                f"timeout_s {request.timeout_s:g} exceeds the policy's limit of "
                f"{limits.timeout_s:g} s",
                details=[{"loc": ["body", "timeout_s"], "msg": "above the policy's limit"}],
            )
        return limits.model_copy(update={"timeout_s": request.timeout_s})

    async def execute(self, request: ExecuteRequest, limits: Limits) -> tuple[str, ExecutionResult]:
        """Run the request's code; returns the execution id and the backend's result."""
        spec = ExecutionSpec(
            execution_id=uuid.uuid4().hex,
            code=request.code,
            language=request.language,
            stdin=request.stdin,
            files=request.files,
            limits=self.limits_for(request, limits),
        )
        try:
            async with self.slots.acquire():
                log.info("execute.start", execution_id=spec.execution_id)
                result = await self.backend.run(spec)
        except NoSlot:
            raise Busy(
                f"all {self.slots.count} sandboxes are busy; retry later",
                headers={"Retry-After": str(max(1, round(self.slots.wait_s)))},
            ) from None
        except SandboxUnavailable as exc:
            raise Unavailable(str(exc)) from None
        log.info(
            "execute.done",
            execution_id=spec.execution_id,
            status=result.status.value,
            exit_code=result.exit_code,
            wall_ms=result.wall_ms,
        )
        return spec.execution_id, result
