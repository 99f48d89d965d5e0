"""The /execute path: the policy's limits, code screening, a slot, a run, output screening."""

from __future__ import annotations

import uuid

import structlog

from guards import Action, Screener, Stage
from sandbox.base import (
    EgressSpec,
    ExecutionResult,
    ExecutionSpec,
    Limits,
    SandboxBackend,
    SandboxUnavailable,
    Status,
)
from sandbox.slots import NoSlot, SandboxSlots
from sandgate.auditing import excerpts
from sandgate.errors import Busy, InvalidInput, PayloadTooLarge, PolicyRefused, Unavailable
from sandgate.metrics import Metrics
from sandgate.models import ExecuteRequest, ExecuteResponse, PolicyRef
from sandgate.policy.loader import ResolvedPolicy
from sandgate.policy.schema import Network
from sandgate.screening import screen_texts

__all__ = ["Executor"]

log = structlog.get_logger(__name__)


def egress_spec(network: Network) -> EgressSpec | None:
    """The sandbox's egress from the policy's `network`; None (no network) when it allows none."""
    if not network.egress:
        return None
    return EgressSpec(
        allow=tuple(network.egress),
        deny=tuple(network.deny),
        max_connections=network.max_connections,
        max_bytes=network.max_bytes,
    )


def _refuse_field(field: str, message: str) -> list[dict[str, object]]:
    return [{"loc": ["body", field], "msg": message}]


class Executor:
    """Runs requests on a backend within a host-wide cap on concurrent sandboxes."""

    def __init__(
        self, backend: SandboxBackend, slots: SandboxSlots, screener: Screener, metrics: Metrics
    ) -> None:
        self.backend = backend
        self.slots = slots
        self.screener = screener
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
        self, request: ExecuteRequest, resolved: ResolvedPolicy, *, tenant: str, request_id: str
    ) -> tuple[ExecuteResponse, dict[str, str]]:
        """Screen the code, run it, screen its output; a `block` on the code runs nothing.
        Returns the answer and the excerpts its audit record keeps (per `audit.content`)."""
        limits = self.limits_for(request, resolved)
        execution_id = uuid.uuid4().hex
        config = resolved.policy.screening
        code_texts = {"code": request.code} | {f"file:{k}": v for k, v in request.files.items()}
        code_stage, code_results = await screen_texts(
            self.screener, code_texts, Stage.CODE, config, tenant=tenant
        )
        self.metrics.screenings.labels("code", code_stage.verdict.value).inc()
        policy = PolicyRef(name=resolved.name, hash=resolved.hash)
        keep = resolved.policy.audit.content
        if code_stage.verdict is Action.BLOCK:
            log.info("execute.blocked", execution_id=execution_id, findings=code_stage.summary())
            self.metrics.executions.labels(Status.BLOCKED.value).inc()
            blocked = ExecuteResponse(
                execution_id=execution_id,
                request_id=request_id,
                status=Status.BLOCKED,
                exit_code=None,
                stdout="",
                stderr="",
                stdout_truncated=False,
                stderr_truncated=False,
                wall_ms=0,
                cpu_ms=0,
                peak_memory_bytes=0,
                detail=f"code blocked by screening: {code_stage.summary()}",
                policy=policy,
                screening={"code": code_stage},
            )
            return blocked, excerpts(code_texts, code_results, keep)
        # `redact` on code runs the code with its findings replaced (e.g. a pasted key).
        texts = {name: r.text for name, r in code_results.items()}
        spec = ExecutionSpec(
            execution_id=execution_id,
            code=texts.get("code", request.code),
            language=request.language,
            stdin=request.stdin,
            files={k: texts.get(f"file:{k}", v) for k, v in request.files.items()},
            limits=limits,
            egress=egress_spec(resolved.policy.network),
        )
        result = await self._run(spec, resolved)
        out_stage, out_results = await screen_texts(
            self.screener,
            {"stdout": result.stdout, "stderr": result.stderr},
            Stage.OUTPUT,
            config,
            tenant=tenant,
        )
        self.metrics.screenings.labels("output", out_stage.verdict.value).inc()
        shown = result.model_dump()
        if out_stage.verdict is not Action.ALLOW:
            # The raw bytes would carry what screening replaced: never send them then.
            shown |= {"stdout_base64": None, "stderr_base64": None}
        if out_stage.verdict is Action.BLOCK:
            shown |= {"stdout": "", "stderr": "", "output_withheld": True}
        else:
            shown |= {name: r.text for name, r in out_results.items()}
        response = ExecuteResponse(
            execution_id=execution_id,
            request_id=request_id,
            policy=policy,
            screening={"code": code_stage, "output": out_stage},
            **shown,
        )
        outputs = {"stdout": result.stdout, "stderr": result.stderr}
        kept = excerpts(code_texts, code_results, keep) | excerpts(outputs, out_results, keep)
        return response, kept

    async def _run(self, spec: ExecutionSpec, resolved: ResolvedPolicy) -> ExecutionResult:
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
        return result
