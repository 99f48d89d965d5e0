"""`pii`: Presidio's recognizers (and `_pii_recognizers`) on a model-free or configured engine."""

from __future__ import annotations

from typing import Any

from guards.base import Detection, ScanRequest, SyncDetector
from guards.normalise import Normalised
from guards.presidio_engines import NER_ENTITIES, detections, pii_analyzer

__all__ = ["NON_PERSONAL", "PATTERN_ENTITIES", "PiiDetector"]

# Reported by default without a model. Left out, but selectable through a stage's
# `entities`: URL and DATE_TIME (found in most logs and prose), UUID and MAC_ADDRESS
# (identifiers, not personal data), UK_NHS (any 10-digit number passing mod 11, e.g. a
# Unix time, 1 in 11 of them), MEDICAL_LICENSE (its DEA pattern matches inside hashes and
# UUIDs), US_DRIVER_LICENSE (its weak patterns match ordinary words near "license"), and the
# country-specific ID recognizers of other countries.
# Addresses that identify no one (loopback, unspecified, broadcast) are never reported.
NON_PERSONAL = ["::1", "::", "127.0.0.1", "0.0.0.0", "255.255.255.255"]
PATTERN_ENTITIES = (
    "ABA_ROUTING_NUMBER",
    "BANK_ACCOUNT",
    "CREDIT_CARD",
    "CRYPTO",
    "EMAIL_ADDRESS",
    "IBAN_CODE",
    "IP_ADDRESS",
    "PASSPORT",
    "PHONE_NUMBER",
    "UK_SORT_CODE",
    "US_BANK_NUMBER",
    "US_ITIN",
    "US_PASSPORT",
    "US_SSN",
)


class PiiDetector(SyncDetector):
    """Personal data: cards, e-mail, phone, IBAN, SSN, IP...; names etc. only with a model."""

    name = "pii"

    def _analyzer(self) -> Any:
        path = self.options.spacy_model_path
        return pii_analyzer(None if path is None else str(path))

    def entities(self) -> list[str]:
        """Pattern entities, plus the NER ones when the configured model has a NER pipe."""
        found = list(PATTERN_ENTITIES)
        if self.options.spacy_model_path is not None and self._has_ner():
            found.extend(NER_ENTITIES)
        return found

    def supported(self) -> list[str]:
        """Every type the analyzer could report if a stage's `entities` asked for it."""
        return sorted(self._analyzer().get_supported_entities(language="en"))

    def _has_ner(self) -> bool:
        engine = self._analyzer().nlp_engine
        pipeline = getattr(engine, "nlp", None) or {}
        return "en" in pipeline and "ner" in pipeline["en"].pipe_names

    def warm_up(self) -> None:
        """Build the analyzer and run it once (first calls compile the regexes)."""
        sample = "card 4111 1111 1111 1111, mail a@example.com, phone +1 415 555 0100, 10.0.0.1"
        self._analyzer().analyze(sample, language="en", entities=self.entities())

    def scan(self, request: ScanRequest) -> list[Detection]:
        """Run the analyzer on the requested entity types."""
        analyzer = self._analyzer()
        wanted = request.stage_config.entities
        if wanted is None:
            entities = self.entities()
        else:
            supported = set(analyzer.get_supported_entities(language="en"))
            entities = [entity for entity in wanted if entity in supported]
        if not entities or not request.text:
            return []
        floor = min([request.stage_config.min_score, *request.stage_config.thresholds.values()])

        def run(text: str) -> list[Any]:
            return list(
                analyzer.analyze(
                    text,
                    language="en",
                    entities=entities,
                    score_threshold=floor,
                    allow_list=NON_PERSONAL,
                )
            )

        results = run(request.text)
        norm = request.norm
        if norm is not None and norm.may_join:
            results += _as_sent(run(norm.original), results, norm)
        return detections(results)


def _as_sent(raw: list[Any], folded: list[Any], norm: Normalised) -> list[Any]:
    """Matches of the text as sent that folding lost, moved onto the normalised text.

    Folding a separator ("1663\u00a03758-073021-57362" -> "1663 3758-...") can let a
    pattern run on into a neighbour and miss what the raw text plainly held.
    """
    kept = []
    for result in raw:
        span = norm.from_original(result.start, result.end)
        if span is None:
            continue
        start, end = span
        if any(
            f.entity_type == result.entity_type and f.start < end and start < f.end for f in folded
        ):
            continue
        result.start, result.end = start, end
        kept.append(result)
    return kept
