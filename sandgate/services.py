"""What the app holds for its lifetime: settings, stores, the backend; built by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from guards import Screener
from sandbox.base import SandboxBackend
from sandgate.auditing import Auditor
from sandgate.executor import Executor
from sandgate.keys import KeyStore
from sandgate.metrics import Metrics
from sandgate.policy.registry import PolicyRegistry
from sandgate.settings import Settings

__all__ = ["Services"]


@dataclass
class Services:
    """The running service's parts, reachable from routes through `deps`."""

    settings: Settings
    keys: KeyStore
    backend: SandboxBackend
    executor: Executor
    policies: PolicyRegistry
    metrics: Metrics
    screener: Screener
    auditor: Auditor
    audit_hmac_key: bytes
