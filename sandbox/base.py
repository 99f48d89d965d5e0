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

A request screening refuses never reaches a backend: `blocked` is the service's status.

Besides one-shot runs, a backend may hold *sessions* (`start_session`): one long-lived sandbox
per session whose interpreter keeps its state between executions (see `SandboxSession`).
Output can be followed as it is produced by passing an `OutputSink`.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from sandbox.languages import IMAGES, language

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sandbox.config import BackendConfig
    from sandbox.pool import SlotClass

__all__ = [
    "EgressAttempt",
    "EgressSpec",
    "ExecutionResult",
    "ExecutionSpec",
    "FileOut",
    "Limits",
    "OutputSink",
    "RichResult",
    "SandboxBackend",
    "SandboxSession",
    "SandboxUnavailable",
    "SessionEnded",
    "SessionSpec",
    "SessionsUnsupported",
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
        description="Processes and threads the code may have at once (the runner counts too, "
        "and with egress the forwarder and its shell, hence at least 4).",
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

    execution_id: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Names the execution's sandbox, bundle and cgroup on the host.",
    )
    code: str
    language: str = "python"
    image: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9-]{0,63}$",
        description="The image to run on (one that runs the language); None: its default.",
    )
    stdin: str | None = None
    files: dict[str, str | bytes] = Field(
        default_factory=dict, description="Relative path -> text, or bytes for a binary file."
    )
    outputs: tuple[str, ...] = Field(
        default=(), description="Glob patterns under /work of files to return (`files` out)."
    )
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


class RichResult(BaseModel):
    """A rich value the code produced: its final expression, a `display()`, a figure."""

    kind: Literal["execute_result", "display", "figure"]
    data: dict[str, JsonValue] = Field(
        description="MIME type -> value: `text/plain`, `text/html`, `application/json`, "
        "`image/png` (base64)."
    )


class FileOut(BaseModel):
    """A file of `/work` returned because it matched one of the spec's `outputs` patterns."""

    size: int
    sha256: str
    content_base64: str


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
    results: list[RichResult] = Field(default_factory=list, description="Rich values, in order.")
    files: dict[str, FileOut] = Field(default_factory=dict, description="Files out, by path.")
    execution_count: int | None = Field(None, description="In a session: its n-th execution.")


class SandboxUnavailable(Exception):
    """The backend cannot run anything now (runtime missing, image not built, daemon down)."""


OutputSink = Callable[[Literal["stdout", "stderr"], bytes], Awaitable[None]]
"""Receives the code's output as it is produced (the stream, the raw bytes of one chunk)."""


class SessionSpec(BaseModel):
    """A session's sandbox: fixed at its start, capped for its whole life."""

    model_config = ConfigDict(frozen=True)

    session_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    language: str = "python"
    image: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    limits: Limits = Field(
        Limits(),
        description="`memory_mb`, `max_processes`, `disk_mb`, `cpus` hold for the session's "
        "life; time and output caps are per execution (`SandboxSession.execute`).",
    )
    egress: EgressSpec | None = None


class SessionEnded(Exception):
    """The session's sandbox is gone; `reason` says why (`memory_limit`, `killed`, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the session ended ({reason})")
        self.reason = reason


class SessionsUnsupported(SandboxUnavailable):
    """This backend holds no sessions."""


class SandboxSession(abc.ABC):
    """One session's sandbox, used by one caller at a time (the service serialises executions).

    `execute` runs code in the session's interpreter, Jupyter-like: variables, imports and
    `/work` persist; the value of a final expression comes back in `results`. A wall-clock or
    CPU timeout interrupts the code (KeyboardInterrupt) and the session lives on with its state;
    if the code does not stop within a grace, or a memory or process limit is reached, the
    sandbox is destroyed and the session ends (`ended` says why; later calls raise
    `SessionEnded`). Files are read and written inside the sandbox's `/work`.
    """

    session_id: str

    @property
    @abc.abstractmethod
    def ended(self) -> str | None:
        """Why the sandbox is gone, or None while it lives."""

    def _alive(self) -> None:
        """Raise SessionEnded (with why) once the sandbox is gone."""
        if (reason := self.ended) is not None:
            raise SessionEnded(reason)

    @abc.abstractmethod
    async def execute(
        self,
        code: str,
        *,
        limits: Limits,
        stdin: str | None = None,
        outputs: tuple[str, ...] = (),
        on_output: OutputSink | None = None,
    ) -> ExecutionResult:
        """Run `code` within the per-execution caps of `limits` (time, CPU, output)."""

    @abc.abstractmethod
    async def write_file(self, path: str, data: bytes) -> None:
        """Write `data` to `/work/<path>` (parents made); SessionEnded if the sandbox is gone."""

    @abc.abstractmethod
    async def read_file(self, path: str, max_bytes: int) -> bytes:
        """The bytes of `/work/<path>`; FileNotFoundError, or ValueError past `max_bytes`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Destroy the sandbox (idempotent); nothing of it is left afterwards."""


class SandboxBackend(abc.ABC):
    """Runs code in an isolated sandbox and cleans up after it, whatever happens.

    `run` must not raise for anything the code does; it raises `SandboxUnavailable` only
    when the backend cannot start a sandbox at all. When `run` returns or raises, no process
    of that execution runs any more; what is left of its sandbox on the host (runtime state,
    cgroup, files) is removed right after, off the request's path, and `settle` waits for that.
    A backend with background work (the warm pool) is started with `start` and ended with
    `aclose`, in the event loop that runs it.
    """

    name: str

    @classmethod
    def from_config(cls, config: BackendConfig) -> Self:
        """The backend the service's settings describe (see `sandbox.registry`)."""
        raise NotImplementedError(f"{cls.__name__} is not built from settings")

    @abc.abstractmethod
    async def run(
        self, spec: ExecutionSpec, on_output: OutputSink | None = None
    ) -> ExecutionResult:
        """Run `spec` to completion within its limits."""

    async def start_session(self, spec: SessionSpec) -> SandboxSession:
        """Start a session's sandbox; SessionsUnsupported when this backend holds none."""
        raise SessionsUnsupported(f"the {self.name} backend does not hold sessions")

    @abc.abstractmethod
    def checks(self) -> dict[str, str | None]:
        """Readiness checks by name: None when the check passes, else what is wrong."""

    @abc.abstractmethod
    def reap(self) -> int:
        """Remove whatever a crashed earlier run of this service left; return how many."""

    @abc.abstractmethod
    def leftovers(self) -> list[str]:
        """What of this backend's sandboxes is on the host now (processes, cgroups, files),
        one line each; empty when nothing runs and nothing was left. Sandboxes a warm pool
        keeps ready are there on purpose and not listed."""

    def warnings(self) -> list[str]:
        """Conditions that do not stop the service but an operator must know about."""
        return []

    def warm(self, classes: Iterable[SlotClass]) -> None:  # noqa: B027 - no pool: nothing to do
        """Keep sandboxes of these classes started ahead; drain any other class."""

    def pool_state(self) -> dict[str, dict[str, int]]:
        """Per class kept warm: sandboxes `ready` now and the `target` (empty: no pool)."""
        return {}

    async def start(self) -> None:  # noqa: B027 - most backends have no background work
        """Begin background work (the warm pool's refill) in the running event loop."""

    async def settle(self) -> None:  # noqa: B027 - nothing is removed in the background
        """Wait until what finished executions left on the host is removed."""

    async def aclose(self) -> None:
        """Stop background work, remove the sandboxes kept ready, `settle`, then `close`."""
        await self.settle()
        self.close()

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to close
        """Release what the backend holds (connections to a daemon) at shutdown."""
