"""`POST /execute`, top to bottom: the caller's policy -> admission and the code screened ->
a fresh sandbox runs it -> the output screened -> one audit record -> the answer.

A `block` on the code runs nothing and answers `status: blocked`; a `redact` runs the code with
its findings replaced. A `block` on the output withholds stdout, stderr, rich results and files;
a `redact` returns them redacted; the raw `*_base64` bytes are dropped whenever screening
changed anything (see `sandgate.pipeline.outcome`). The answer goes out only once its record
is committed; the store is checked before anything runs. Streamed (`events`), output goes out
as it is produced, screened first (see `sandgate.pipeline.stream`).
"""

from __future__ import annotations

from sandbox.base import ExecutionResult, ExecutionSpec, OutputSink
from sandgate.models import ExecuteRequest, ExecuteResponse
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.execution import Admitted, admit, conclude
from sandgate.pipeline.outcome import spec_files
from sandgate.pipeline.stream import Events
from sandgate.services import Services

__all__ = ["admitted", "execute", "run"]


async def admitted(services: Services, caller: Caller, body: ExecuteRequest) -> Admitted:
    """Everything that can refuse the request, before any answer starts."""
    resolved = services.policies.resolve(caller.key.name, caller.key.tenant, body.policy)
    return await admit(services, caller, body, resolved)


async def run(
    services: Services,
    caller: Caller,
    body: ExecuteRequest,
    admission: Admitted,
    events: Events | None = None,
) -> ExecuteResponse:
    """Run the admitted request in a fresh sandbox and answer."""

    async def fresh_sandbox(admission: Admitted, on_output: OutputSink | None) -> ExecutionResult:
        spec = ExecutionSpec(
            execution_id=admission.execution_id,
            code=admission.code.shown("code"),
            language=body.language,
            image=body.image,
            stdin=body.stdin,
            files=spec_files(body, admission.code),
            outputs=tuple(body.outputs),
            limits=admission.limits,
            egress=admission.resolved.policy.network.egress_spec(),
        )
        return await services.executor.run(
            spec, policy=admission.resolved.name, on_output=on_output
        )

    return await conclude(
        services, caller, body, admission, fresh_sandbox, action="execute", events=events
    )


async def execute(services: Services, caller: Caller, body: ExecuteRequest) -> ExecuteResponse:
    """Run `body.code` under the caller's policy (or a stricter one it names)."""
    return await run(services, caller, body, await admitted(services, caller, body))
