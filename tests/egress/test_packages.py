"""Packages at run time: `pip install --target` and `npm install` inside real gVisor sandboxes,
through the egress proxy, from a package index and an npm registry served as a static directory
on 127.0.0.1 (`_registry.py`). The root is read-only, so packages land in /work, for that one
execution."""

from __future__ import annotations

import asyncio
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.base import EgressSpec, ExecutionResult, ExecutionSpec, Limits, Status
from sandbox.egress.attach import egress_attacher
from sandbox.image import ImageStore
from sandbox.runsc import RunscBackend
from sandgate.settings import REPO_ROOT
from tests.conftest import make_state_dir
from tests.egress._registry import NPM_PACKAGE, WHEEL, StaticRegistry
from tests.egress._world import egress_service
from tests.helpers import LiveServer

pytestmark = pytest.mark.sandbox

PIP_INSTALL = """
    import subprocess, sys
    done = subprocess.run([sys.executable, '-m', 'pip', 'install', '--target', '/work/lib',
                           '--no-cache-dir', '--disable-pip-version-check',
                           '--index-url', '{url}/simple/', '--trusted-host', '127.0.0.1',
                           'sgdemo'], capture_output=True, text=True)
    print(done.stderr[-600:], file=sys.stderr)
    sys.path.insert(0, '/work/lib')
    import sgdemo
    print(done.returncode, sgdemo.VALUE, sgdemo.__file__)
"""
NPM_INSTALL = """
    const {{ execFileSync }} = require('child_process');
    const args = ['install', '--registry', '{url}/', ...{extra}, '{package}'];
    execFileSync('npm', args, {{ stdio: 'inherit' }});
    console.log(require('{package}').VALUE, require.resolve('{package}'));
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticRegistry]:
    served = StaticRegistry(tmp_path_factory.mktemp("registry"))
    yield served
    served.close()


@pytest.fixture(scope="module")
def package_server(
    tmp_path_factory: pytest.TempPathFactory, registry: StaticRegistry, images: ImageStore
) -> Iterator[LiveServer]:
    images.ensure_many(["node", "python-data"], progress=lambda _line: None)
    limits = "limits: {timeout_s: 60, cpu_s: 60, memory_mb: 512}\nlanguages: [python, node]\n"
    policies = {
        "default.yaml": limits,
        "index.yaml": limits + f'network: {{egress: ["127.0.0.1:{registry.port}"]}}\n',
        "bindings.yaml": "default: default\nkeys: {env: index}\n",
    }
    with egress_service(tmp_path_factory, "packages", policies) as live:
        yield live


def execute(live: LiveServer, code: str, key: str | None = None, **body: Any) -> dict[str, Any]:
    with live.client(key=key, timeout=120) as client:
        response = client.post("/execute", json={"code": textwrap.dedent(code), **body})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_when_pip_installs_into_work_then_the_package_imports(
    package_server: LiveServer, registry: StaticRegistry
) -> None:
    body = execute(package_server, PIP_INSTALL.format(url=registry.url))
    assert body["status"] == "ok", body["stderr"]
    assert body["stdout"] == "0 1 /work/lib/sgdemo/__init__.py\n"
    assert {"/simple/sgdemo/", f"/files/{WHEEL}"} <= set(registry.paths)
    assert {a["decision"] for a in body["egress"]} == {"allow"}


def test_when_npm_installs_into_work_then_the_package_requires(
    package_server: LiveServer, registry: StaticRegistry
) -> None:
    code = NPM_INSTALL.format(url=registry.url, package=NPM_PACKAGE, extra=[])
    body = execute(package_server, code, language="node")
    assert body["status"] == "ok", (body["stdout"], body["stderr"])
    value, path = body["stdout"].splitlines()[-1].split()
    assert (value, path) == ("7", f"/work/node_modules/{NPM_PACKAGE}/index.js")
    assert {f"/{NPM_PACKAGE}", f"/tarballs/{NPM_PACKAGE}-1.0.0.tgz"} <= set(registry.paths)
    assert {a["decision"] for a in body["egress"]} == {"allow"}


def test_when_the_policy_has_no_egress_then_npm_install_fails_and_nothing_is_fetched(
    package_server: LiveServer, registry: StaticRegistry
) -> None:
    before = list(registry.paths)
    key = package_server.new_key("offline-agent")  # bound to nothing: the no-egress default
    # No retries: npm would otherwise back off and retry for minutes before it gives up.
    code = NPM_INSTALL.format(url=registry.url, package=NPM_PACKAGE, extra=["--fetch-retries=0"])
    body = execute(package_server, code, key=key, language="node", timeout_s=30)
    assert body["policy"]["name"] == "default"
    assert body["status"] == "error" and body["egress"] == []
    assert registry.paths == before


def test_when_pip_installs_in_python_data_then_its_own_packages_stay_usable(
    tmp_path: Path, registry: StaticRegistry, images: ImageStore
) -> None:
    # The request's `image` field is the service's to add; here the backend runs the spec.
    images.ensure("python-data", progress=lambda _line: None)
    state = make_state_dir(tmp_path / "state")
    backend = RunscBackend(
        state_dir=state,
        images=ImageStore(REPO_ROOT / "images", state),
        attacher=egress_attacher(allow_private=True),
    )
    backend.reap()
    code = PIP_INSTALL.format(url=registry.url) + "    import numpy; print(numpy.ones(3).sum())\n"
    spec = ExecutionSpec(
        execution_id=uuid.uuid4().hex,
        code=textwrap.dedent(code),
        image="python-data",
        limits=Limits(timeout_s=60, cpu_s=60, memory_mb=512),
        egress=EgressSpec(allow=(f"127.0.0.1:{registry.port}",)),
    )

    async def run() -> ExecutionResult:
        answer = await backend.run(spec)
        await backend.settle()  # a finished sandbox is removed after the answer
        return answer

    result = asyncio.run(run())
    assert backend.leftovers() == []
    assert result.status is Status.OK, result.stderr
    assert result.stdout == "0 1 /work/lib/sgdemo/__init__.py\n3.0\n"
