"""The language and image table: what a spec may ask for, and that it matches the recipes."""

from __future__ import annotations

import pytest

from sandbox.base import EgressSpec, ExecutionSpec
from sandbox.image import ImageStore
from sandbox.languages import IMAGES, LANGUAGES
from sandgate.settings import REPO_ROOT


def test_when_images_are_listed_then_each_has_a_recipe_and_each_recipe_an_entry() -> None:
    assert ImageStore(REPO_ROOT / "images", REPO_ROOT / ".state").names() == sorted(IMAGES)
    assert {i for lang in LANGUAGES.values() for i in lang.images} == set(IMAGES)


# -- what a spec may ask for (no sandbox) ----------------------------------------------------


@pytest.mark.parametrize(
    ("language", "image", "message"),
    [
        ("node", "python", "image 'python' cannot run node"),
        ("python", "bash", "image 'bash' cannot run python"),
        ("cobol", None, "unknown language 'cobol'"),
    ],
)
def test_when_spec_pairs_a_language_with_a_wrong_image_then_refused(
    language: str, image: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ExecutionSpec(execution_id="x", code="1", language=language, image=image)


def test_when_a_spec_without_image_is_made_then_the_language_default_is_used() -> None:
    names = {
        lang: ExecutionSpec(execution_id="x", code="1", language=lang).image_name()
        for lang in ("python", "node", "bash")
    }
    assert names == {"python": "python", "node": "node", "bash": "bash"}
    spec = ExecutionSpec(execution_id="x", code="1", image="python-data")
    assert spec.image_name() == "python-data"


def test_when_egress_is_asked_on_the_bash_image_then_refused() -> None:
    with pytest.raises(ValueError, match="no egress forwarder"):
        ExecutionSpec(
            execution_id="x", code="1", language="bash", egress=EgressSpec(allow=("a.b:443",))
        )
