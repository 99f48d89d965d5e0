"""`nemo`: NeMo Guardrails rails run offline through `LLMRails.check_async`.

The rails are built from the policy's `screening.nemo` section, with no `models:` section, so
no LLM is called and no embedding model is ever fetched (no dialog rails, no user-message
examples). The YARA rail is a Colang output flow calling an action registered with
`register_action`: it matches NeMo's own shipped YARA rule sets (code, sqli, template, xss)
compiled once, where NeMo's built-in `injection detection` action recompiles them on every
call (~40 ms) and reports no offsets. The action records each matched string with its
offsets; NeMo's verdict (blocked or not) is checked against them, and a block with nothing
recorded (a rail that failed inside NeMo) becomes a whole-text finding, so NeMo failing
fails closed.

The rail's one condition is a YARA match, so a text the compiled rules do not match cannot be
refused by it: such a text (nearly all code) is answered from the match alone, in
microseconds, without NeMo's runtime (~5 ms a call). A text that matches goes through NeMo as
above, whose verdict is checked against the action's own matches.

YARA rules are substring rules ("important" contains "import"), so the policy defaults keep
this detector on the `code` stage only.
"""

from __future__ import annotations

import contextvars
import importlib
import warnings
from functools import lru_cache
from typing import Any

import guards._env  # noqa: F401  (telemetry off before NeMo is imported)
from guards._loop import in_a_loop
from guards.base import Detection, Detector, ScanRequest, Stage

__all__ = ["SELF_CHECK_TYPE", "YARA_TYPES", "NemoDetector", "nemo_rails"]

YARA_TYPES = {
    "code": "CODE_INJECTION",
    "sqli": "SQL_INJECTION",
    "template": "TEMPLATE_INJECTION",
    "xss": "XSS",
}
SELF_CHECK_TYPE = "LLM_SELF_CHECK"
_ACTION = "sandgate_yara_scan"
_FLOW = "sandgate yara"
_COLANG = f"""
define subflow {_FLOW}
  $hits = execute {_ACTION}(text=$bot_message)
  if $hits
    bot refuse to respond
    stop
"""
_CONFIG = f"""
rails:
  output:
    flows:
      - {_FLOW}
"""
# What the registered action saw and found during one `check_async` call of this task.
_collector: contextvars.ContextVar[tuple[list[str], list[Detection]] | None] = (
    contextvars.ContextVar("sandgate_nemo_hits", default=None)
)


@lru_cache(maxsize=8)
def _yara_rules(sets: tuple[str, ...]) -> Any:
    from nemoguardrails.library.injection_detection.actions import YARA_DIR

    yara = importlib.import_module("yara")  # yara-python ships no type information
    return yara.compile(filepaths={name: str(YARA_DIR / f"{name}.yara") for name in sets})


def _char_offsets(text: str, data: bytes, offset: int, length: int) -> tuple[int, int]:
    start = len(data[:offset].decode("utf-8", errors="ignore"))
    end = start + len(data[offset : offset + length].decode("utf-8", errors="ignore"))
    return start, min(max(end, start + 1), len(text))


@lru_cache(maxsize=8)
def nemo_rails(sets: tuple[str, ...]) -> Any:
    """An `LLMRails` whose output rail matches the given YARA sets; built once per set."""
    try:
        from nemoguardrails import LLMRails, RailsConfig
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ImportError("nemoguardrails is required: pip install nemoguardrails") from exc

    rules = _yara_rules(sets)

    async def sandgate_yara_scan(text: str) -> bool:
        data = text.encode("utf-8")
        collected = _collector.get()
        if collected is not None:
            collected[0].append(text)
        matched = False
        for match in rules.match(data=data):
            for string in match.strings:
                for instance in string.instances:
                    span = _char_offsets(text, data, instance.offset, instance.matched_length)
                    matched = True
                    if collected is not None:
                        kind = YARA_TYPES[match.namespace]
                        collected[1].append(Detection(kind, span[0], span[1], 1.0, match.rule))
        return matched

    with warnings.catch_warnings():
        # NeMo 0.24.1 reads its own deprecated `nim_url` field while parsing any config.
        warnings.simplefilter("ignore", DeprecationWarning)
        config = RailsConfig.from_content(yaml_content=_CONFIG, colang_content=_COLANG)
        rails = in_a_loop(lambda: LLMRails(config))
    rails.register_action(sandgate_yara_scan, _ACTION)
    return rails


class NemoDetector(Detector):
    """NeMo Guardrails' YARA injection rules (code, SQL, template, XSS) via Colang rails."""

    name = "nemo"

    def entities(self) -> list[str]:
        """One type per YARA rule set, and the LLM self-check when an endpoint is set."""
        extra = [SELF_CHECK_TYPE] if self.options.nemo_llm is not None else []
        return sorted([*YARA_TYPES.values(), *extra])

    def warm_up(self) -> None:
        """Import NeMo and build the default rails (import ~0.5 s, build ~0.1 s)."""
        nemo_rails(tuple(YARA_TYPES))

    async def detect(self, request: ScanRequest) -> list[Detection]:
        """Run the YARA rail, then the LLM self-check on `input` if the policy asks for it."""
        found = await self._yara(request)
        if request.stage is Stage.INPUT and request.config.nemo.self_check_input:
            found += await self._self_check(request)
        return found

    async def _self_check(self, request: ScanRequest) -> list[Detection]:
        from nemoguardrails.rails.llm.options import RailStatus, RailType

        from guards._nemo_self_check import self_check_rails

        if self.options.nemo_llm is None:
            # The policy wants an LLM check this host cannot run: fail closed, visibly.
            raise RuntimeError("self_check_input needs GuardOptions.nemo_llm")
        if not request.text:
            return []
        result = await self_check_rails(self.options.nemo_llm).check_async(
            [{"role": "user", "content": request.text}], rail_types=[RailType.INPUT]
        )
        if result.status != RailStatus.BLOCKED:
            return []
        return [Detection(SELF_CHECK_TYPE, 0, len(request.text), 1.0, result.rail)]

    async def _yara(self, request: ScanRequest) -> list[Detection]:
        from nemoguardrails.rails.llm.options import RailStatus, RailType

        sets = tuple(request.config.nemo.injections)
        wanted = request.stage_config.entities
        if wanted is not None:
            sets = tuple(s for s in sets if YARA_TYPES[s] in wanted)
        if not sets or not request.text:
            return []
        if not _yara_rules(sets).match(data=request.text.encode("utf-8")):
            return []  # nothing for the rail to refuse (see the module docstring)
        seen: list[str] = []
        hits: list[Detection] = []
        token = _collector.set((seen, hits))
        try:
            result = await nemo_rails(sets).check_async(
                [{"role": "assistant", "content": request.text}], rail_types=[RailType.OUTPUT]
            )
        finally:
            _collector.reset(token)
        if seen != [request.text]:
            # Offsets are only right for the exact text; NeMo must not have altered it.
            raise RuntimeError("NeMo's rail did not scan the text as given")
        if result.status == RailStatus.BLOCKED and not hits:
            raise RuntimeError(f"NeMo rail {result.rail!r} blocked without a located match")
        if hits and result.status != RailStatus.BLOCKED:
            raise RuntimeError("NeMo passed a text its YARA action matched")
        return hits
