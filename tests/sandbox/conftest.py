"""Backends for the conformance suite: every case runs against runsc direct with its sandboxes
started for each run (`runsc`), runsc with the warm pool (`runsc-pool`: every run is a hit, in
a sandbox started ahead), and Docker.

The Docker backend needs the daemon `.ci/docker` starts (`make test` runs it first). Without a
daemon these tests fail, naming the command, rather than skip: a skipped conformance run would
pass CI while proving nothing about the Docker backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.base import ExecutionResult, ExecutionSpec, OutputSink, SandboxBackend
from sandbox.docker import DockerBackend
from sandbox.image import ImageStore
from sandbox.pool import PoolOptions, SlotClass
from sandbox.runsc import RunscBackend
from sandbox.slots import SandboxSlots
from sandgate.settings import REPO_ROOT
from tests.conftest import make_state_dir
from tests.helpers import LoopThread

KINDS = ["runsc", "runsc-pool", pytest.param("docker", marks=pytest.mark.docker)]
PREIMPORT = ("json", "re", "datetime")


class Claims:
    """Records the pool's claims (a `PoolObserver`)."""

    def __init__(self) -> None:
        self.hits: list[bool] = []

    def pool_claimed(self, hit: bool) -> None:
        """One claim."""
        self.hits.append(hit)

    def pool_ready(self, class_name: str, ready: int) -> None:
        """Not needed here."""


class Backend:
    """A backend and the event loop it lives on. With a pool, `run` first waits until a
    sandbox of the spec's class is ready and then checks that the run claimed it."""

    def __init__(self, backend: SandboxBackend, claims: Claims | None = None) -> None:
        self.backend = backend
        self.claims = claims
        self.loop = LoopThread()
        self.loop.run(backend.start())

    async def ready(self, spec: ExecutionSpec, count: int = 1, timeout: float = 60) -> None:
        """Keep the spec's class warm and wait for `count` ready sandboxes of it."""
        cls = SlotClass.of(spec)
        self.backend.warm([cls])
        deadline = asyncio.get_running_loop().time() + timeout
        while self.backend.pool_state()[cls.name]["ready"] < count:
            assert asyncio.get_running_loop().time() < deadline, "the pool never filled"
            await asyncio.sleep(0.02)

    async def run_async(
        self, spec: ExecutionSpec, on_output: OutputSink | None = None
    ) -> ExecutionResult:
        """Run `spec` (as a pool hit, with a pool) and wait until its sandbox is removed."""
        if self.claims is not None:
            await self.ready(spec)
            before = len(self.claims.hits)
        result = await self.backend.run(spec, on_output)
        if self.claims is not None:
            assert self.claims.hits[before:] == [True], "the run did not get a pooled sandbox"
        await self.backend.settle()
        return result

    def run(self, spec: ExecutionSpec, on_output: OutputSink | None = None) -> ExecutionResult:
        """`run_async` on the backend's loop."""
        return self.loop.run(self.run_async(spec, on_output))

    def leftovers(self) -> list[str]:
        """The backend's leftovers (sandboxes kept ready by a pool are not)."""
        return self.backend.leftovers()

    def close(self) -> None:
        """Remove what the pool keeps, stop the loop."""
        self.loop.run(self.backend.aclose())
        self.loop.close()


def require_docker(backend: DockerBackend) -> None:
    """Fail (not skip) with the set-up command when the daemon or the runtime is missing."""
    checks = backend.checks()
    problems = {k: v for k, v in checks.items() if v and k in ("docker", "runtime")}
    if problems:
        pytest.fail(f"Docker is not ready for the docker backend ({problems}); run .ci/docker")


def make_backend(kind: str, state: Path, recipes: Path = REPO_ROOT / "images") -> Backend:
    """A backend of `kind` on `state`, with images from `recipes`."""
    store = ImageStore(recipes, state)
    if kind == "docker":
        return Backend(DockerBackend(state_dir=state, images=store))
    if kind == "runsc":
        return Backend(RunscBackend(state_dir=state, images=store))
    claims = Claims()
    pooled = RunscBackend(
        state_dir=state,
        images=store,
        pool=PoolOptions(size=1, preimport=PREIMPORT),
        slots=SandboxSlots(state / "slots", 2, 30),
        observer=claims,
    )
    return Backend(pooled, claims)


def _session_backend(kind: str, state: Path) -> Iterator[Backend]:
    made = make_backend(kind, state)
    made.backend.reap()
    yield made
    made.close()
    assert made.leftovers() == []


@pytest.fixture(scope="session")
def runsc_backend(state_dir: Path) -> Iterator[Backend]:
    """runsc direct on the session's state directory, a sandbox started for every run."""
    yield from _session_backend("runsc", state_dir)


@pytest.fixture(scope="session")
def runsc_pool_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """runsc direct with a warm pool, on its own state directory."""
    yield from _session_backend("runsc-pool", make_state_dir(tmp_path_factory.mktemp("pool")))


@pytest.fixture(scope="session")
def docker_backend(
    tmp_path_factory: pytest.TempPathFactory, images: ImageStore
) -> Iterator[Backend]:
    """The Docker backend on its own state directory, with the python image imported."""
    state = make_state_dir(tmp_path_factory.mktemp("docker-state"))
    made = make_backend("docker", state)
    docker = made.backend
    assert isinstance(docker, DockerBackend)
    require_docker(docker)
    images.ensure_docker("python", docker.api, progress=lambda _line: None)
    docker.reap()
    yield made
    made.close()
    assert made.leftovers() == []


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each conformance case once per backend."""
    name = str(request.param).replace("-", "_")
    found: Backend = request.getfixturevalue(f"{name}_backend")
    return found


@pytest.fixture(params=[k for k in KINDS if k != "runsc-pool"])
def cold_backend(request: pytest.FixtureRequest) -> Backend:
    """Each case once per backend that starts a sandbox per run: for languages with no
    runner, which a pool never starts ahead (with a pool they would run just the same)."""
    name = str(request.param)
    found: Backend = request.getfixturevalue(f"{name}_backend")
    return found


@pytest.fixture(params=KINDS)
def backend_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[Path, Path], Backend]]:
    """Makes a backend of each kind on a given state directory and recipes folder."""
    kind: str = request.param
    if kind == "docker":
        require_docker(request.getfixturevalue("docker_backend").backend)
    made: list[Backend] = []

    def factory(state: Path, recipes: Path) -> Backend:
        made.append(make_backend(kind, state, recipes))
        return made[-1]

    yield factory
    for backend in made:
        backend.close()
