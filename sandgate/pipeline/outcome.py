"""What every execution pipeline (one-shot, async, in a session) does with a request's inputs
and a run's outputs: which texts are screened, how the answer is mapped field by field (ran,
blocked, or lost with its worker), and what the audit record keeps.

Everything the code produced is untrusted output and is screened at stage `output`: stdout,
stderr, the text forms of rich results (`text/plain`, `text/html`, `application/json`) and the
text files it returned; a `redact` replaces findings in each, a `block` withholds all of it.
Images and binary files are not text and cannot be screened: they are capped, never parsed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from guards import Action
from sandbox.base import ExecutionResult, FileOut, RichResult
from sandgate.models import ExecuteRequest, ExecuteResponse, ExecutionStatus, FileIn
from sandgate.pipeline.job import Job
from sandgate.pipeline.screening import Screened
from sandgate.policy.schema import PolicyLimits

__all__ = ["answer", "code_inputs", "details", "job_files", "lost", "output_texts"]

_TEXT_MIMES = ("text/plain", "text/html", "application/json")


def code_inputs(body: ExecuteRequest) -> dict[str, str]:
    """The texts screened at stage `code`: the code and every text file (binary ones are not
    text and go in unscreened)."""
    texts = {"code": body.code}
    texts |= {f"file:{name}": v for name, v in body.files.items() if isinstance(v, str)}
    return texts


def job_files(body: ExecuteRequest, code: Screened) -> dict[str, str | FileIn]:
    """The files the sandbox gets: text as screening lets it go, binary as sent."""
    return {
        name: code.shown(f"file:{name}") if isinstance(value, str) else value
        for name, value in body.files.items()
    }


def _text(mime: str, value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _decoded(file: FileOut) -> str | None:
    try:
        return base64.b64decode(file.content_base64).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def output_texts(result: ExecutionResult) -> dict[str, str]:
    """The texts screened at stage `output`, by name (`stdout`, `result:0:text/html`, ...)."""
    texts = {"stdout": result.stdout, "stderr": result.stderr}
    for i, item in enumerate(result.results):
        for mime in _TEXT_MIMES:
            if mime in item.data:
                texts[f"result:{i}:{mime}"] = _text(mime, item.data[mime])
    for path, file in result.files.items():
        text = _decoded(file)
        if text is not None:
            texts[f"file:{path}"] = text
    return texts


def _results(result: ExecutionResult, output: Screened, limits: PolicyLimits) -> list[RichResult]:
    """Rich results as screening lets them go, capped in count and size with a marker."""
    shown: list[RichResult] = []
    for i, item in enumerate(result.results[: limits.max_results]):
        data = dict(item.data)
        for mime in _TEXT_MIMES:
            name = f"result:{i}:{mime}"
            if name in output.texts and output.texts[name] != _text(mime, data[mime]):
                data[mime] = output.texts[name]  # redacted: the JSON form is now its text
        if len(json.dumps(data)) > limits.max_result_bytes:
            data = {"text/plain": f"[result of {len(json.dumps(data))} bytes not shown: over "
                    f"the policy's {limits.max_result_bytes}]"}  # fmt: skip
        shown.append(RichResult(kind=item.kind, data=data))
    cut = len(result.results) - limits.max_results
    if cut > 0:
        marker = f"[{cut} more results not shown: the policy allows {limits.max_results}]"
        shown.append(RichResult(kind="display", data={"text/plain": marker}))
    return shown


def _files(result: ExecutionResult, output: Screened, limits: PolicyLimits) -> dict[str, FileOut]:
    """Files out, up to the policy's count and total size (in path order); a text file that
    screening changed is returned as changed, with its new size and hash."""
    shown: dict[str, FileOut] = {}
    total = 0
    for path, file in sorted(result.files.items()):
        if len(shown) >= limits.max_output_files:
            break
        text = output.texts.get(f"file:{path}")
        if text is not None and text != _decoded(file):
            raw = text.encode("utf-8")
            file = FileOut(
                size=len(raw),
                sha256=hashlib.sha256(raw).hexdigest(),
                content_base64=base64.b64encode(raw).decode("ascii"),
            )
        total += file.size
        if total > limits.max_output_files_bytes:
            break
        shown[path] = file
    return shown


def _empty(job: Job, status: ExecutionStatus, detail: str) -> ExecuteResponse:
    """An answer with nothing run (or nothing known of the run)."""
    return ExecuteResponse(
        execution_id=job.execution_id,
        request_id=job.request_id,
        status=status,
        exit_code=None,
        stdout="",
        stderr="",
        stdout_truncated=False,
        stderr_truncated=False,
        wall_ms=0,
        cpu_ms=0,
        peak_memory_bytes=0,
        detail=detail,
        policy=job.policy,
        screening={"code": job.code_screening},
    )


def lost(job: Job, worker: str) -> ExecuteResponse:
    """The answer when the worker running it died: it ran (or began to) and is not run again."""
    detail = f"worker lost: {worker} stopped while running this execution; it was not run again"
    return _empty(job, ExecutionStatus.SANDBOX_ERROR, detail)


def answer(job: Job, result: ExecutionResult | None, output: Screened | None) -> ExecuteResponse:
    """The answer, field by field: blocked (nothing ran), or the run with its output as
    screening lets it go."""
    if result is None or output is None:
        detail = f"code blocked by screening: {job.code_screening.summary()}"
        return _empty(job, ExecutionStatus.BLOCKED, detail)
    withheld = output.verdict is Action.BLOCK
    raw_ok = output.verdict is Action.ALLOW  # the raw bytes would carry what was replaced
    files = _files(result, output, job.caps)
    return ExecuteResponse(
        execution_id=job.execution_id,
        request_id=job.request_id,
        status=ExecutionStatus.of(result.status),
        exit_code=result.exit_code,
        stdout="" if withheld else output.shown("stdout"),
        stderr="" if withheld else output.shown("stderr"),
        stdout_truncated=result.stdout_truncated,
        stderr_truncated=result.stderr_truncated,
        stdout_base64=result.stdout_base64 if raw_ok else None,
        stderr_base64=result.stderr_base64 if raw_ok else None,
        wall_ms=result.wall_ms,
        cpu_ms=result.cpu_ms,
        peak_memory_bytes=result.peak_memory_bytes,
        detail=result.detail,
        output_withheld=withheld,
        policy=job.policy,
        egress=result.egress,
        screening={"code": job.code_screening, "output": output.stage},
        results=[] if withheld else _results(result, output, job.caps),
        files={} if withheld else files,
        files_truncated=len(files) < len(result.files),
        execution_count=result.execution_count,
    )


def details(job: Job, response: ExecuteResponse) -> dict[str, Any]:
    """What the record keeps beyond excerpts: outcome, resource use, findings, egress, and what
    went in and came out (names, sizes and hashes of files; kinds of rich results)."""
    kept: dict[str, Any] = {
        "execution_id": response.execution_id,
        "language": job.language,
        "exit_code": response.exit_code,
        "detail": response.detail,
        "wall_ms": response.wall_ms,
        "cpu_ms": response.cpu_ms,
        "peak_memory_bytes": response.peak_memory_bytes,
        "stdout_truncated": response.stdout_truncated,
        "stderr_truncated": response.stderr_truncated,
        "output_withheld": response.output_withheld,
        "limits": job.limits.model_dump(),
        "files": sorted(job.files),
        "screening": {stage: s.audited() for stage, s in response.screening.items()},
        "egress": [a.model_dump() for a in response.egress],
        "results": [r.kind for r in response.results],
        "execution_count": response.execution_count,
        "files_out": {p: {"size": f.size, "sha256": f.sha256} for p, f in response.files.items()},
    }
    if job.session_id:
        kept["session_id"] = job.session_id
    return kept
