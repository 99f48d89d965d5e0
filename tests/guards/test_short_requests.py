"""Issue 16's false positives: short benign imperatives ("write to me", "antworte allen",
"never mind") through the real classifier and the real default pipeline, and short attacks
that must still be blocked. The texts are in `tests.guards._short_requests`."""

from __future__ import annotations

import math

import pytest

from guards import ScreeningConfig, Stage, StageConfig
from guards.injection_classifier import SHORT, TYPE, model
from guards.injection_model.features import token_features
from tests.guards._short_requests import ENGLISH, GERMAN, SHORT_ATTACKS
from tests.guards.conftest import Screen

ONLY = ScreeningConfig(input=StageConfig(detectors=["injection_classifier"]))


@pytest.mark.parametrize("text", ENGLISH + GERMAN)
def test_when_a_short_request_is_benign_then_the_model_lets_it_pass(
    screen: Screen, text: str
) -> None:
    scores = [s for _a, _b, s in model().window_scores(text)]
    assert screen(text, Stage.INPUT, ONLY).findings == [], max(scores)


@pytest.mark.parametrize("text", ENGLISH + GERMAN)
def test_when_a_short_request_is_benign_then_the_default_input_policy_does_not_block_it(
    screen: Screen, text: str
) -> None:
    result = screen(text, Stage.INPUT)
    assert result.verdict != "block", [(f.detector, f.type) for f in result.findings]
    assert {f.type for f in result.findings} <= {"EMAIL_ADDRESS"}
    assert (result.verdict == "redact") == ("@" in text)


@pytest.mark.parametrize("text", SHORT_ATTACKS)
def test_when_a_short_attack_is_sent_then_the_default_input_policy_blocks_it(
    screen: Screen, text: str
) -> None:
    assert screen(text, Stage.INPUT).verdict == "block"


def test_when_a_window_has_fewer_than_short_tokens_then_its_evidence_counts_in_proportion() -> None:
    m = model()
    names = token_features("pwned")
    evidence = sum(m.weights.get(n, 0.0) for n in names) / math.sqrt(len(names))
    ((_start, _end, score),) = m.window_scores("pwned")
    # One token of SHORT: a quarter of its evidence, so one strong word is not an attack.
    assert math.log(score / (1 - score)) == pytest.approx(m.bias + evidence / SHORT)
    assert 1 / (1 + math.exp(-(m.bias + evidence))) >= StageConfig().threshold_for(TYPE) > score
