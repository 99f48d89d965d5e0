"""An operator-configured spaCy pipeline is loaded from disk, never downloaded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import spacy

from guards import GuardOptions, Screener, ScreeningConfig, Stage, StageConfig
from guards.pii import PiiDetector


def _pipeline(path: Path, with_ner: bool) -> Path:
    nlp = spacy.blank("en")
    if with_ner:
        ner: Any = nlp.add_pipe("ner")
        ner.add_label("PERSON")
        nlp.initialize()
    nlp.to_disk(path)
    return path


def test_when_model_has_no_ner_then_ner_types_stay_inactive(tmp_path: Path) -> None:
    options = GuardOptions(spacy_model_path=_pipeline(tmp_path / "blank", with_ner=False))
    assert "PERSON" not in PiiDetector(options).entities()


def test_when_model_has_ner_then_ner_types_are_active_and_screening_runs(tmp_path: Path) -> None:
    options = GuardOptions(
        spacy_model_path=_pipeline(tmp_path / "ner", with_ner=True), hash_secret="m" * 16
    )
    screener = Screener(options)
    assert {"PERSON", "LOCATION", "ORGANIZATION", "NRP"} <= set(screener.active_entities())
    assert screener.unavailable_entities() == []
    config = ScreeningConfig(input=StageConfig(detectors=["pii"]))
    text = "Mail John at john@example.com"
    result = asyncio.run(screener.screen(text, Stage.INPUT, config, tenant="t"))
    # The untrained pipeline finds no names; the pattern recognizers still run beside it.
    assert ("EMAIL_ADDRESS", "john@example.com") in {
        (f.type, text[f.start : f.end]) for f in result.findings
    }


def test_when_model_path_is_not_a_pipeline_then_options_refuse_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no spaCy pipeline"):
        GuardOptions(spacy_model_path=tmp_path)
