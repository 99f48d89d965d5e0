"""Languages and images in policies: which a policy allows, how a stricter one narrows them,
and why a request for one is refused (`Policy.refusal`, what the service answers 403 with)."""

from __future__ import annotations

import pytest

from sandgate.policy.loader import load_policy_set
from sandgate.policy.schema import Policy
from sandgate.policy.strictness import looser_points
from sandgate.settings import REPO_ROOT

SHIPPED = load_policy_set(REPO_ROOT / "policies").policies


def policy(**fields: object) -> Policy:
    return Policy.model_validate(fields)


@pytest.mark.parametrize(
    ("fields", "allowed"),
    [
        ({}, ["python"]),
        ({"languages": ["python", "node", "bash"]}, ["python", "node", "bash"]),
        ({"images": ["python-data"]}, ["python-data"]),
        (
            {"languages": ["python", "node"], "images": ["python-data", "node"]},
            ["python-data", "node"],
        ),
    ],
)
def test_when_images_are_missing_or_listed_then_the_allowed_ones_follow(
    fields: dict[str, object], allowed: list[str]
) -> None:
    assert policy(**fields).allowed_images() == allowed


def test_when_shipped_policies_are_read_then_their_images_are_as_documented() -> None:
    images = {name: p.policy.allowed_images() for name, p in SHIPPED.items()}
    assert images == {
        "default": ["python"],
        "strict": ["python"],
        "customer-support": ["python"],
        "data-analysis": ["python", "python-data"],
        "tooling": ["python", "node", "bash"],
    }


@pytest.mark.parametrize(
    ("language", "image", "refusal"),
    [
        ("python", None, None),
        ("python", "python", None),
        ("python", "python-data", "image 'python-data' is not allowed (allowed: ['python'])"),
        ("node", None, "language 'node' is not allowed (allowed: ['python'])"),
        (
            "python",
            "node",
            "image 'node' cannot run python; images for python: python, python-data",
        ),
        (
            "python",
            "windows",
            "image 'windows' cannot run python; images for python: python, python-data",
        ),
    ],
)
def test_when_default_is_asked_for_a_language_and_image_then_refusal_says_why(
    language: str, image: str | None, refusal: str | None
) -> None:
    assert SHIPPED["default"].policy.refusal(language, image) == refusal


def test_when_data_analysis_is_asked_for_python_data_then_it_runs() -> None:
    analysis = SHIPPED["data-analysis"].policy
    assert analysis.refusal("python", "python-data") is None
    assert analysis.refusal("python") is None


def test_when_a_policy_with_egress_is_asked_for_bash_then_refused_for_the_forwarder() -> None:
    with_egress = policy(languages=["bash"], network={"egress": ["pypi.org:443"]})
    assert "no egress forwarder" in (with_egress.refusal("bash") or "")
    assert policy(languages=["bash"]).refusal("bash") is None


@pytest.mark.parametrize(
    ("requested", "bound", "points"),
    [
        ({}, {"images": ["python", "python-data"]}, []),
        ({"images": ["python-data"]}, {"images": ["python", "python-data"]}, []),
        ({"images": ["python-data"]}, {}, ["images adds 'python-data'"]),
        ({"languages": ["python", "node"]}, {}, ["languages adds 'node'", "images adds 'node'"]),
        ({"languages": ["bash"]}, {"languages": ["python", "bash"]}, []),
    ],
)
def test_when_a_stricter_policy_is_asked_for_then_its_images_must_be_a_subset(
    requested: dict[str, object], bound: dict[str, object], points: list[str]
) -> None:
    assert looser_points(policy(**requested), policy(**bound)) == points


def test_when_finance_asks_for_default_then_it_is_stricter_and_not_the_reverse() -> None:
    analysis, default = SHIPPED["data-analysis"].policy, SHIPPED["default"].policy
    assert not [p for p in looser_points(default, analysis) if "image" in p or "language" in p]
    assert "images adds 'python-data'" in looser_points(analysis, default)
