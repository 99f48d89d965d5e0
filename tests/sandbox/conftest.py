"""Backends for the conformance suite: every case runs against runsc direct and Docker.

The Docker backend needs the daemon `.ci/docker` starts (`make test` runs it first). Without a
daemon these tests fail, naming the command, rather than skip: a skipped conformance run would
pass CI while proving nothing about the Docker backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.docker import DockerBackend
from sandbox.image import ImageStore
from sandbox.runsc import RunscBackend
from sandgate.settings import REPO_ROOT
from tests.conftest import make_state_dir

Backend = RunscBackend | DockerBackend
KINDS = ["runsc", pytest.param("docker", marks=pytest.mark.docker)]


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
        return DockerBackend(state_dir=state, images=store)
    return RunscBackend(state_dir=state, images=store)


@pytest.fixture(scope="session")
def runsc_backend(state_dir: Path) -> RunscBackend:
    """The runsc backend on the session's state directory."""
    backend = RunscBackend(state_dir=state_dir, images=ImageStore(REPO_ROOT / "images", state_dir))
    backend.reap()
    return backend


@pytest.fixture(scope="session")
def docker_backend(
    tmp_path_factory: pytest.TempPathFactory, images: ImageStore
) -> Iterator[DockerBackend]:
    """The Docker backend on its own state directory, with the python image imported."""
    state = make_state_dir(tmp_path_factory.mktemp("docker-state"))
    backend = DockerBackend(state_dir=state, images=ImageStore(REPO_ROOT / "images", state))
    require_docker(backend)
    images.ensure_docker("python", backend.api, progress=lambda _line: None)
    backend.reap()
    yield backend
    assert backend.leftovers() == []
    backend.close()


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each conformance case once per backend."""
    found: Backend = request.getfixturevalue(f"{request.param}_backend")
    return found


@pytest.fixture(params=KINDS)
def backend_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[Path, Path], Backend]]:
    """Makes a backend of each kind on a given state directory and recipes folder."""
    kind: str = request.param
    if kind == "docker":
        require_docker(request.getfixturevalue("docker_backend"))
    made: list[Backend] = []

    def factory(state: Path, recipes: Path) -> Backend:
        made.append(make_backend(kind, state, recipes))
        return made[-1]

    yield factory
    for backend in made:
        if isinstance(backend, DockerBackend):
            backend.close()
