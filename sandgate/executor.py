"""The /execute path between the HTTP layer and the sandbox: the policy's limits, a slot, a run."""

from __future__ import annotations

import uuid

import structlog

from sandbox.base import ExecutionResult, ExecutionSpec, Limits, SandboxBackend, SandboxUnavailable
from sandgate.errors import Busy, InvalidInput, PayloadTooLarge, PolicyRefused, Unavailable
from sandgate.metrics import Metrics
from sandgate.models import ExecuteRequest
from sandgate.policy.loader import ResolvedPolicy
from sandgate.slots import NoSlot, SandboxSlots

__all__ = ["Executor"]

log = structlog.get_logger(__name__)


def _refuse_field(field: str, message: str) -> list[dict[str, object]]:
    return [{"loc": ["body", field], "msg": message}]


class Executor:
    """Runs requests on a backend within a host-wide cap on concurrent sandboxes."""

    def __init__(self, backend: SandboxBackend, slots: SandboxSlots, metrics: Metrics) -> None:
        self.backend = backend
        self.slots = slots
        self.metrics = metrics

    @staticmethod
    def limits_for(request: ExecuteRequest, resolved: ResolvedPolicy) -> Limits:
        """The limits a request runs under; refuses what the policy does not allow."""
        policy, limits = resolved.policy, resolved.policy.limits
        if request.language not in policy.languages:
            raise PolicyRefused(
                f"language {request.language!r} is not allowed by policy {resolved.name!r}"
            )
        size = len(request.code.encode("utf-8"))
        if size > limits.max_code_bytes:
            raise PayloadTooLarge(
                f"code is {size} bytes; policy {resolved.name!r} allows {limits.max_code_bytes}",
                details=_refuse_field("code", "too large"),
            )
        if len(request.files) > limits.max_files:
            raise InvalidInput(
                f"{len(request.files)} files; policy {resolved.name!r} allows {limits.max_files}",
                details=_refuse_field("files", "too many files"),
            )
        files_bytes = sum(len(text.encode("utf-8")) for text in request.files.values())
        if files_bytes > limits.max_files_bytes:
            raise PayloadTooLarge(
                f"files total {files_bytes} bytes; policy {resolved.name!r} allows "
                f"{limits.max_files_bytes}",
                details=_refuse_field("files", "too large"),
            )
        sandbox_limits = limits.sandbox_limits()
        if request.timeout_s is None:
            return sandbox_limits
        if request.timeout_s > limits.timeout_s:
            raise InvalidInput(
                f"timeout_s {request.timeout_s:g} exceeds the limit of {limits.timeout_s:g} s "
                f"of policy {resolved.name!r}",
                details=_refuse_field("timeout_s", "above the policy's limit"),
            )
        return sandbox_limits.model_copy(update={"timeout_s": request.timeout_s})

    async def execute(
        self, request: ExecuteRequest, resolved: ResolvedPolicy
    ) -> tuple[str, ExecutionResult]:
        """Run the request's code; returns the execution id and the backend's result."""
        spec = ExecutionSpec(
            execution_id=uuid.uuid4().hex,
            code=request.code,
            language=request.language,
            stdin=request.stdin,
            files=request.files,
            limits=self.limits_for(request, resolved),
        )
        try:
            async with self.slots.acquire():
                log.info(
                    "execute.start",
                    execution_id=spec.execution_id,
                    policy=resolved.name,
                    policy_hash=resolved.hash[:12],
                )
                with self.metrics.sandboxes_running.track_inprogress():
                    result = await self.backend.run(spec)
        except NoSlot:
            self.metrics.refused.labels("busy").inc()
            raise Busy(
                f"all {self.slots.count} sandboxes are busy; retry later",
                headers={"Retry-After": str(max(1, round(self.slots.wait_s)))},
            ) from None
        except SandboxUnavailable as exc:
            raise Unavailable(str(exc)) from None
        self.metrics.executions.labels(result.status.value).inc()
        self.metrics.execution_seconds.observe(result.wall_ms / 1000)
        log.info(
            "execute.done",
            execution_id=spec.execution_id,
            status=result.status.value,
            exit_code=result.exit_code,
            wall_ms=result.wall_ms,
        )
        return spec.execution_id, result
