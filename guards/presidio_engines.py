"""Cached factories for Presidio's engines; nothing is loaded until first asked for.

No spaCy model is downloadable here (the official ones come from GitHub releases; the
PyPI copies are unofficial re-uploads), so by default Presidio runs on its `no_op` NLP
engine, which loads no model, and context words are read from the raw text by
`guards._context` (a blank spaCy pipeline with lemma = lower-cased token gave the same
boosts for ~5 ms per KB, most of the detector's time). An operator can point
`GuardOptions.spacy_model_path` at an official pipeline on disk, which adds the NER
entities (PERSON, LOCATION, ORGANIZATION, NRP).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import guards._env  # noqa: F401  (offline settings before Presidio imports tldextract)
from guards._overlap import drop_shadowed
from guards.base import Detection
from guards.rules import RecognizerSpec

__all__ = [
    "NER_ENTITIES",
    "anonymizer",
    "detections",
    "nlp_engine",
    "pattern_analyzer",
    "pii_analyzer",
]

NER_ENTITIES = ("PERSON", "LOCATION", "ORGANIZATION", "NRP")


def _presidio() -> Any:
    try:
        import presidio_analyzer
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ImportError("presidio-analyzer is required: pip install presidio-analyzer") from exc
    return presidio_analyzer


@lru_cache(maxsize=4)
def nlp_engine(model_path: str | None) -> Any:
    """The NLP engine: the spaCy pipeline at `model_path`, else Presidio's `no_op`."""
    from presidio_analyzer.nlp_engine import NlpEngineProvider, SpacyNlpEngine

    if model_path is not None:
        if not (Path(model_path) / "meta.json").is_file():
            # Presidio would try `spacy download` for a name it cannot find.
            raise FileNotFoundError(f"no spaCy pipeline at {model_path}")
        engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model_path}])
        engine.load()
        return engine
    conf = {"nlp_engine_name": "no_op", "models": [{"lang_code": "en", "model_name": "no_op"}]}
    return NlpEngineProvider(nlp_configuration=conf).create_engine()


@lru_cache(maxsize=4)
def pii_analyzer(model_path: str | None) -> Any:
    """An `AnalyzerEngine` with Presidio's predefined recognizers on the chosen NLP engine."""
    from guards._context import WindowContextEnhancer
    from guards._id_recognizers import id_recognizers
    from guards._pii_recognizers import card_recognizer, context_phone_recognizer

    presidio = _presidio()
    engine = nlp_engine(model_path)
    registry = presidio.RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=engine)
    registry.remove_recognizer("PhoneRecognizer")  # replaced, see guards._pii_recognizers
    registry.remove_recognizer("IpRecognizer")  # replaced, see guards._id_recognizers
    registry.add_recognizer(card_recognizer())
    registry.add_recognizer(context_phone_recognizer())
    for recognizer in id_recognizers():
        registry.add_recognizer(recognizer)
    # Two words after a match count as context too: "416 60 039 office", "555-0100 (mobile)".
    enhancer = WindowContextEnhancer(prefix_words=5, suffix_words=2)
    return presidio.AnalyzerEngine(
        registry=registry,
        nlp_engine=engine,
        supported_languages=["en"],
        context_aware_enhancer=enhancer,
    )


def pattern_analyzer(specs: tuple[RecognizerSpec, ...], flags: int) -> Any:
    """An `AnalyzerEngine` holding only the given pattern recognizers, on the `no_op` engine.

    `flags` are the regex flags of every pattern (Presidio's `analyze(regex_flags=)` only
    applies to allow lists).
    """
    presidio = _presidio()
    from guards._group_recognizer import GroupPatternRecognizer

    registry = presidio.RecognizerRegistry(supported_languages=["en"])
    for spec in specs:
        registry.add_recognizer(
            GroupPatternRecognizer(
                supported_entity=spec.supported_entity,
                name=spec.name,
                supported_language=spec.supported_language,
                patterns=[presidio.Pattern(p.name, p.regex, p.score) for p in spec.patterns],
                context=spec.context or None,
                deny_list=spec.deny_list or None,
                global_regex_flags=flags,
            )
        )
    return presidio.AnalyzerEngine(
        registry=registry, nlp_engine=nlp_engine(None), supported_languages=["en"]
    )


@lru_cache(maxsize=1)
def anonymizer() -> Any:
    """Presidio's `AnonymizerEngine` (stateless, shared)."""
    from presidio_anonymizer import AnonymizerEngine

    return AnonymizerEngine()  # type: ignore[no-untyped-call]


def detections(results: list[Any]) -> list[Detection]:
    """Presidio's results as detections, less those a more specific finding shadows."""
    return drop_shadowed(
        [
            Detection(
                type=r.entity_type,
                start=r.start,
                end=r.end,
                score=float(r.score),
                rule=(r.recognition_metadata or {}).get("recognizer_name"),
            )
            for r in results
        ]
    )
