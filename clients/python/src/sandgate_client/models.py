"""The service's answers as typed objects (DESIGN.md's wire format, read leniently).

Every model keeps fields it does not know (`extra="allow"`): the service extends its answers
freely, and an older client must still read them. Statuses and verdicts stay plain strings for
the same reason; the values known today are listed on each field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sandgate_client.errors import ChecksumMismatch, ProtocolError

__all__ = [
    "EgressAttempt",
    "ExecuteResult",
    "ExecutionState",
    "FileInfo",
    "Finding",
    "Output",
    "OutputFile",
    "PolicyRef",
    "ScreenResult",
    "SessionInfo",
    "SessionResult",
    "StageScreening",
    "safe_join",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class PolicyRef(_Model):
    """The policy a request ran under, named and pinned by its content hash."""

    name: str
    hash: str


class Finding(_Model):
    """Something screening found: offsets are into the text as sent (`source` says which)."""

    detector: str
    type: str
    start: int
    end: int
    score: float
    action: str | None = None
    source: str | None = None


class StageScreening(_Model):
    """One screening stage's verdict (`allow`, `redact`, `block`) and findings."""

    verdict: str
    findings: list[Finding] = Field(default_factory=list)


class EgressAttempt(_Model):
    """One connection the code tried to open through the egress proxy."""

    host: str
    port: int
    decision: str
    reason: str


class Output(_Model):
    """A rich result: a final expression's value, a `display()` call or a figure."""

    kind: str = Field(description="`execute_result`, `display` or `figure`.")
    data: dict[str, Any] = Field(default_factory=dict, description="MIME type -> value.")

    @property
    def text(self) -> str | None:
        """The `text/plain` form."""
        value = self.data.get("text/plain")
        return None if value is None else str(value)

    @property
    def html(self) -> str | None:
        """The `text/html` form."""
        value = self.data.get("text/html")
        return None if value is None else str(value)

    @property
    def json_data(self) -> Any:
        """The `application/json` form (already decoded), or None."""
        return self.data.get("application/json")

    @property
    def png(self) -> bytes | None:
        """The `image/png` form as bytes."""
        value = self.data.get("image/png")
        return None if value is None else _b64decode(value, "image/png")


class OutputFile(_Model):
    """A file of the working directory that the request asked for with `outputs`."""

    size: int
    sha256: str
    content_base64: str

    @property
    def content(self) -> bytes:
        """The bytes, checked against `sha256` (`ChecksumMismatch` if they differ)."""
        data = _b64decode(self.content_base64, "content_base64")
        if hashlib.sha256(data).hexdigest() != self.sha256.lower():
            raise ChecksumMismatch(f"{len(data)} bytes received do not match sha256 {self.sha256}")
        return data


class ExecuteResult(_Model):
    """`POST /execute`'s answer: how the run ended, its output, resource use and screening."""

    execution_id: str
    request_id: str | None = None
    status: str = Field(
        description="`ok`, `error`, `timeout`, `memory_limit`, `pids_limit`, `output_limit`, "
        "`blocked` or `sandbox_error`."
    )
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    stdout_base64: str | None = None
    stderr_base64: str | None = None
    wall_ms: int = 0
    cpu_ms: int = 0
    peak_memory_bytes: int = 0
    detail: str | None = None
    output_withheld: bool = False
    policy: PolicyRef | None = None
    egress: list[EgressAttempt] = Field(default_factory=list)
    screening: dict[str, StageScreening] = Field(default_factory=dict)
    results: list[Output] = Field(default_factory=list)
    files: dict[str, OutputFile] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the program ran and exited 0."""
        return self.status == "ok"

    @property
    def figures(self) -> list[Output]:
        """The results that carry a PNG image, in order."""
        return [r for r in self.results if "image/png" in r.data]

    def save_figures(self, directory: str | Path, prefix: str = "figure") -> list[Path]:
        """Write each figure as `<prefix>-<n>.png` under `directory` (made if missing)."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for number, figure in enumerate(self.figures, start=1):
            path = target / f"{prefix}-{number}.png"
            path.write_bytes(figure.png or b"")
            written.append(path)
        return written

    def save_files(self, directory: str | Path) -> list[Path]:
        """Write each returned file under `directory` at its relative path, checked."""
        written = []
        for name, file in self.files.items():
            path = safe_join(Path(directory), name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(file.content)
            written.append(path)
        return written


class SessionResult(ExecuteResult):
    """`POST /sessions/{id}/execute`'s answer: an execution, numbered within its session."""

    execution_count: int | None = None


class ScreenResult(_Model):
    """`POST /screen`'s answer."""

    request_id: str | None = None
    verdict: str = Field(description="`allow`, `redact` or `block`.")
    findings: list[Finding] = Field(default_factory=list)
    text: str = Field(description="Redacted when the verdict is `redact`, else as sent.")
    policy: PolicyRef | None = None
    latency_ms: float = 0.0


class SessionInfo(_Model):
    """A session as the service describes it."""

    session_id: str
    expires_at: datetime | None = None
    policy: PolicyRef | None = None


class FileInfo(_Model):
    """A file written into a session's working directory."""

    path: str
    size: int
    sha256: str


class ExecutionState(_Model):
    """An asynchronous execution: `queued`, `running`, `done` or `failed`, and its answer."""

    execution_id: str
    status: str
    response: ExecuteResult | None = None


def safe_join(directory: Path, relative: str) -> Path:
    """`directory / relative`, refusing any path that would land outside `directory`."""
    base = directory.resolve()
    path = (base / relative).resolve()
    if not relative or Path(relative).is_absolute() or not path.is_relative_to(base):
        raise ProtocolError(f"refusing to write outside {directory}: {relative!r}")
    return path


def _b64decode(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"{what} is not valid base64") from None
