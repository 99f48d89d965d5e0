"""The wire format of /execute and /screen (DESIGN.md, Contracts): request and response bodies."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from guards import Action, Finding, Stage
from sandbox.base import EgressAttempt, Status
from sandbox.bundle import BundleError, safe_relative_path
from sandbox.languages import LANGUAGES
from sandgate.screening import StageScreening

__all__ = ["ExecuteRequest", "ExecuteResponse", "PolicyRef", "ScreenRequest", "ScreenResponse"]

MAX_FILES = 64


class ExecuteRequest(BaseModel):
    """`POST /execute`: code to run, with optional stdin, files and a stricter policy."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="The program's source.", min_length=1)
    language: str = Field("python", description="One of the languages the service has images for.")
    stdin: str | None = Field(None, description="Text fed to the program's standard input.")
    timeout_s: float | None = Field(
        None, gt=0, description="Wall-clock limit; at most the policy's `limits.timeout_s`."
    )
    files: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_FILES,
        description="Relative path -> text, written into the working directory /work.",
    )
    policy: str | None = Field(None, description="A stricter policy to run under, by name.")

    @field_validator("code")
    @classmethod
    def _not_blank(cls, code: str) -> str:
        if not code.strip():
            raise ValueError("code is empty")
        return code

    @field_validator("language")
    @classmethod
    def _known_language(cls, name: str) -> str:
        if name not in LANGUAGES:
            raise ValueError(f"unknown language {name!r}; known: {', '.join(sorted(LANGUAGES))}")
        return name

    @field_validator("files")
    @classmethod
    def _safe_paths(cls, files: dict[str, str]) -> dict[str, str]:
        paths = set()
        for name in files:
            try:
                paths.add(safe_relative_path(name))
            except BundleError as exc:
                raise ValueError(str(exc)) from None
        for path in paths:
            for parent in path.parents:
                if parent in paths:
                    raise ValueError(f"file path {str(path)!r} is inside file {str(parent)!r}")
        return files


class PolicyRef(BaseModel):
    """The policy a request ran under, named and pinned by its content hash."""

    name: str
    hash: str


class ExecuteResponse(BaseModel):
    """`POST /execute`'s answer."""

    execution_id: str
    request_id: str
    status: Status
    exit_code: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    stdout_base64: str | None = None
    stderr_base64: str | None = None
    wall_ms: int
    cpu_ms: int
    peak_memory_bytes: int
    detail: str | None = None
    output_withheld: bool = Field(
        False, description="True when output screening blocked stdout and stderr."
    )
    policy: PolicyRef
    egress: list[EgressAttempt] = Field(default_factory=list)
    screening: dict[str, StageScreening] = Field(
        default_factory=dict, description="Per stage (`code`, `output`): verdict and findings."
    )


class ScreenRequest(BaseModel):
    """`POST /screen`: a text to vet at one stage of an agent's path."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The text, as it would go into or come out of the agent.")
    stage: Stage = Field(description="`input` (to a model), `output` (from it) or `code`.")
    policy: str | None = Field(None, description="A stricter policy to screen under, by name.")


class ScreenResponse(BaseModel):
    """`POST /screen`'s answer."""

    request_id: str
    verdict: Action
    findings: list[Finding]
    text: str = Field(description="Redacted when the verdict is `redact`, else as sent.")
    policy: PolicyRef
    latency_ms: float
