"""An admitted execution as data: everything that `conclude` needs to finish it, on this node or
on whichever worker the queue hands it to.

`admit` builds it once every refusal has had its chance (the policy's limits, the store, the
quotas and the CPU breaker, the code screened). It carries the code as screening let it
through, what the run may do (limits, egress, image, `outputs`), how the output is screened and
capped and what the audit record keeps, the quotas' `Charge`, and who asked. It is JSON: binary
input files travel as `FileIn` (base64), never as raw bytes.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field

from guards import Action, ScreeningConfig
from sandbox.base import EgressSpec, ExecutionSpec, Limits
from sandgate.keys import ApiKey
from sandgate.models import FileIn, PolicyRef
from sandgate.pipeline.screening import StageScreening
from sandgate.policy.schema import PolicyLimits
from sandgate.quotas import Charge

__all__ = ["Job"]


class Job(BaseModel):
    """One admitted execution (fresh, or in the session `session_id`)."""

    execution_id: str
    request_id: str
    client: str | None
    key: ApiKey = Field(description="The caller's key record (never the secret).")
    policy: PolicyRef
    screening: ScreeningConfig = Field(description="The policy's screening, for the output.")
    caps: PolicyLimits = Field(description="The policy's caps on results and files out.")
    audit_content: Literal["none", "redacted", "full"]
    code_screening: StageScreening
    code_excerpts: dict[str, str | None] = Field(description="The record's excerpts of the code.")
    charge: Charge = Field(description="What the quotas hand from admission to the charge.")
    code: str = Field(description="The code as screening let it through (redacted if so).")
    language: str
    image: str | None
    stdin: str | None
    files: dict[str, str | FileIn] = Field(description="Text as screened; binary as sent.")
    outputs: list[str]
    limits: Limits
    egress: EgressSpec | None
    session_id: str | None = None
    webhook_url: str | None = None
    stream: bool = Field(False, description="Output is relayed as it is produced.")
    queued_at: float = Field(default_factory=time.time)

    @property
    def blocked(self) -> bool:
        """Screening blocked the code: nothing runs."""
        return self.code_screening.verdict is Action.BLOCK

    @property
    def action(self) -> str:
        """The audit record's action."""
        return "session.execute" if self.session_id else "execute"

    def spec(self) -> ExecutionSpec:
        """What a fresh sandbox runs."""
        return ExecutionSpec(
            execution_id=self.execution_id,
            code=self.code,
            language=self.language,
            image=self.image,
            stdin=self.stdin,
            files=self.file_contents(),
            outputs=tuple(self.outputs),
            limits=self.limits,
            egress=self.egress,
        )

    def file_contents(self) -> dict[str, str | bytes]:
        """The input files as the sandbox holds them: text, or the bytes of a binary one."""
        return {
            name: value if isinstance(value, str) else value.data()
            for name, value in self.files.items()
        }
