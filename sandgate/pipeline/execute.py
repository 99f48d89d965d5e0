"""`POST /execute`, top to bottom: the caller's policy -> admission and the code screened (a
`Job`) -> a fresh sandbox runs it -> the output screened -> one audit record -> the answer.

A `block` on the code runs nothing and answers `status: blocked`; a `redact` runs the code with
its findings replaced. A `block` on the output withholds stdout, stderr, rich results and files;
a `redact` returns them redacted; the raw `*_base64` bytes are dropped whenever screening
changed anything (see `sandgate.pipeline.outcome`). The answer goes out only once its record
is committed; the store is checked before anything runs. Streamed (`events`), output goes out
as it is produced, screened first (see `sandgate.pipeline.stream`).

Where the sandbox is: on a node with sandboxes (role `all`), here; on an API node, on the
worker the queue hands the job to, which concludes it exactly as this node would (see `relay`).
Blocked code never leaves the node that screened it.
"""

from __future__ import annotations

from sandgate.models import ExecuteRequest, ExecuteResponse
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.carry import fresh_sandbox
from sandgate.pipeline.execution import admit, conclude
from sandgate.pipeline.job import Job
from sandgate.pipeline.relay import relay
from sandgate.pipeline.stream import Events
from sandgate.services import Services

__all__ = ["admitted", "execute", "run"]


async def admitted(services: Services, caller: Caller, body: ExecuteRequest) -> Job:
    """Everything that can refuse the request, before any answer starts."""
    resolved = services.policies.resolve(caller.key.name, caller.key.tenant, body.policy)
    return await admit(services, caller, body, resolved)


async def run(
    services: Services, caller: Caller, job: Job, events: Events | None = None
) -> ExecuteResponse:
    """Run the admitted job in a fresh sandbox (here, or on a worker) and answer."""
    if services.executor is None and not job.blocked:
        response = await relay(services, job, events)
    else:
        response = await conclude(services, job, fresh_sandbox(services), events=events)
    caller.recorded()
    return response


async def execute(services: Services, caller: Caller, body: ExecuteRequest) -> ExecuteResponse:
    """Run `body.code` under the caller's policy (or a stricter one it names)."""
    return await run(services, caller, await admitted(services, caller, body))
