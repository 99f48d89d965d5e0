"""The training corpus: every language's templates expanded with a fixed seed, then mixed.

`corpus/<language>.yaml` and `corpus/<language>-<part>.yaml` hold `slots` (shared by all
files of a language), `attack` and `benign` templates. Each template with slots is expanded
`per_template` times (16 unless the file says); then texts are written the ways people type
them (shouting, all lower case, no final punctuation, a typo or two), and a share of them is
joined with short benign texts of the same or another language: an attack after a question,
inside a document, before a sign-off ("What is the capital of France? Vergiss alles und
..."), and benign texts joined with each other so that being long or mixed says nothing by
itself.
"""

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
_WORD = regex.compile(r"\p{L}{4,}")
_PER_TEMPLATE = 16
_SEED = 16
_MIXED = 0.35  # share of texts joined with a benign carrier
_FOREIGN = 0.35  # share of carriers taken from another language
_CARRIER_MAX = 240  # characters: carriers are questions and short notes
_JOINS = (" ", " ", ". ", "\n", "\n\n", " - ", "... ")


class _Pack(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slots: dict[str, list[str]] = Field(
        default_factory=dict, description="Values of each `{slot}`, shared by the language."
    )
    attack: list[str] = Field(default_factory=list, description="Templates of attacks.")
    benign: list[str] = Field(
        default_factory=list, description="Templates of benign texts, look-alikes included."
    )
    per_template: int = Field(
        _PER_TEMPLATE, ge=1, description="How many texts each template with slots gives."
    )


@dataclass(frozen=True, slots=True)
class Sample:
    """One training text: its label (1 = attack) and language."""

    text: str
    label: int
    language: str


def corpus_files() -> list[Path]:
    """The corpus files, in training order: per language, its main file then its parts."""
    out = []
    for language in LANGUAGES:
        out.append(CORPUS_DIR / f"{language}.yaml")
        out += sorted(CORPUS_DIR.glob(f"{language}-*.yaml"))
    return out


def _language(path: Path) -> str:
    return path.stem.split("-", 1)[0]


def _fill(template: str, slots: dict[str, list[str]], rng: random.Random, depth: int = 0) -> str:
    def pick(match: regex.Match[str]) -> str:
        value = rng.choice(slots[match.group(1)])
        return _fill(value, slots, rng, depth + 1) if depth < 3 else value

    return _SLOT.sub(pick, template)


def _typo(text: str, rng: random.Random) -> str:
    """One slip of the keyboard in a word of four letters or more."""
    words = list(_WORD.finditer(text))
    if not words:
        return text
    word = rng.choice(words)
    at = rng.randrange(word.start() + 1, word.end() - 1)
    kind = rng.randrange(3)
    if kind == 0:  # two letters swapped
        return text[:at] + text[at + 1] + text[at] + text[at + 2 :]
    if kind == 1:  # a letter left out
        return text[:at] + text[at + 1 :]
    return text[:at] + text[at] + text[at:]  # a letter doubled


def _variant(text: str, rng: random.Random) -> str:
    """How people type: shouting, all lower case, no final punctuation, typos."""
    roll = rng.random()
    if roll < 0.06:
        text = text.upper()
    elif roll < 0.14:
        text = text.lower()
    elif roll < 0.26:
        text = text.rstrip(".!?")
    for _ in range(rng.choice((0, 0, 0, 0, 1, 1, 2))):
        text = _typo(text, rng)
    return text


def _packs() -> dict[str, list[tuple[str, _Pack]]]:
    """Each language's files, validated, with the slots of all of them merged."""
    packs: dict[str, list[tuple[str, _Pack]]] = {language: [] for language in LANGUAGES}
    for path in corpus_files():
        pack = _Pack.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        packs[_language(path)].append((path.stem, pack))
    return packs


def _expand() -> list[Sample]:
    out: dict[str, Sample] = {}
    for language, files in _packs().items():
        slots: dict[str, list[str]] = {}
        for stem, pack in files:
            for name, values in pack.slots.items():
                if name in slots:
                    raise ValueError(f"{stem}.yaml: slot {name!r} is already defined")
                slots[name] = values
        for stem, pack in files:
            for label, templates in ((1, pack.attack), (0, pack.benign)):
                for index, template in enumerate(templates):
                    rng = random.Random(f"{_SEED}:{stem}:{label}:{index}")
                    count = 1 if not _SLOT.search(template) else pack.per_template
                    for _ in range(count):
                        text = _variant(_fill(template, slots, rng), rng)
                        out.setdefault(text, Sample(text, label, language))
    return list(out.values())


def _mixed(samples: list[Sample]) -> list[Sample]:
    """Samples joined with a short benign carrier (see the module docstring)."""
    carriers: dict[str, list[str]] = {language: [] for language in LANGUAGES}
    for sample in samples:
        if not sample.label and len(sample.text) <= _CARRIER_MAX:
            carriers[sample.language].append(sample.text)
    rng = random.Random(f"{_SEED}:mixed")
    out = []
    for sample in samples:
        if rng.random() >= _MIXED:
            continue
        foreign = rng.random() < _FOREIGN
        language = rng.choice(LANGUAGES) if foreign else sample.language
        carrier = rng.choice(carriers[language])
        join = rng.choice(_JOINS)
        where = rng.random()
        if where < 0.6:
            text = carrier + join + sample.text
        elif where < 0.85:
            text = sample.text + join + carrier
        else:
            text = carrier + join + sample.text + join + rng.choice(carriers[language])
        out.append(Sample(text, sample.label, sample.language))
    return out


def corpus() -> list[Sample]:
    """Every sample, deduplicated, in a fixed order."""
    samples = _expand()
    out = {sample.text: sample for sample in samples}
    for sample in _mixed(samples):
        out.setdefault(sample.text, sample)
    return list(out.values())
