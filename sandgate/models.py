"""The wire format of /execute and /screen (DESIGN.md, Contracts): request and response bodies.

Every text field is `Text`: a string that can be encoded as UTF-8. JSON can carry a lone UTF-16
surrogate (`"\\ud800"`), which no file, pipe or database can; such input is a 422 naming the
field, at the edge, before anything is screened, run or written.
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, field_validator

from guards import Action, Finding, Stage
from sandbox.base import EgressAttempt, FileOut, RichResult, Status
from sandbox.bundle import BundleError, safe_relative_path
from sandbox.languages import IMAGES, LANGUAGES
from sandgate.pipeline.screening import StageScreening

__all__ = [
    "ErrorBody",
    "ErrorDetail",
    "ExecuteRequest",
    "ExecuteResponse",
    "ExecutionsRequest",
    "ExecutionStatus",
    "FileIn",
    "PolicyRef",
    "ScreenRequest",
    "ScreenResponse",
    "Text",
]

MAX_FILES = 64
MAX_OUTPUT_PATTERNS = 16


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


class FileIn(BaseModel):
    """A binary input file."""

    model_config = ConfigDict(extra="forbid")

    content_base64: str = Field(description="The file's bytes, base64 (RFC 4648).")

    @field_validator("content_base64")
    @classmethod
    def _decodes(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not valid base64") from None
        return value

    def data(self) -> bytes:
        """The decoded bytes."""
        return base64.b64decode(self.content_base64)


def _language(name: str) -> str:
    if name not in LANGUAGES:
        raise ValueError(f"unknown language; known: {', '.join(sorted(LANGUAGES))}")
    return name


def _image(name: str) -> str:
    if name not in IMAGES:
        raise ValueError(f"unknown image; known: {', '.join(sorted(IMAGES))}")
    return name


LanguageName = Annotated[str, AfterValidator(_language)]
ImageName = Annotated[str, AfterValidator(_image)]


def _output_pattern(pattern: str) -> str:
    if not pattern or pattern.startswith("/") or ".." in PurePosixPath(pattern).parts:
        raise ValueError("a glob relative to /work, without '..'")
    if len(pattern.encode("utf-8")) > 1024 or "\x00" in pattern:
        raise ValueError("at most 1024 bytes, no NUL")
    return pattern


class ExecuteRequest(BaseModel):
    """`POST /execute`: code to run, with optional stdin, files and a stricter policy."""

    model_config = ConfigDict(extra="forbid")

    code: Text = Field(description="The program's source.", min_length=1)
    language: LanguageName = Field(
        "python", description="One of the languages the service has images for."
    )
    image: ImageName | None = Field(
        None,
        description="The image to run on (`python`, `python-data`, `node`, `bash`): one that "
        "runs the language and that the policy allows; default the language's own.",
    )
    stdin: Text | None = Field(None, description="Text fed to the program's standard input.")
    timeout_s: float | None = Field(
        None, gt=0, description="Wall-clock limit; at most the policy's `limits.timeout_s`."
    )
    files: dict[Text, Text | FileIn] = Field(
        default_factory=dict,
        max_length=MAX_FILES,
        description='Relative path -> text, or `{"content_base64"}` for a binary file, written '
        "into the working directory /work. Paths: no `..`, at most 16 parts, 255 bytes a part "
        "and 1024 bytes in all (UTF-8).",
    )
    outputs: list[Annotated[Text, AfterValidator(_output_pattern)]] = Field(
        default_factory=list,
        max_length=MAX_OUTPUT_PATTERNS,
        description="Glob patterns under /work (`*.csv`, `out/**`) of files to return in "
        "`files`, capped by the policy.",
    )
    policy: Text | None = Field(None, description="A stricter policy to run under, by name.")

    @field_validator("code")
    @classmethod
    def _not_blank(cls, code: str) -> str:
        if not code.strip():
            raise ValueError("code is empty")
        return code

    @field_validator("files")
    @classmethod
    def _safe_paths(cls, files: dict[str, str | FileIn]) -> dict[str, str | FileIn]:
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
    results: list[RichResult] = Field(
        default_factory=list,
        description="The final expression's value, `display()` calls and figures, in order.",
    )
    files: dict[str, FileOut] = Field(
        default_factory=dict, description="The files of /work that `outputs` asked for, by path."
    )
    files_truncated: bool = Field(
        False, description="True when more files matched than the policy lets return."
    )
    execution_count: int | None = Field(
        None, description="In a session: which execution of the session this was (1, 2, ...)."
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


class SessionCreate(BaseModel):
    """`POST /sessions`: a stateful interpreter, under the caller's policy or a stricter one."""

    model_config = ConfigDict(extra="forbid")

    language: LanguageName = Field("python", description="The session's language, as for /execute.")
    image: ImageName | None = Field(None, description="The session's image, as for /execute.")
    policy: Text | None = Field(None, description="A stricter policy to run under, by name.")
    idle_timeout_s: float | None = Field(
        None, gt=0, description="Ends the session after this long unused; at most the policy's."
    )
    ttl_s: float | None = Field(
        None, gt=0, description="Ends the session this long after it starts; at most the policy's."
    )


class SessionView(BaseModel):
    """A session as its owner sees it."""

    session_id: str
    state: str = Field(description="`active` or `ended`.")
    end_reason: str | None = Field(
        None, description="`idle`, `ttl`, `deleted`, `restart`, `memory_limit`, `killed`."
    )
    language: str
    image: str | None
    policy: PolicyRef
    created_at: str
    expires_at: str
    idle_timeout_s: float
    last_used_at: str
    execution_count: int
    files_bytes: int = Field(description="Bytes uploaded so far.")


class SessionList(BaseModel):
    """The caller's tenant's live sessions."""

    sessions: list[SessionView]


class FileWritten(BaseModel):
    """`PUT /sessions/{id}/files/{path}`'s answer: what is now in /work (after screening)."""

    path: str
    size: int
    sha256: str
    screening: StageScreening | None = Field(
        None, description="Stage `code`, for a text file (binary files are not screened)."
    )
