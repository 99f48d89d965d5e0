"""The wire format of /execute and /screen (DESIGN.md, Contracts): request and response bodies.

Every text field is `Text`: a string that can be encoded as UTF-8. JSON can carry a lone UTF-16
surrogate (`"\\ud800"`), which no file, pipe or database can; such input is a 422 naming the
field, at the edge, before anything is screened, run or written.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, field_validator

from guards import Action, Finding, Stage
from sandbox.base import EgressAttempt, Status
from sandbox.bundle import BundleError, safe_relative_path
from sandbox.languages import LANGUAGES
from sandgate.pipeline.screening import StageScreening

__all__ = [
    "ErrorBody",
    "ErrorDetail",
    "ExecuteRequest",
    "ExecuteResponse",
    "ExecutionsRequest",
    "ExecutionStatus",
    "PolicyRef",
    "ScreenRequest",
    "ScreenResponse",
    "Text",
]

MAX_FILES = 64


def _utf8(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text is not valid UTF-8: a lone surrogate at character {exc.start}"
        ) from None
    return text


Text = Annotated[str, AfterValidator(_utf8)]


class ExecutionStatus(StrEnum):
    """How an execution ended: a sandbox `Status`, or `blocked` by screening before any ran."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    PIDS_LIMIT = "pids_limit"
    OUTPUT_LIMIT = "output_limit"
    BLOCKED = "blocked"
    SANDBOX_ERROR = "sandbox_error"

    @classmethod
    def of(cls, status: Status) -> ExecutionStatus:
        """The service's name for a sandbox's status."""
        return cls(status.value)


class ExecuteRequest(BaseModel):
    """`POST /execute`: code to run, with optional stdin, files and a stricter policy."""

    model_config = ConfigDict(extra="forbid")

    code: Text = Field(description="The program's source.", min_length=1)
    language: str = Field("python", description="One of the languages the service has images for.")
    stdin: Text | None = Field(None, description="Text fed to the program's standard input.")
    timeout_s: float | None = Field(
        None, gt=0, description="Wall-clock limit; at most the policy's `limits.timeout_s`."
    )
    files: dict[Text, Text] = Field(
        default_factory=dict,
        max_length=MAX_FILES,
        description="Relative path -> text, written into the working directory /work. Paths: "
        "no `..`, at most 16 parts, 255 bytes a part and 1024 bytes in all (UTF-8).",
    )
    policy: Text | None = Field(None, description="A stricter policy to run under, by name.")

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
            raise ValueError(f"unknown language; known: {', '.join(sorted(LANGUAGES))}")
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


class ExecutionsRequest(ExecuteRequest):
    """`POST /executions`: the /execute body, answered later (polled, or sent to a webhook)."""

    webhook_url: HttpUrl | None = Field(
        None,
        description="Where to POST the answer (signed: `X-Sandgate-Signature: sha256=<hex "
        "HMAC-SHA256 of the body>`); retried with backoff, then dead-lettered.",
    )

    @field_validator("webhook_url")
    @classmethod
    def _short_url(cls, url: HttpUrl | None) -> HttpUrl | None:
        if url is not None and len(str(url)) > 2048:
            raise ValueError("the webhook URL is longer than 2048 characters")
        return url


class PolicyRef(BaseModel):
    """The policy a request ran under, named and pinned by its content hash."""

    name: str
    hash: str


class ExecuteResponse(BaseModel):
    """`POST /execute`'s answer."""

    execution_id: str
    request_id: str
    status: ExecutionStatus
    exit_code: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    stdout_base64: str | None = Field(None, description="Raw stdout when it is not valid UTF-8.")
    stderr_base64: str | None = Field(None, description="Raw stderr when it is not valid UTF-8.")
    wall_ms: int
    cpu_ms: int
    peak_memory_bytes: int
    detail: str | None = Field(None, description="Why the status is what it is, when not `ok`.")
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

    text: Text = Field(description="The text, as it would go into or come out of the agent.")
    stage: Stage = Field(description="`input` (to a model), `output` (from it) or `code`.")
    policy: Text | None = Field(None, description="A stricter policy to screen under, by name.")


class ScreenResponse(BaseModel):
    """`POST /screen`'s answer."""

    request_id: str
    verdict: Action
    findings: list[Finding]
    text: str = Field(description="Redacted when the verdict is `redact`, else as sent.")
    policy: PolicyRef
    latency_ms: float


class ErrorDetail(BaseModel):
    """What went wrong: a type per kind of failure, a message, and where (`details[].loc`)."""

    type: str = Field(description="e.g. `unauthorized`, `invalid_request`, `busy`.")
    message: str
    details: list[dict[str, object]] | None = Field(
        None, description="Per problem: `loc` (where, e.g. [`body`, `files`]) and `msg`."
    )


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail
    request_id: str | None
