"""The execution engine: runs code in gVisor sandboxes, within limits, and cleans up after it.

The contract (`sandbox.base`): a `SandboxBackend` takes an `ExecutionSpec` (code, inputs,
`Limits`, an optional `EgressSpec`) and returns an `ExecutionResult` whose `Status` follows
DESIGN.md; it raises `SandboxUnavailable` only when it cannot start a sandbox at all. Backends
are looked up by name in `sandbox.registry` and built from a `BackendConfig`.

`sandbox` imports nothing from `sandgate`: the service wires it in.
"""

from __future__ import annotations

from sandbox.base import (
    EgressAttempt,
    EgressSpec,
    ExecutionResult,
    ExecutionSpec,
    Limits,
    SandboxBackend,
    SandboxUnavailable,
    Status,
)
from sandbox.config import BackendConfig
from sandbox.registry import BACKENDS, UnknownBackend, backend_class

__all__ = [
    "BACKENDS",
    "BackendConfig",
    "EgressAttempt",
    "EgressSpec",
    "ExecutionResult",
    "ExecutionSpec",
    "Limits",
    "SandboxBackend",
    "SandboxUnavailable",
    "Status",
    "UnknownBackend",
    "backend_class",
]
