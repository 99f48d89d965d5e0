"""Context-word boosts read from the raw text, so Presidio needs no spaCy pipeline for them.

Presidio raises a result's score when one of its recognizer's context words ("phone",
"card", "ssn") is among the lemmas around it, which needs a tokenizer: a blank spaCy
pipeline with lemma = lower-cased token costs ~5 ms per KB on this project's machines, most
of the `pii` detector's time. This enhancer applies the same rule (+0.35, at least 0.4, at
most 1; substring match; five words before, two after) to lower-cased words read straight
from the text around the match, skipping spaCy's English stop words (as Presidio's keywords
do) unless they are context words themselves ("call" is a spaCy stop word).
"""

from __future__ import annotations

from typing import Any

import regex
from presidio_analyzer import RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from spacy.lang.en.stop_words import STOP_WORDS

__all__ = ["WindowContextEnhancer"]

_WORD = regex.compile(r"[^\W\d_]+")
_REACH = 100  # characters searched on each side; five words usually fit


class WindowContextEnhancer(ContextAwareEnhancer):
    """Presidio's lemma-context rule on the words of the raw text around each result."""

    def __init__(self, prefix_words: int = 5, suffix_words: int = 2) -> None:
        super().__init__(
            context_similarity_factor=0.35,
            min_score_with_context_similarity=0.4,
            context_prefix_count=prefix_words,
            context_suffix_count=suffix_words,
        )
        self._keys: dict[str, list[str]] = {}

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[Any],
        nlp_artifacts: Any,
        recognizers: list[Any],
        context: list[str] | None = None,
    ) -> list[Any]:
        """Boost each result whose recognizer's context words appear near it."""
        by_id = {recognizer.id: recognizer for recognizer in recognizers}
        extra = [word.lower() for word in context or []]
        for result in raw_results:
            meta = result.recognition_metadata or {}
            recognizer = by_id.get(meta.get(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY))
            if recognizer is None or not recognizer.context:
                continue
            if meta.get(RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY):
                continue
            if result.score >= self.MAX_SCORE:
                continue  # nothing to raise (validated cards, e-mail, IBAN)
            keys = self._keys.get(recognizer.id)
            if keys is None:
                keys = self._keys[recognizer.id] = [word.lower() for word in recognizer.context]
            nearby = self._nearby(text, result.start, result.end, keys) + extra
            found = next((key for key in keys if any(key in word for word in nearby)), None)
            if found is None:
                continue
            score = max(
                result.score + self.context_similarity_factor,
                self.min_score_with_context_similarity,
            )
            result.score = min(score, self.MAX_SCORE)
            if result.analysis_explanation is not None:
                result.analysis_explanation.set_supportive_context_word(found)
                result.analysis_explanation.set_improved_score(result.score)
        return raw_results

    def _nearby(self, text: str, start: int, end: int, keys: list[str]) -> list[str]:
        def wanted(word: str) -> bool:
            return word not in STOP_WORDS or word in keys

        before = [w.lower() for w in _WORD.findall(text[max(0, start - _REACH) : start])]
        after = [w.lower() for w in _WORD.findall(text[end : end + _REACH])]
        before = [w for w in before if wanted(w)][-self.context_prefix_count :]
        after = [w for w in after if wanted(w)][: self.context_suffix_count]
        return before + after
