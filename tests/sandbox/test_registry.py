"""The backend table the service's settings name backends by, and what it builds from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sandbox import BACKENDS, BackendConfig, ExecutionSpec, UnknownBackend, backend_class
from sandbox.docker import DockerBackend
from sandbox.image import ImageStore
from sandbox.runsc import RunscBackend
from sandgate.settings import REPO_ROOT


def test_when_a_known_name_is_looked_up_then_its_class_comes_back() -> None:
    assert backend_class("runsc") is RunscBackend
    assert backend_class("docker") is DockerBackend
    assert set(BACKENDS) == {"runsc", "docker"}


def test_when_an_unknown_name_is_looked_up_then_the_error_names_the_known_ones() -> None:
    with pytest.raises(UnknownBackend, match="'kata'.*known: docker, runsc"):
        backend_class("kata")


def test_when_built_from_a_config_then_the_backend_takes_its_options(tmp_path: Path) -> None:
    config = BackendConfig(
        state_dir=tmp_path,
        images=ImageStore(REPO_ROOT / "images", tmp_path),
        runsc_path="/opt/runsc",
        runsc_platform="systrap",
        docker_runtime="gvisor",
    )
    runsc = backend_class("runsc").from_config(config)
    assert isinstance(runsc, RunscBackend)
    assert (runsc.runsc, runsc.platform, runsc.state_dir) == ("/opt/runsc", "systrap", tmp_path)
    docker = backend_class("docker").from_config(config)
    assert isinstance(docker, DockerBackend)
    assert (docker.runtime, docker.uds_runtime, docker.attacher) == ("gvisor", "gvisor-uds", None)
    docker.close()


@pytest.mark.parametrize("image", ["../python", "Python", "", "a/b"])
def test_when_an_image_name_is_not_a_recipe_name_then_the_spec_is_refused(image: str) -> None:
    with pytest.raises(ValidationError, match="image"):
        ExecutionSpec(execution_id="x", code="", image=image)


@pytest.mark.parametrize("execution_id", ["../x", "a b", "", "x" * 65])
def test_when_an_execution_id_is_not_a_safe_name_then_the_spec_is_refused(
    execution_id: str,
) -> None:
    with pytest.raises(ValidationError, match="execution_id"):
        ExecutionSpec(execution_id=execution_id, code="")
