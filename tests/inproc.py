"""The service in the test's own process: the real app, real policies, real screening and a real
audit log in a private state directory, on a scripted sandbox backend (`sandbox.fake`).

For what lies above the sandbox (auth, errors, validation, routing, the audit trail); every
claim about isolation, limits or egress runs on real gVisor (`tests.helpers.start_server`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from guards import GuardOptions, Screener
from sandbox.base import SandboxBackend
from sandbox.fake import FakeBackend
from sandgate.app import create_app
from sandgate.audit.base import AuditRecord
from sandgate.keys import Scope
from sandgate.services import Services
from sandgate.settings import Settings

__all__ = ["ADMIN_KEY", "InProc", "inproc", "shared_screener"]

ADMIN_KEY = "sg_test_admin_" + "k" * 32
_screener: list[Screener] = []


def shared_screener() -> Screener:
    """One warmed-up real screener for every in-process app of the session (it is stateless)."""
    if not _screener:
        screener = Screener(GuardOptions(hash_secret="in-process-test-secret"))
        screener.warm_up()
        _screener.append(screener)
    return _screener[0]


@dataclass
class InProc:
    """A running in-process service and an admin client of it."""

    app: FastAPI
    client: TestClient
    state_dir: Path

    @property
    def services(self) -> Services:
        """The running service's parts."""
        services: Services = self.app.state.services
        return services

    def headers(self, key: str = ADMIN_KEY) -> dict[str, str]:
        """The Authorization header of `key`."""
        return {"Authorization": f"Bearer {key}"}

    def request(self, method: str, path: str, key: str = ADMIN_KEY, **kwargs: Any) -> Any:
        """One request as `key` (an httpx response)."""
        headers = self.headers(key) | kwargs.pop("headers", {})
        return self.client.request(method, path, headers=headers, **kwargs)

    def records(self) -> list[AuditRecord]:
        """Every audit record so far, oldest first."""
        return list(self.services.auditor.store.iter_records())

    def new_key(self, name: str, tenant: str = "default", scopes: tuple[str, ...] = ()) -> str:
        """A key made in the running key store."""
        chosen = tuple(Scope(s) for s in scopes) or (Scope.EXECUTE, Scope.SCREEN)
        secret, _record = self.services.keys.create(name, tenant=tenant, scopes=chosen)
        return secret


@contextlib.contextmanager
def inproc(
    state_dir: Path, backend: SandboxBackend | None = None, **settings: Any
) -> Iterator[InProc]:
    """The service on `state_dir` with an admin key, until the block ends."""
    app = create_app(
        Settings(state_dir=state_dir, api_key=ADMIN_KEY, **settings),
        backend=backend or FakeBackend(),
        screener=shared_screener(),
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield InProc(app, client, state_dir)
