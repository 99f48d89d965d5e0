"""The training corpus: every language's templates expanded with a fixed seed."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import regex
import yaml
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CORPUS_DIR", "LANGUAGES", "Sample", "corpus", "corpus_files"]

CORPUS_DIR = Path(__file__).with_name("corpus")
LANGUAGES = ("en", "de", "es", "fr", "pt", "it")
_SLOT = regex.compile(r"\{(\w+)\}")
_PER_TEMPLATE = 16
_SEED = 16


class _Pack(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slots: dict[str, list[str]] = Field(description="Values of each `{slot}`.")
    attack: list[str] = Field(description="Templates of attacks.")
    benign: list[str] = Field(description="Templates of benign texts, look-alikes included.")


@dataclass(frozen=True, slots=True)
class Sample:
    """One training text: its label (1 = attack) and language."""

    text: str
    label: int
    language: str


def corpus_files() -> list[Path]:
    """The corpus files, in training order."""
    return [CORPUS_DIR / f"{language}.yaml" for language in LANGUAGES]


def _fill(template: str, slots: dict[str, list[str]], rng: random.Random, depth: int = 0) -> str:
    def pick(match: regex.Match[str]) -> str:
        value = rng.choice(slots[match.group(1)])
        return _fill(value, slots, rng, depth + 1) if depth < 3 else value

    return _SLOT.sub(pick, template)


def _variant(text: str, rng: random.Random) -> str:
    """How people type: sometimes shouting, sometimes without the final punctuation."""
    roll = rng.random()
    if roll < 0.08:
        return text.upper()
    if roll < 0.2:
        return text.rstrip(".!?")
    return text


def corpus() -> list[Sample]:
    """Every sample, deduplicated, in a fixed order."""
    out: dict[str, Sample] = {}
    for language, path in zip(LANGUAGES, corpus_files(), strict=True):
        pack = _Pack.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        for label, templates in ((1, pack.attack), (0, pack.benign)):
            for index, template in enumerate(templates):
                rng = random.Random(f"{_SEED}:{language}:{label}:{index}")
                count = 1 if not _SLOT.search(template) else _PER_TEMPLATE
                for _ in range(count):
                    text = _variant(_fill(template, pack.slots, rng), rng)
                    out.setdefault(text, Sample(text, label, language))
    return list(out.values())
