"""`/ready` names each check and lists every image with its recipe hash, size and whether it is
built; an image the loaded policies allow but nobody built is a warning with the build command,
and the backend's own image (python) not built makes it not ready."""

from __future__ import annotations

from pathlib import Path

from sandgate.settings import REPO_ROOT
from tests.inproc import inproc

SHARED_IMAGES = REPO_ROOT / ".state" / "images"


def test_when_no_image_is_built_then_a_warning_names_the_command(tmp_path: Path) -> None:
    with inproc(tmp_path / "state") as service:
        answer = service.client.get("/ready")
    body = answer.json()
    images = body["checks"]["images"]
    [warning] = [w for w in body["warnings"] if "not built" in w]
    assert "sandgate image build" in warning and "python-data" in warning
    names = {i["name"] for i in images["images"]}
    assert names == {"python", "python-data", "node", "bash"}
    assert all(len(i["recipe_hash"]) == 16 and i["built"] is False for i in images["images"])


def test_when_the_images_are_built_then_they_are_listed_with_their_sizes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "images").symlink_to(SHARED_IMAGES)
    with inproc(state) as service:
        body = service.client.get("/ready").json()
    listed = {i["name"]: i for i in body["checks"]["images"]["images"]}
    built = [name for name, item in listed.items() if item["built"]]
    assert built, "the set-up builds the images (.ci/setup run)"
    assert all(listed[name]["size_bytes"] > 10 << 20 for name in built)
