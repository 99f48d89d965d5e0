"""`nemo`: NeMo Guardrails' YARA rails through `check_async`, on the code stage."""

from __future__ import annotations

import asyncio

import pytest

from guards import Screener, ScreeningConfig, ScreenResult, Stage, StageConfig
from guards.config import NemoConfig
from guards.nemo import YARA_TYPES, nemo_rails
from tests.guards._helpers import spans
from tests.guards.conftest import Screen

FOUND = [
    ("import os\nos.system('rm -rf /tmp/x')", "CODE_INJECTION", "allow"),
    (
        'q = "SELECT * FROM users WHERE id = 1 OR 1=1; DROP TABLE users; --"',
        "SQL_INJECTION",
        "allow",
    ),
    ("template = 'Hello {{ config.__class__ }}'", "TEMPLATE_INJECTION", "block"),
    ("html = '<script>alert(document.cookie)</script>'", "XSS", "block"),
]


@pytest.mark.parametrize(("code", "kind", "verdict"), FOUND)
def test_when_code_matches_a_yara_rule_then_nemo_reports_a_located_finding(
    screen: Screen, code: str, kind: str, verdict: str
) -> None:
    result = screen(code, Stage.CODE)
    # By default code and SQL rules are recorded (`allow`), template and XSS rules block.
    assert result.verdict == verdict
    found = [f for f in result.findings if f.detector == "nemo" and f.type == kind]
    assert found, result.findings
    for finding in found:
        # The located span is real text of the code, not the whole input.
        assert 0 <= finding.start < finding.end <= len(code)
        assert code[finding.start : finding.end].strip()


def test_when_policy_blocks_code_injection_then_code_is_blocked(screen: Screen) -> None:
    config = ScreeningConfig(code=StageConfig(actions={"CODE_INJECTION": "block"}))
    assert screen("import subprocess", Stage.CODE, config).verdict == "block"


def test_when_code_is_harmless_then_nemo_finds_nothing(screen: Screen) -> None:
    assert screen("total = sum(x * x for x in range(10))\nprint(total)", Stage.CODE).findings == []


def test_when_code_matches_then_nemos_rails_judge_it_and_when_not_they_are_not_called(
    screen: Screen, monkeypatch: pytest.MonkeyPatch
) -> None:
    rails = nemo_rails(tuple(YARA_TYPES))
    judged: list[str] = []
    through = rails.check_async

    async def spy(messages: list[dict[str, str]], **kwargs: object) -> object:
        judged.append(messages[0]["content"])
        return await through(messages, **kwargs)

    monkeypatch.setattr(rails, "check_async", spy)
    assert screen("x += 1", Stage.CODE).findings == []
    assert screen("import subprocess", Stage.CODE).findings
    assert judged == ["import subprocess"]


def test_when_match_follows_emoji_then_byte_offsets_become_character_offsets(
    screen: Screen,
) -> None:
    code = "# 😀 café\nimport subprocess"
    result = screen(code, Stage.CODE)
    assert ("CODE_INJECTION", "import") in spans(result, code)


def test_when_prose_says_important_then_default_input_stage_does_not_run_nemo(
    screen: Screen,
) -> None:
    prose = "It is important to choose the most cost-effective option."
    assert screen(prose, Stage.INPUT).verdict == "allow"
    # The reason it is off there: on prose, YARA's substring rules misfire.
    config = ScreeningConfig(input=StageConfig(detectors=["nemo"]))
    assert screen(prose, Stage.INPUT, config).verdict == "block"


def test_when_policy_selects_rule_sets_then_only_those_run(screen: Screen) -> None:
    config = ScreeningConfig(nemo=NemoConfig(injections=["sqli"]))
    code = "import os\nq = 'SELECT * FROM t WHERE 1=1; DROP TABLE t'"
    kinds = {f.type for f in screen(code, Stage.CODE, config).findings if f.detector == "nemo"}
    assert kinds == {"SQL_INJECTION"}


def test_when_no_rule_set_is_selected_then_nemo_reports_nothing(screen: Screen) -> None:
    config = ScreeningConfig(nemo=NemoConfig(injections=[]))
    assert screen("import os", Stage.CODE, config).findings == []


def test_when_texts_are_screened_concurrently_then_each_gets_its_own_findings(
    screener: Screener,
) -> None:
    codes = [f"{' ' * i}x = {i}\nhtml = '<script>alert({i})</script>'" for i in range(8)]
    codes += [f"y = {i}" for i in range(8)]

    async def run_all() -> list[ScreenResult]:
        config = ScreeningConfig()
        return list(
            await asyncio.gather(
                *(screener.screen(c, Stage.CODE, config, tenant="t") for c in codes)
            )
        )

    for code, result in zip(codes, asyncio.run(run_all()), strict=True):
        if "script" in code:
            assert {code[f.start : f.end] for f in result.findings} == {
                code[code.index("<script>") : code.index("</script>") + 9]
            }
        else:
            assert result.findings == []
