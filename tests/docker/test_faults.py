"""The Docker backend when things go wrong around it: the daemon stops or restarts mid-run, the
service crashes, a container will not die, the runtime is not gVisor.

Each test uses the real dockerd and real runsc containers; a test that stops the daemon starts
it again afterwards (see conftest.py).
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sandbox.base import ExecutionResult, ExecutionSpec, Limits, SandboxUnavailable, Status
from sandbox.docker import DockerBackend
from sandbox.image import ImageStore
from sandgate.settings import REPO_ROOT
from tests.conftest import ADMIN_KEY
from tests.docker.conftest import Dockerd
from tests.helpers import start_server

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# docker-py's unix-socket connection leaks its socket when connect() fails (the daemon is down):
# the garbage collector closes it with a ResourceWarning. Tests that stop the daemon collect
# those sockets themselves, under this filter, instead of failing on the library's leak.
library_leaks_sockets_while_daemon_is_down = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning", "ignore::ResourceWarning"
)


def _spec(code: str, **limits: float) -> ExecutionSpec:
    return ExecutionSpec(execution_id=uuid.uuid4().hex, code=code, limits=Limits(**limits))


def _running(backend: DockerBackend) -> bool:
    return any(item.endswith(" running") for item in backend.leftovers())


async def _until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.05)


@library_leaks_sockets_while_daemon_is_down
def test_when_daemon_stops_mid_run_then_unavailable_and_nothing_left(
    fresh_backend: DockerBackend, dockerd: Dockerd
) -> None:
    backend = fresh_backend

    async def scenario() -> None:
        task = asyncio.create_task(backend.run(_spec("import time; time.sleep(120)")))
        await _until(lambda: _running(backend))
        await asyncio.to_thread(dockerd.stop)
        with pytest.raises(SandboxUnavailable, match="Docker daemon"):
            await asyncio.wait_for(task, 60)

    asyncio.run(scenario())
    assert "not answering" in (backend.checks()["docker"] or "")
    # While the daemon is down: no sandbox process, cgroup or input directory is left.
    left = backend.leftovers()
    assert left[0].startswith("docker daemon not answering")
    assert left[1:] == []
    dockerd.start()
    # Back up: the stopped container the daemon kept is removed by the next readiness check.
    assert backend.checks()["docker"] is None
    assert backend.leftovers() == []
    result = asyncio.run(backend.run(_spec("print('again')")))
    assert (result.status, result.stdout) == (Status.OK, "again\n")
    gc.collect()


@library_leaks_sockets_while_daemon_is_down
def test_when_service_crashes_and_daemon_restarts_then_reap_removes_only_its_own(
    tmp_path: Path,
    images: ImageStore,
    fresh_backend: DockerBackend,
    dockerd: Dockerd,
    make_docker_backend: Callable[..., DockerBackend],
) -> None:
    state = tmp_path / "crashed"
    script = textwrap.dedent(f"""
        import asyncio
        from pathlib import Path
        from sandbox.base import ExecutionSpec
        from sandbox.docker import DockerBackend
        from sandbox.image import ImageStore
        state = Path({str(state)!r})
        store = ImageStore(Path({str(images.recipes_dir)!r}), state)
        b = DockerBackend(state_dir=state, images=store)
        spec = ExecutionSpec(execution_id="crashme", code="import time; time.sleep(600)")
        asyncio.run(b.run(spec))
    """)
    crashed = make_docker_backend(state)
    # Someone else's container, labelled for another Sandgate instance: reap must not touch it.
    api = fresh_backend.api
    other = api.create_container(
        images.docker_tag("python"), "true", labels={"sandgate": "0" * 12}
    )["Id"]
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 60
        while not _running(crashed):
            assert child.poll() is None and time.monotonic() < deadline, "no sandbox started"
            time.sleep(0.1)
        child.kill()  # the service dies mid-run: its container goes on running
        child.wait()
        assert _running(crashed)
        dockerd.stop()  # the daemon restarts with that container running
        dockerd.start()
        left = crashed.leftovers()
        assert any(item.startswith("container") for item in left), left
        assert any(item.startswith("cgroup") for item in left), left
        assert any(item.startswith("run dir") for item in left), left
        assert crashed.reap() > 0
        assert crashed.leftovers() == []
        assert api.inspect_container(other)["Config"]["Labels"] == {"sandgate": "0" * 12}
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        api.remove_container(other, force=True)
        crashed.reap()
        gc.collect()


def test_when_container_will_not_die_then_it_is_killed_from_its_cgroup(
    fresh_backend: DockerBackend,
) -> None:
    # A frozen cgroup (v1 freezer) holds SIGKILL until thawed: `docker kill` cannot end it.
    backend = fresh_backend
    frozen: list[Path] = []

    def freeze() -> None:
        while not _running(backend):
            time.sleep(0.05)
        parent = backend.cgroup_root / "freezer" / backend.cgroup_parent
        for _ in range(100):
            found = [p for p in parent.iterdir() if p.is_dir()] if parent.is_dir() else []
            if found:
                (found[0] / "freezer.state").write_text("FROZEN")
                frozen.append(found[0])
                return
            time.sleep(0.05)

    freezer = threading.Thread(target=freeze)
    freezer.start()
    started = time.monotonic()
    result = asyncio.run(backend.run(_spec("import time; time.sleep(120)", timeout_s=3)))
    elapsed = time.monotonic() - started
    freezer.join()
    assert frozen, "the container's freezer cgroup was never found"
    assert result.status is Status.TIMEOUT
    assert elapsed < 30
    assert backend.leftovers() == []


def test_when_runtime_is_runc_then_refused_unless_allowed_and_warned(
    tmp_path: Path, fresh_backend: DockerBackend, make_docker_backend: Callable[..., DockerBackend]
) -> None:
    refused = make_docker_backend(tmp_path, runtime="runc")
    assert "NOT a security boundary" in (refused.checks()["runtime"] or "")
    with pytest.raises(SandboxUnavailable, match="refusing"):
        asyncio.run(refused.run(_spec("print(1)")))
    allowed = make_docker_backend(tmp_path, runtime="runc", allow_runc=True)
    assert allowed.checks()["runtime"] is None
    assert allowed.warnings() and "no gVisor" in allowed.warnings()[0]
    result: ExecutionResult = asyncio.run(allowed.run(_spec("print(1)")))
    assert (result.status, result.stdout) == (Status.OK, "1\n")
    assert allowed.leftovers() == []


def test_when_runtime_is_not_registered_then_checks_say_how_to_register_it(
    tmp_path: Path, fresh_backend: DockerBackend, make_docker_backend: Callable[..., DockerBackend]
) -> None:
    backend = make_docker_backend(tmp_path, runtime="gvisor-missing")
    assert "daemon.json" in (backend.checks()["runtime"] or "")
    with pytest.raises(SandboxUnavailable, match="gvisor-missing"):
        asyncio.run(backend.run(_spec("print(1)")))
    assert backend.leftovers() == []


@library_leaks_sockets_while_daemon_is_down
def test_when_daemon_stops_under_the_service_then_503_and_ready_says_why(
    tmp_path: Path,
    fresh_backend: DockerBackend,
    dockerd: Dockerd,
    make_docker_backend: Callable[..., DockerBackend],
) -> None:
    env = {"SANDGATE_API_KEY": ADMIN_KEY, "SANDGATE_BACKEND": "docker"}
    (tmp_path / "service").mkdir()
    with start_server(tmp_path / "service", env) as live, live.client() as client:
        assert client.get("/ready").status_code == 200
        answers: list[httpx.Response] = []
        request = threading.Thread(
            target=lambda: answers.append(
                client.post("/execute", json={"code": "import time; time.sleep(60)"})
            )
        )
        request.start()
        service_backend = make_docker_backend(tmp_path / "service")
        deadline = time.monotonic() + 60
        while not _running(service_backend):
            assert time.monotonic() < deadline, "the service never started its sandbox"
            time.sleep(0.1)
        dockerd.stop()
        request.join(60)
        (answer,) = answers
        assert answer.status_code == 503, answer.text
        assert "Traceback" not in answer.text
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "not answering" in ready.json()["checks"]["docker"]["detail"]
        dockerd.start()
        assert client.get("/ready").status_code == 200
        again = client.post("/execute", json={"code": "print(6 * 7)"})
        assert (again.status_code, again.json()["stdout"]) == (200, "42\n")
    assert service_backend.leftovers() == []
    gc.collect()
