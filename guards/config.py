"""The `screening` section of a policy: plain pydantic data, passed in with every request.

```yaml
screening:
  input: {detectors: [pii, secrets, injection],
          actions: {CREDIT_CARD: redact, AWS_ACCESS_KEY: block, PROMPT_INJECTION: block}}
```

Missing versus empty, everywhere below: a *missing* field takes the default documented on it;
an *empty* list or mapping means "none". A stage written in a policy replaces that stage's
built-in default as a whole; its own missing fields take the field defaults, except
`detectors`, which falls back to the stage's built-in list.

The action for a finding is the first that applies of: `actions[type]`,
`detector_actions[detector]`, `default_action`. A finding below its score threshold
(`thresholds[type]`, else the type's built-in threshold in `BUILT_IN_THRESHOLDS`, else
`min_score`) is dropped before any of that.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from guards.kinds import Action, Operator, Stage
from guards.rules import InjectionRule, RecognizerSpec

__all__ = [
    "BUILT_IN_THRESHOLDS",
    "DEFAULT_DETECTORS",
    "DETECTOR_NAMES",
    "NemoConfig",
    "ScreeningConfig",
    "StageConfig",
]

DEFAULT_DETECTORS: dict[Stage, tuple[str, ...]] = {
    Stage.INPUT: ("pii", "secrets", "injection", "injection_classifier"),
    Stage.OUTPUT: ("pii", "secrets"),
    Stage.CODE: ("secrets", "nemo"),
}
_DETECTOR_ACTIONS = {
    "pii": Action.REDACT,
    "secrets": Action.BLOCK,
    "injection": Action.BLOCK,
    "injection_classifier": Action.BLOCK,
    "nemo": Action.BLOCK,
    "detect_secrets": Action.BLOCK,
}
# Types whose scores are not on the scale `min_score` was set for. The injection classifier's
# probability was calibrated on the dev split of the evaluation data and on the project's own
# validation set (`make eval`): at 0.75, with the rules, 94 % of the English and German dev
# attacks and 80 % / 83 % of the validation set's were blocked, 1 of 90 NotInject look-alikes
# (dev), none of deepset's benign prompts and 1.8 % of the benign corpus were; at 0.8 the
# validation set lost 6 points of recall, at 0.7 the benign corpus rose to 2.3 %.
BUILT_IN_THRESHOLDS = {"LIKELY_INJECTION": 0.75}
# The names a policy may use; `guards.registry` maps each to its class (a test holds them equal).
DETECTOR_NAMES = frozenset(_DETECTOR_ACTIONS)
_ENTITY_KEY = r"^[A-Z][A-Z0-9_]{1,63}$"


def _known_detectors(names: list[str]) -> list[str]:
    unknown = [name for name in names if name not in DETECTOR_NAMES]
    if unknown:
        raise ValueError(f"unknown detector(s) {unknown}; known: {sorted(DETECTOR_NAMES)}")
    if len(set(names)) != len(names):
        raise ValueError("a detector is listed twice")
    return names


def _entity_keys(mapping: dict[str, Any]) -> dict[str, Any]:
    import re

    bad = [key for key in mapping if not re.match(_ENTITY_KEY, key)]
    if bad:
        raise ValueError(f"finding types are UPPER_SNAKE_CASE; got {bad}")
    return mapping


class StageConfig(BaseModel):
    """What one stage (`input`, `output`, `code`) runs and does about what it finds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detectors: list[str] | None = Field(
        None,
        description="Detectors to run, by registered name (pii, secrets, injection, "
        "injection_classifier, nemo, detect_secrets). Missing: the stage's built-in list "
        "(input: pii, secrets, injection, injection_classifier; "
        "output: pii, secrets; code: secrets, nemo). Empty: run none, so every text is allowed.",
    )
    entities: list[str] | None = Field(
        None,
        description="Finding types to report. Missing: every type the detectors report by "
        "default. Empty: none. Types outside a detector's defaults (e.g. URL, DATE_TIME for "
        "pii) are only reported when listed here.",
    )
    actions: dict[str, Action] = Field(
        default_factory=dict,
        description="Action per finding type (allow, redact, block). Missing or empty: every "
        "type falls back to `detector_actions`.",
    )
    detector_actions: dict[str, Action] = Field(
        default_factory=lambda: dict(_DETECTOR_ACTIONS),
        description="Action per detector for types not in `actions`. Missing: pii redact, "
        "secrets/injection/injection_classifier/nemo/detect_secrets block. A detector not "
        "listed falls back to `default_action`.",
    )
    default_action: Action = Field(
        Action.BLOCK, description="Action when neither `actions` nor `detector_actions` decide."
    )
    min_score: float = Field(
        0.5, ge=0, le=1, description="Findings scoring below this are dropped."
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Minimum score per finding type, overriding `min_score` for that type. "
        "Missing types take their built-in threshold if they have one (LIKELY_INJECTION, the "
        "injection classifier's probability: 0.75), else `min_score`.",
    )
    operator: Operator = Field(
        Operator.REPLACE,
        description="How redacted findings are replaced: `replace` with `<TYPE>`, `mask` with "
        "`*`, or `hash` (a per-tenant keyed SHA-256 pseudonym, stable within the tenant).",
    )
    operators: dict[str, Operator] = Field(
        default_factory=dict, description="Operator per finding type, overriding `operator`."
    )
    max_length: int = Field(
        100_000,
        gt=0,
        le=10_000_000,
        description="Longest text screened, in code points; a longer one is blocked unread "
        "(finding TEXT_TOO_LONG).",
    )

    @field_validator("detectors")
    @classmethod
    def _detectors_known(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _known_detectors(value)

    @field_validator("detector_actions")
    @classmethod
    def _detector_action_keys(cls, value: dict[str, Action]) -> dict[str, Action]:
        _known_detectors(list(value))
        return value

    @field_validator("actions", "thresholds", "operators")
    @classmethod
    def _type_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _entity_keys(value)

    @field_validator("thresholds")
    @classmethod
    def _threshold_range(cls, value: dict[str, float]) -> dict[str, float]:
        if any(not 0 <= score <= 1 for score in value.values()):
            raise ValueError("thresholds are scores between 0 and 1")
        return value

    def detectors_for(self, stage: Stage) -> list[str]:
        """The detectors this stage runs: its own list, or the stage's built-in one."""
        return list(DEFAULT_DETECTORS[stage]) if self.detectors is None else list(self.detectors)

    def action_for(self, detector: str, finding_type: str) -> Action:
        """The action for one finding, per the precedence in the module docstring."""
        if finding_type in self.actions:
            return self.actions[finding_type]
        return self.detector_actions.get(detector, self.default_action)

    def threshold_for(self, finding_type: str) -> float:
        """Minimum score a finding of this type needs to be reported."""
        default = BUILT_IN_THRESHOLDS.get(finding_type, self.min_score)
        return self.thresholds.get(finding_type, default)

    def operator_for(self, finding_type: str) -> Operator:
        """The operator that replaces a finding of this type."""
        return self.operators.get(finding_type, self.operator)


class NemoConfig(BaseModel):
    """NeMo Guardrails rails for the `nemo` detector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    injections: list[str] = Field(
        default_factory=lambda: ["code", "sqli", "template", "xss"],
        description="NeMo's YARA rule sets to run: code, sqli, template, xss. Missing: all "
        "four. Empty: no YARA rail. They are substring rules ('important' contains 'import'), "
        "so the `nemo` detector is off on prose stages by default.",
    )
    self_check_input: bool = Field(
        False,
        description="On the `input` stage, where `nemo` is listed among its detectors, also run "
        "NeMo's LLM `self check input` rail (finding LLM_SELF_CHECK). Needs the operator's "
        "`nemo_llm` endpoint: without one the detector fails closed (verdict block).",
    )

    @field_validator("injections")
    @classmethod
    def _known_sets(cls, value: list[str]) -> list[str]:
        bad = sorted(set(value) - {"code", "sqli", "template", "xss"})
        if bad:
            raise ValueError(f"unknown YARA rule set(s) {bad}")
        return value


def _default_code() -> StageConfig:
    # NeMo's code and SQL rule sets flag ordinary programs ("import os", "ADD" next to "--"):
    # on the benign corpus they fired on 1 in 5 standard-library chunks. Code runs in a
    # sandbox anyway, so they are recorded, not blocking; template and XSS rules block.
    return StageConfig(actions={"CODE_INJECTION": Action.ALLOW, "SQL_INJECTION": Action.ALLOW})


def _default_output() -> StageConfig:
    actions = dict(_DETECTOR_ACTIONS) | {"secrets": Action.REDACT}
    return StageConfig(detector_actions=actions)


class ScreeningConfig(BaseModel):
    """The `screening` section of a policy: one `StageConfig` per stage plus extra rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: StageConfig = Field(
        default_factory=StageConfig,
        description="Text going into a model. Missing: pii redacted, secrets, injection rules "
        "and the injection classifier blocked.",
    )
    output: StageConfig = Field(
        default_factory=_default_output,
        description="Text leaving the system (model or sandbox output). Missing: pii and "
        "secrets redacted.",
    )
    code: StageConfig = Field(
        default_factory=_default_code,
        description="Code about to run in a sandbox. Missing: secrets blocked; NeMo YARA "
        "template and XSS injection blocked, code and SQL injection recorded (`allow`: "
        "their substring rules match most ordinary programs).",
    )
    secret_patterns: list[RecognizerSpec] = Field(
        default_factory=list,
        description="Secret recognizers added to the shipped ones, in Presidio's YAML "
        "recognizer shape. Missing or empty: the shipped ones only.",
    )
    injection_rules: list[InjectionRule] = Field(
        default_factory=list,
        description="Injection rules added to the shipped ones. Missing or empty: the shipped "
        "ones only.",
    )
    nemo: NemoConfig = Field(default_factory=NemoConfig, description="NeMo Guardrails rails.")

    def for_stage(self, stage: Stage) -> StageConfig:
        """The configuration of one stage."""
        return {Stage.INPUT: self.input, Stage.OUTPUT: self.output, Stage.CODE: self.code}[stage]
