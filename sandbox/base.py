"""The execution engine's contract: what a backend is asked to run and what it reports.

A backend takes an `ExecutionSpec` (code, inputs, `Limits`, egress rules) and returns an
`ExecutionResult` whose `status` follows DESIGN.md:

    ok             exited 0
    error          exited non-zero on its own
    timeout        wall-clock or CPU-time limit reached; the sandbox was killed
    memory_limit   the sandbox's memory cgroup OOM-killed it
    pids_limit     it reached its process limit (forks refused, or host pids cgroup full)
    output_limit   stdout or stderr passed its cap; the sandbox was killed at once
    sandbox_error  the sandbox itself failed (runtime error, missing image); not the code's fault

`blocked` (refused by screening before any sandbox starts) is set by the service, never here.
"""

from __future__ import annotations

import abc
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sandbox.languages import IMAGES, language

__all__ = [
    "EgressAttempt",
    "EgressSpec",
    "ExecutionResult",
    "ExecutionSpec",
    "Limits",
    "SandboxBackend",
    "SandboxUnavailable",
    "Status",
]

MiB = 1 << 20


class Status(StrEnum):
    """How an execution ended."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    PIDS_LIMIT = "pids_limit"
    OUTPUT_LIMIT = "output_limit"
    BLOCKED = "blocked"
    SANDBOX_ERROR = "sandbox_error"


class Limits(BaseModel):
    """Resource limits of one execution; every field is enforced by the backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(10.0, gt=0, le=3600, description="Wall-clock limit, seconds.")
    cpu_s: float = Field(10.0, gt=0, le=3600, description="CPU-time limit, seconds (all cores).")
    cpus: float = Field(1.0, gt=0, le=64, description="CPU cores the sandbox may use at once.")
    memory_mb: int = Field(256, gt=0, le=65536, description="Memory cap of the whole sandbox, MiB.")
    max_processes: int = Field(
        64,
        ge=4,
        le=4096,
        description="Processes and threads the code may have at once (the launcher's shell and "
        "file copy count too, hence at least 4).",
    )
    output_bytes: int = Field(
        1 << 20, gt=0, le=64 * MiB, description="Cap on stdout and on stderr, bytes each."
    )
    disk_mb: int = Field(
        64, gt=0, le=65536, description="Size of the writable /work and /tmp, MiB."
    )


class EgressAttempt(BaseModel):
    """One connection the sandboxed code tried to open through the egress proxy."""

    host: str
    port: int
    decision: str = Field(description="`allow` or `deny`.")
    reason: str
    address: str | None = Field(None, description="The address connected to, when allowed.")
    bytes_up: int = 0
    bytes_down: int = 0


class EgressSpec(BaseModel):
    """Where an execution may connect, through its egress proxy (see `sandbox.egress`)."""

    model_config = ConfigDict(frozen=True)

    allow: tuple[str, ...] = Field(description="Allowlist entries, `host:port`.")
    deny: tuple[str, ...] = Field(default=(), description="Entries refused even if allowed.")
    max_connections: int = Field(64, gt=0, description="Connections per execution.")
    max_bytes: int = Field(64 * MiB, gt=0, description="Bytes up plus down per execution.")


class ExecutionSpec(BaseModel):
    """Everything a backend needs to run one piece of code."""

    model_config = ConfigDict(frozen=True)

    execution_id: str
    code: str
    language: str = "python"
    image: str | None = Field(
        None, description="The image to run on (one that runs the language); None: its default."
    )
    stdin: str | None = None
    files: dict[str, str] = Field(default_factory=dict)
    limits: Limits = Limits()
    egress: EgressSpec | None = Field(
        None, description="The egress allowlist; None means no network at all."
    )

    @model_validator(mode="after")
    def _runnable(self) -> ExecutionSpec:
        chosen = self.image_name()  # raises UnknownLanguage or UnknownImage (ValueErrors)
        if self.egress is not None and not IMAGES[chosen].egress:
            raise ValueError(f"image {chosen!r} has no egress forwarder; egress must be None")
        return self

    def image_name(self) -> str:
        """The image this spec runs on: `image`, or the language's default."""
        return language(self.language).image_for(self.image)


class ExecutionResult(BaseModel):
    """What a backend reports; the service adds policy, screening and ids."""

    status: Status
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    stdout_base64: str | None = Field(None, description="Raw stdout when it is not valid UTF-8.")
    stderr_base64: str | None = Field(None, description="Raw stderr when it is not valid UTF-8.")
    wall_ms: int = 0
    cpu_ms: int = 0
    peak_memory_bytes: int = 0
    detail: str | None = Field(None, description="Why the status is what it is, when not `ok`.")
    egress: list[EgressAttempt] = Field(default_factory=list)


class SandboxUnavailable(Exception):
    """The backend cannot run anything now (runtime missing, image not built, daemon down)."""


class SandboxBackend(abc.ABC):
    """Runs code in an isolated sandbox and cleans up after it, whatever happens.

    `run` must not raise for anything the code does; it raises `SandboxUnavailable` only
    when the backend cannot start a sandbox at all. When `run` returns or raises, no
    process, mount, cgroup or temporary file of that execution is left.
    """

    name: str

    @abc.abstractmethod
    async def run(self, spec: ExecutionSpec) -> ExecutionResult:
        """Run `spec` to completion within its limits."""

    @abc.abstractmethod
    def checks(self) -> dict[str, str | None]:
        """Readiness checks by name: None when the check passes, else what is wrong."""

    @abc.abstractmethod
    def reap(self) -> int:
        """Remove whatever a crashed earlier run of this service left; return how many."""

    def warnings(self) -> list[str]:
        """Conditions that do not stop the service but an operator must know about."""
        return []

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to close
        """Release what the backend holds (connections to a daemon) at shutdown."""
