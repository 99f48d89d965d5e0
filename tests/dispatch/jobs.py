"""Jobs as an API node would queue them (the code already screened), for the dispatcher's tests
and the queue hop's benchmark."""

from __future__ import annotations

import functools
import uuid

from guards import Action
from sandgate.keys import ApiKey, Scope
from sandgate.models import PolicyRef
from sandgate.pipeline.job import Job
from sandgate.pipeline.screening import StageScreening
from sandgate.policy.loader import ResolvedPolicy, load_policy_set
from sandgate.quotas import Charge
from sandgate.settings import REPO_ROOT

__all__ = ["make_job"]


@functools.cache
def _default() -> ResolvedPolicy:
    return load_policy_set(REPO_ROOT / "policies").policies["default"]


def make_job(tenant: str = "default", webhook_url: str | None = None) -> Job:
    """`print(1)` under the shipped default policy, for a key of `tenant`."""
    resolved = _default()
    policy = resolved.policy
    execution_id = uuid.uuid4().hex
    return Job(
        execution_id=execution_id,
        request_id=f"req-{execution_id[:8]}",
        client="127.0.0.1",
        key=ApiKey(id="k1", name="agent", tenant=tenant, scopes=[Scope.EXECUTE], created_at=0.0),
        policy=PolicyRef(name=resolved.name, hash=resolved.hash),
        screening=policy.screening,
        caps=policy.limits,
        audit_content=policy.audit.content,
        code_screening=StageScreening(verdict=Action.ALLOW),
        code_excerpts={"code": "print(1)"},
        charge=Charge(probe=False),
        code="print(1)",
        language="python",
        image=None,
        stdin=None,
        files={},
        outputs=[],
        limits=policy.limits.sandbox_limits(),
        egress=policy.network.egress_spec(),
        webhook_url=webhook_url,
    )
