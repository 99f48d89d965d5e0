"""The `screening` policy section: one accept or reject test per shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from guards import Action, GuardOptions, ScreeningConfig, Stage, StageConfig
from guards.config import DEFAULT_DETECTORS
from guards.registry import DETECTORS

BRIEF_YAML = """
screening:
  input: {detectors: [pii, secrets, injection], actions: {CREDIT_CARD: redact, AWS_ACCESS_KEY: block, PROMPT_INJECTION: block}}
"""  # noqa: E501


def test_when_security_team_yaml_is_loaded_then_it_validates() -> None:
    config = ScreeningConfig.model_validate(yaml.safe_load(BRIEF_YAML)["screening"])
    assert config.input.detectors == ["pii", "secrets", "injection"]
    assert config.input.action_for("pii", "CREDIT_CARD") is Action.REDACT
    assert config.input.action_for("injection", "PROMPT_INJECTION") is Action.BLOCK


def test_when_nothing_is_given_then_defaults_are_the_documented_ones() -> None:
    config = ScreeningConfig()
    assert config.input.detectors_for(Stage.INPUT) == [
        "pii",
        "secrets",
        "injection",
        "injection_classifier",
    ]
    assert config.output.detectors_for(Stage.OUTPUT) == ["pii", "secrets"]
    assert config.code.detectors_for(Stage.CODE) == ["secrets", "nemo"]
    assert config.input.action_for("pii", "EMAIL_ADDRESS") is Action.REDACT
    assert config.input.action_for("secrets", "GITHUB_TOKEN") is Action.BLOCK
    assert config.output.action_for("secrets", "GITHUB_TOKEN") is Action.REDACT
    assert config.input.action_for("unlisted", "X") is Action.BLOCK
    assert config.code.action_for("nemo", "XSS") is Action.BLOCK
    assert config.code.action_for("nemo", "CODE_INJECTION") is Action.ALLOW


def test_when_detectors_are_missing_then_stage_default_applies_and_empty_means_none() -> None:
    missing = ScreeningConfig.model_validate({"code": {"min_score": 0.7}})
    empty = ScreeningConfig.model_validate({"code": {"detectors": []}})
    assert missing.code.detectors_for(Stage.CODE) == list(DEFAULT_DETECTORS[Stage.CODE])
    assert empty.code.detectors_for(Stage.CODE) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"input": {"detectors": ["pii", "magic"]}}, "unknown detector"),
        ({"input": {"detectors": ["pii", "pii"]}}, "listed twice"),
        ({"input": {"detector_actions": {"magic": "block"}}}, "unknown detector"),
        ({"input": {"actions": {"CREDIT_CARD": "shred"}}}, "Input should be"),
        ({"input": {"actions": {"credit card": "block"}}}, "UPPER_SNAKE_CASE"),
        ({"input": {"thresholds": {"PHONE_NUMBER": 1.5}}}, "between 0 and 1"),
        ({"input": {"min_score": -0.1}}, "greater than or equal"),
        ({"input": {"operator": "encrypt"}}, "Input should be"),
        ({"input": {"max_length": 0}}, "greater than 0"),
        ({"input": {"detector": ["pii"]}}, "Extra inputs are not permitted"),
        ({"inputs": {}}, "Extra inputs are not permitted"),
        ({"nemo": {"injections": ["sqli", "shell"]}}, "unknown YARA rule set"),
        ({"secret_patterns": [{"name": "x", "supported_entity": "X_KEY"}]}, "patterns"),
        (
            {"secret_patterns": [{"name": "x", "supported_entity": "x", "deny_list": ["a"]}]},
            "String should match pattern",
        ),
        ({"injection_rules": [{"name": "r", "pattern": "(unclosed"}]}, "does not compile"),
    ],
)
def test_when_section_is_malformed_then_validation_says_where(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ScreeningConfig.model_validate(data)


def test_when_schema_is_generated_then_fields_carry_descriptions() -> None:
    schema = ScreeningConfig.model_json_schema()
    json.dumps(schema)
    stage = schema["$defs"]["StageConfig"]
    assert stage["additionalProperties"] is False
    for name, field in stage["properties"].items():
        assert field.get("description"), name
    assert "Empty" in stage["properties"]["detectors"]["description"]


def test_when_every_registered_detector_is_named_then_config_accepts_it() -> None:
    assert StageConfig(detectors=list(DETECTORS)).detectors == list(DETECTORS)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"hash_secret": "short"}, "at least 16"),
        ({"spacy_model_path": "/nonexistent/model"}, "no spaCy pipeline"),
        ({"offload": 3}, "Extra inputs"),
    ],
)
def test_when_options_are_malformed_then_they_are_rejected(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        GuardOptions.model_validate(data)
