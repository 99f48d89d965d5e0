"""Admission: what the caller's policy allows a request to ask for, checked before anything runs.

Every refusal here happens before any sandbox starts and before any text is screened, so a
refused request has done nothing; the audit trail records the refusal with its reason.
"""

from __future__ import annotations

from sandbox.base import Limits
from sandgate.errors import InvalidInput, PayloadTooLarge, PolicyRefused
from sandgate.models import ExecuteRequest, FileIn
from sandgate.policy.loader import ResolvedPolicy

__all__ = ["admit_execution", "admit_runtime", "file_bytes"]


def _field(field: str, message: str) -> list[dict[str, object]]:
    return [{"loc": ["body", field], "msg": message}]


def file_bytes(value: str | FileIn) -> int:
    """The size of one input file as the sandbox will hold it."""
    return len(value.encode("utf-8")) if isinstance(value, str) else len(value.data())


def admit_runtime(resolved: ResolvedPolicy, language: str, image: str | None) -> None:
    """Refuse a language or image the policy does not run (403 `policy_refused`)."""
    refusal = resolved.policy.refusal(language, image)
    if refusal is not None:
        field = "language" if language not in resolved.policy.languages else "image"
        raise PolicyRefused(
            f"policy {resolved.name!r}: {refusal}",
            details=_field(field, "not allowed by the policy"),
        )


def admit_execution(request: ExecuteRequest, resolved: ResolvedPolicy) -> Limits:
    """The limits `request` runs under; refuses what the policy does not allow."""
    limits = resolved.policy.limits
    admit_runtime(resolved, request.language, request.image)
    size = len(request.code.encode("utf-8"))
    if size > limits.max_code_bytes:
        raise PayloadTooLarge(
            f"code is {size} bytes; policy {resolved.name!r} allows {limits.max_code_bytes}",
            details=_field("code", "too large"),
        )
    if len(request.files) > limits.max_files:
        raise InvalidInput(
            f"{len(request.files)} files; policy {resolved.name!r} allows {limits.max_files}",
            details=_field("files", "too many files"),
        )
    files_bytes = sum(file_bytes(value) for value in request.files.values())
    if files_bytes > limits.max_files_bytes:
        raise PayloadTooLarge(
            f"files total {files_bytes} bytes; policy {resolved.name!r} allows "
            f"{limits.max_files_bytes}",
            details=_field("files", "too large"),
        )
    sandbox_limits = limits.sandbox_limits()
    if request.timeout_s is None:
        return sandbox_limits
    if request.timeout_s > limits.timeout_s:
        raise InvalidInput(
            f"timeout_s {request.timeout_s:g} exceeds the limit of {limits.timeout_s:g} s "
            f"of policy {resolved.name!r}",
            details=_field("timeout_s", "above the policy's limit"),
        )
    return sandbox_limits.model_copy(update={"timeout_s": request.timeout_s})
