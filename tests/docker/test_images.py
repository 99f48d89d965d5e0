"""Sandbox images in Docker: `ImageStore.ensure_docker` imports the built root filesystem as
`sandgate/<name>:<recipe hash>` (no registry), is a no-op when the tag is there, and a changed
recipe imports a new tag and drops the old one.

A small hand-made root filesystem stands in for debootstrap's (which the session fixture and
the conformance suite already exercise), so a recipe change costs a second, not a minute.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.docker import DockerBackend
from sandbox.image import ImageStore

pytestmark = pytest.mark.docker


@pytest.fixture
def tiny(tmp_path: Path, fresh_backend: DockerBackend) -> Iterator[tuple[ImageStore, str]]:
    """An image store with a recipe `tiny-<random>` whose root filesystem is already 'built'."""
    name = f"tiny-{uuid.uuid4().hex[:8]}"
    (tmp_path / "recipes" / name).mkdir(parents=True)
    (tmp_path / "recipes" / name / "recipe.yaml").write_text("packages: []\n")
    store = ImageStore(tmp_path / "recipes", tmp_path / "state")
    yield store, name
    for image in fresh_backend.api.images(name=f"sandgate/{name}"):
        fresh_backend.api.remove_image(image["Id"], force=True)


def _build(store: ImageStore, name: str, marker: str) -> None:
    rootfs = store.path(name) / "rootfs"
    rootfs.mkdir(parents=True)
    (rootfs / "marker").write_text(marker)


def _tags(backend: DockerBackend, name: str) -> list[str]:
    return sorted(t for i in backend.api.images(name=f"sandgate/{name}") for t in i["RepoTags"])


def test_when_recipe_changes_then_a_new_tag_is_imported_and_the_old_dropped(
    tiny: tuple[ImageStore, str], fresh_backend: DockerBackend
) -> None:
    store, name = tiny
    api = fresh_backend.api
    _build(store, name, "first")
    lines: list[str] = []
    first = store.ensure_docker(name, api, progress=lines.append)
    assert first == f"sandgate/{name}:{store.recipe_hash(name)}"
    assert _tags(fresh_backend, name) == [first]
    assert any("importing" in line for line in lines)
    # The imported image holds the root filesystem's files.
    created = api.create_container(first, "/marker")
    try:
        archive, _ = api.get_archive(created["Id"], "/marker")
        assert b"first" in b"".join(archive)
    finally:
        api.remove_container(created["Id"], force=True)

    lines.clear()
    assert store.ensure_docker(name, api, progress=lines.append) == first
    assert any("up to date" in line for line in lines)

    with (store.recipes_dir / name / "recipe.yaml").open("a") as recipe:
        recipe.write("# changed\n")
    _build(store, name, "second")
    second = store.ensure_docker(name, api, progress=lambda _line: None)
    assert second != first
    assert _tags(fresh_backend, name) == [second]
