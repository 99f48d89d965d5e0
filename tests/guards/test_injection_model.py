"""The committed classifier weights are what the corpus and the training code produce."""

from __future__ import annotations

import json

import pytest

from guards.injection_model import WEIGHTS
from guards.injection_model.corpus import LANGUAGES, corpus
from guards.injection_model.features import text_features
from guards.injection_model.train import digest, train

STALE = "guards/injection_model/weights.json is stale: run `python -m guards.injection_model.train`"


def test_when_the_corpus_or_training_code_changes_then_the_weights_must_be_retrained() -> None:
    assert json.loads(WEIGHTS.read_text(encoding="utf-8"))["digest"] == digest(), STALE


def test_when_the_corpus_is_expanded_then_every_language_has_attacks_and_look_alikes() -> None:
    samples = corpus()
    # a fixed seed: the same corpus as the one the committed weights were trained on
    trained = json.loads(WEIGHTS.read_text(encoding="utf-8"))["samples"]
    assert trained == {
        "attack": sum(s.label for s in samples),
        "benign": sum(1 - s.label for s in samples),
    }
    for language in LANGUAGES:
        labels = {s.label for s in samples if s.language == language}
        assert labels == {0, 1}, language
    assert len({s.text for s in samples}) == len(samples)


def test_when_features_are_taken_then_words_pairs_and_character_grams_count() -> None:
    features = text_features("Vergiss alles")
    assert features["w:vergiss"] == 1 and features["b:vergiss alles"] == 1
    assert features["c: verg"] == 1 and features["c:lles "] == 1
    assert features["x:ss al"] == 1  # across the gap between the two words


def test_when_two_function_words_meet_then_they_make_no_pair() -> None:
    features = text_features("how to ignore it")
    assert "b:how to" not in features and "w:how" not in features
    assert features["b:to ignore"] == 1 and features["b:ignore it"] == 1


@pytest.mark.slow
def test_when_the_model_is_retrained_then_it_equals_the_committed_weights() -> None:
    pytest.importorskip("sklearn", reason="scikit-learn (a dev dependency) trains the model")
    committed = json.loads(WEIGHTS.read_text(encoding="utf-8"))
    fresh = train()
    assert fresh["digest"] == committed["digest"], STALE
    assert abs(fresh["bias"] - committed["bias"]) < 1e-3
    assert set(fresh["weights"]) ^ set(committed["weights"]) <= {
        name for name, w in committed["weights"].items() if abs(w) < 0.01
    }
    worst = max(
        abs(fresh["weights"].get(name, 0.0) - committed["weights"].get(name, 0.0))
        for name in set(fresh["weights"]) | set(committed["weights"])
    )
    assert worst < 1e-3
