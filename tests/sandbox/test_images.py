"""The image store: what it lists, how builds share a state directory, and what the four built
images hold. Build logic runs on a stand-in for debootstrap (a build takes minutes; the set-up
builds the real images once, and the last tests read those)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sandbox.image
from sandbox.image import ImageError, ImageStore
from sandbox.languages import IMAGES
from tests.conftest import make_state_dir

RECIPE = "packages: [python3]\n"


def recipes(tmp_path: Path, *names: str) -> Path:
    for name in names:
        (tmp_path / "recipes" / name).mkdir(parents=True)
        (tmp_path / "recipes" / name / "recipe.yaml").write_text(RECIPE)
    return tmp_path / "recipes"


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Builds stand in for debootstrap: a root filesystem with one file; names are recorded,
    a recipe whose packages name `broken` fails, and each build takes 0.2 s."""
    done: list[str] = []

    def build(recipe: Any, folder: Path, rootfs: Path, mirror: str, say: Callable[..., None]):
        time.sleep(0.2)
        if "broken" in recipe.packages:
            rootfs.mkdir(parents=True)
            raise ImageError("apt-get install broken failed (100)")
        (rootfs / "etc").mkdir(parents=True)
        (rootfs / "etc" / "os-release").write_text("x" * 10_000)
        done.append(folder.name)

    monkeypatch.setattr(sandbox.image, "build_rootfs", build)
    monkeypatch.setattr(sandbox.image, "installed_packages", lambda _rootfs: "python3 3.11\n")
    return done


def test_when_nothing_is_built_then_the_listing_says_so_with_the_recipe_hash(
    tmp_path: Path,
) -> None:
    store = ImageStore(recipes(tmp_path, "a", "b"), tmp_path / "state")
    assert [(s.name, s.built, s.size_bytes) for s in store.statuses()] == [
        ("a", False, None),
        ("b", False, None),
    ]
    assert (
        store.status("a").recipe_hash == store.recipe_hash("a")
        and len(store.recipe_hash("a")) == 16
    )


def test_when_built_then_listed_with_size_time_and_packages(
    tmp_path: Path, builds: list[str]
) -> None:
    store = ImageStore(recipes(tmp_path, "a"), tmp_path / "state")
    lines: list[str] = []
    store.ensure("a", progress=lines.append)
    status = store.status("a")
    assert status.built and status.size_bytes is not None and status.size_bytes >= 10_000
    assert status.build_seconds is not None and status.build_seconds >= 0.2
    assert (store.path("a") / "packages.txt").read_text() == "python3 3.11\n"
    assert any(line.startswith("image a: built in") for line in lines)
    lines.clear()
    store.ensure("a", progress=lines.append)
    assert builds == ["a"] and "up to date" in lines[0]


def test_when_an_older_build_has_no_size_then_it_is_measured_once_and_kept(
    tmp_path: Path, builds: list[str]
) -> None:
    store = ImageStore(recipes(tmp_path, "a"), tmp_path / "state")
    store.ensure("a", progress=lambda _line: None)
    manifest = store.path("a") / "manifest.json"
    recorded = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({k: v for k, v in recorded.items() if k != "size_bytes"}))
    assert store.status("a").size_bytes == recorded["size_bytes"]
    assert json.loads(manifest.read_text())["size_bytes"] == recorded["size_bytes"]


def test_when_a_build_fails_then_nothing_half_built_is_left(
    tmp_path: Path, builds: list[str]
) -> None:
    folder = recipes(tmp_path, "a")
    (folder / "a" / "recipe.yaml").write_text("packages: [broken]\n")
    store = ImageStore(folder, tmp_path / "state")
    with pytest.raises(ImageError, match="apt-get install broken"):
        store.ensure("a", progress=lambda _line: None)
    assert [p.name for p in store.root.iterdir()] == [".lock-a"]


def test_when_several_are_built_and_one_fails_then_the_others_finish_and_it_is_named(
    tmp_path: Path, builds: list[str]
) -> None:
    folder = recipes(tmp_path, "a", "b", "c")
    (folder / "b" / "recipe.yaml").write_text("packages: [broken]\n")
    store = ImageStore(folder, tmp_path / "state")
    started = time.monotonic()
    with pytest.raises(ImageError, match="^b: apt-get install broken"):
        store.ensure_many(["a", "b", "c"], jobs=3, progress=lambda _line: None)
    assert sorted(builds) == ["a", "c"]
    assert time.monotonic() - started < 0.5  # the three ran at once
    assert [s.built for s in store.statuses()] == [True, False, True]


def test_when_an_unknown_image_is_asked_for_then_nothing_is_built(
    tmp_path: Path, builds: list[str]
) -> None:
    store = ImageStore(recipes(tmp_path, "a"), tmp_path / "state")
    with pytest.raises(ImageError, match="no image recipe"):
        store.ensure_many(["a", "nope"], progress=lambda _line: None)
    assert builds == []


def test_when_two_builders_race_then_one_builds_and_the_other_finds_it(
    tmp_path: Path, builds: list[str]
) -> None:
    folder = recipes(tmp_path, "a")
    lines: list[str] = []
    threads = [
        threading.Thread(
            target=ImageStore(folder, tmp_path / "state").ensure, args=("a", lines.append)
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert builds == ["a"]
    assert any("waiting for it" in line for line in lines)
    assert any("up to date" in line for line in lines)


def test_when_an_image_is_rebuilt_then_older_builds_go_and_similar_names_stay(
    tmp_path: Path, builds: list[str]
) -> None:
    # `python-data-<hash>` matches `python-*`: a new python must not remove python-data.
    folder = recipes(tmp_path, "python", "python-data")
    store = ImageStore(folder, tmp_path / "state")
    store.ensure_many(["python", "python-data"], progress=lambda _line: None)
    first = store.path("python")
    (folder / "python" / "recipe.yaml").write_text(RECIPE + "# changed\n")
    store.ensure("python", progress=lambda _line: None)
    assert not first.exists() and store.path("python").is_dir()
    assert [s.built for s in store.statuses()] == [True, True]


# -- the real images, as the set-up built them -------------------------------------------------


@pytest.fixture(scope="module")
def all_images(images: ImageStore) -> ImageStore:
    images.ensure_many(images.names(), progress=lambda _line: None)
    return images


def test_when_the_images_are_listed_then_every_recipe_is_built_with_its_size(
    all_images: ImageStore,
) -> None:
    statuses = {s.name: s for s in all_images.statuses()}
    assert sorted(statuses) == sorted(IMAGES)
    for status in statuses.values():
        assert status.built and status.size_bytes is not None and status.size_bytes > 50 << 20


@pytest.mark.parametrize(
    ("name", "present", "absent"),
    [
        ("python", {"python3", "python3-pip"}, {"python3-numpy", "nodejs"}),
        (
            "python-data",
            {
                "python3-numpy",
                "python3-pandas",
                "python3-matplotlib",
                "python3-scipy",
                "python3-pip",
            },
            {"nodejs"},
        ),
        ("node", {"nodejs", "npm", "python3"}, {"python3-numpy"}),
        ("bash", {"bash", "coreutils", "grep", "sed", "gawk", "jq", "busybox"}, {"python3"}),
    ],
)
def test_when_an_image_is_built_then_it_holds_its_packages_from_debian(
    all_images: ImageStore, name: str, present: set[str], absent: set[str]
) -> None:
    packages = {
        line.split()[0]
        for line in (all_images.path(name) / "packages.txt").read_text().splitlines()
    }
    assert present <= packages and not absent & packages
    rootfs = all_images.rootfs(name)
    assert (rootfs / "usr/bin/python3").exists() is IMAGES[name].egress  # the forwarder's python
    assert (rootfs / "work").is_dir() and (rootfs / "sandgate").is_dir()
    assert not list((rootfs / "var/lib/apt/lists").glob("*Packages*"))
    assert (rootfs / "etc/resolv.conf").read_text() == ""


def test_when_the_cli_lists_and_builds_by_policy_then_only_the_images_in_use_are_named(
    tmp_path: Path, all_images: ImageStore
) -> None:
    state = make_state_dir(tmp_path / "state")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "default.yaml").write_text("languages: [python, bash]\n")
    env = {"SANDGATE_STATE_DIR": str(state), "SANDGATE_POLICY_DIR": str(tmp_path / "policies")}
    cli = [sys.executable, "-m", "sandgate", "image"]
    listed = subprocess.run([*cli, "list", "--json"], env=env, capture_output=True, text=True)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["name"], r["built"]) for r in rows] == [(n, True) for n in sorted(IMAGES)]
    built = subprocess.run([*cli, "build"], env=env, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert "images the policies in" in built.stderr and "allow: bash, python" in built.stderr
    assert [line.split()[0] for line in built.stdout.splitlines()] == ["image", "bash", "python"]
