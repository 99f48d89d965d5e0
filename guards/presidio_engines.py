"""Cached factories for Presidio's engines; nothing is loaded until first asked for.

No spaCy model is downloadable here (the official ones come from GitHub releases; the
PyPI copies are unofficial re-uploads), so by default Presidio runs on an engine that loads
no model: `lemma` (a blank English tokenizer whose lemmas are the lower-cased tokens, which
restores Presidio's context-word boosts: "phone: 555..." scores 0.75 instead of 0.4) or
Presidio's own `no_op`. An operator can point `GuardOptions.spacy_model_path` at an
official pipeline on disk, which adds the NER entities (PERSON, LOCATION, ...).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import guards._env  # noqa: F401  (offline settings before Presidio imports tldextract)
from guards.rules import RecognizerSpec

__all__ = ["NER_ENTITIES", "anonymizer", "nlp_engine", "pattern_analyzer", "pii_analyzer"]

NER_ENTITIES = ("PERSON", "LOCATION", "ORGANIZATION", "NRP")
_LEMMA_COMPONENT = "sandgate_lower_lemma"


def _presidio() -> Any:
    try:
        import presidio_analyzer
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ImportError("presidio-analyzer is required: pip install presidio-analyzer") from exc
    return presidio_analyzer


@lru_cache(maxsize=4)
def nlp_engine(kind: str, model_path: str | None) -> Any:
    """The NLP engine: a spaCy pipeline at `model_path`, else `lemma` or `no_op`."""
    from presidio_analyzer.nlp_engine import NlpEngineProvider, SpacyNlpEngine

    if model_path is not None:
        if not (Path(model_path) / "meta.json").is_file():
            # Presidio would try `spacy download` for a name it cannot find.
            raise FileNotFoundError(f"no spaCy pipeline at {model_path}")
        engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model_path}])
        engine.load()
        return engine
    if kind == "lemma":
        return _lemma_engine()
    conf = {"nlp_engine_name": "no_op", "models": [{"lang_code": "en", "model_name": "no_op"}]}
    return NlpEngineProvider(nlp_configuration=conf).create_engine()


def _lemma_engine() -> Any:
    import spacy
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from spacy.language import Language
    from spacy.tokens import Doc

    if _LEMMA_COMPONENT not in Language.factories:

        @Language.component(_LEMMA_COMPONENT)
        def lower_lemma(doc: Doc) -> Doc:
            for token in doc:
                token.lemma_ = token.lower_
            return doc

    class LemmaNlpEngine(SpacyNlpEngine):
        """A blank English tokenizer whose lemmas are lower-cased tokens."""

        def load(self) -> None:
            pipeline = spacy.blank("en")
            pipeline.add_pipe(_LEMMA_COMPONENT)
            self.nlp = {"en": pipeline}  # type: ignore[assignment]

    engine = LemmaNlpEngine(models=[{"lang_code": "en", "model_name": "blank"}])
    engine.load()
    return engine


@lru_cache(maxsize=4)
def pii_analyzer(kind: str, model_path: str | None) -> Any:
    """An `AnalyzerEngine` with Presidio's predefined recognizers on the chosen NLP engine."""
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

    from guards._pii_recognizers import card_recognizer, context_phone_recognizer

    presidio = _presidio()
    engine = nlp_engine(kind, model_path)
    registry = presidio.RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=engine)
    registry.add_recognizer(card_recognizer())
    registry.add_recognizer(context_phone_recognizer())
    _unstop_context_words(engine, registry)
    # Two words after a match count as context too: "416 60 039 office", "555-0100 (mobile)".
    enhancer = LemmaContextAwareEnhancer(context_prefix_count=5, context_suffix_count=2)
    return presidio.AnalyzerEngine(
        registry=registry,
        nlp_engine=engine,
        supported_languages=["en"],
        context_aware_enhancer=enhancer,
    )


def _unstop_context_words(engine: Any, registry: Any) -> None:
    """Let context words that spaCy lists as stop words ("call") count as context again.

    Presidio matches context only among a text's non-stop-word tokens, so a stop word in a
    recognizer's context list can never raise a score.
    """
    pipeline = getattr(engine, "nlp", None)
    if not isinstance(pipeline, dict) or "en" not in pipeline:
        return
    vocab = pipeline["en"].vocab
    for recognizer in registry.recognizers:
        for word in getattr(recognizer, "context", None) or []:
            for token in str(word).split():
                if vocab[token].is_stop:
                    vocab[token].is_stop = False
                    vocab[token.capitalize()].is_stop = False
                    vocab[token.upper()].is_stop = False


def pattern_analyzer(specs: tuple[RecognizerSpec, ...], flags: int) -> Any:
    """An `AnalyzerEngine` holding only the given pattern recognizers, on the `no_op` engine.

    `flags` are the regex flags of every pattern (Presidio's `analyze(regex_flags=)` only
    applies to allow lists).
    """
    presidio = _presidio()
    registry = presidio.RecognizerRegistry(supported_languages=["en"])
    for spec in specs:
        registry.add_recognizer(
            presidio.PatternRecognizer(
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
        registry=registry, nlp_engine=nlp_engine("no_op", None), supported_languages=["en"]
    )


@lru_cache(maxsize=1)
def anonymizer() -> Any:
    """Presidio's `AnonymizerEngine` (stateless, shared)."""
    from presidio_anonymizer import AnonymizerEngine

    return AnonymizerEngine()  # type: ignore[no-untyped-call]
