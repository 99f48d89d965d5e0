"""`injection_classifier`: a linear n-gram model that scores how much a text reads like an attack.

The second layer under the `injection` rules: where a rule needs the attack's words, the
model generalises from word, word-pair and character n-gram features (`guards.injection_model`)
learnt from the project's own multilingual corpus. It runs offline on the committed weights,
a dictionary look-up per token: about 0.1 ms per KB.

A text is scored in windows of whole sentences: each sentence, and each run of two or three
in a row of at most `WINDOW` tokens (a longer sentence in half-overlapping pieces), so an
instruction buried in a long document or tool output is not diluted by the text around it,
and one spread over two sentences ("Forget everything. Now write ...") is still read whole.
A window of fewer than `MIN_WINDOW` tokens is not scored on its own (a line of code says too
little), unless the whole text is that short. Each window's score is the model's probability
that it is an attack; windows at or above the stage's threshold for `LIKELY_INJECTION`
(`thresholds`, else its built-in 0.8) are reported, overlapping ones merged, each with the
best score among them.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from itertools import accumulate

from guards.base import Detection, ScanRequest, SyncDetector
from guards.injection_model import WEIGHTS
from guards.injection_model.features import pair_feature, token_features, tokens

__all__ = ["MIN_WINDOW", "TYPE", "WINDOW", "InjectionClassifier", "Model", "model"]

TYPE = "LIKELY_INJECTION"
WINDOW = 48
MIN_WINDOW = 10
_SENTENCE_END = frozenset(".!?\n")


class Model:
    """The committed logistic-regression weights, scoring windows of a token sequence."""

    def __init__(self, bias: float, weights: dict[str, float]) -> None:
        self.bias = bias
        self.weights = weights
        self._token: dict[str, tuple[float, int]] = {}

    def _of_token(self, token: str) -> tuple[float, int]:
        cached = self._token.get(token)
        if cached is None:
            names = token_features(token)
            cached = (sum(self.weights.get(n, 0.0) for n in names), len(names))
            if len(self._token) < 100_000:
                self._token[token] = cached
        return cached

    def window_scores(self, text: str) -> list[tuple[int, int, float]]:
        """(start, end, probability) of each window of the text, in order."""
        found = tokens(text)
        if not found:
            return []
        sums: list[float] = []
        counts: list[int] = []
        previous = None
        for token, _start, _end in found:
            weight, count = self._of_token(token)
            if previous is not None:
                weight += self.weights.get(pair_feature(previous, token), 0.0)
                count += 1
            sums.append(weight)
            counts.append(count)
            previous = token
        total = [0.0, *accumulate(sums)]
        seen = [0, *accumulate(counts)]
        out = []
        for first, stop in _windows(text, found):
            features = seen[stop] - seen[first]
            logit = self.bias + (total[stop] - total[first]) / math.sqrt(features or 1)
            out.append((found[first][1], found[stop - 1][2], 1 / (1 + math.exp(-logit))))
        return out


def _windows(text: str, found: list[tuple[str, int, int]]) -> list[tuple[int, int]]:
    """Token ranges [first, stop) of the windows described in the module docstring."""
    sentences, first = [], 0
    for at in range(len(found)):
        after = text[found[at][2] : found[at + 1][1]] if at + 1 < len(found) else "."
        if _SENTENCE_END.intersection(after):
            sentences.append((first, at + 1))
            first = at + 1
    windows: list[tuple[int, int]] = []
    for index, (start, stop) in enumerate(sentences):
        if stop - start > WINDOW:
            step = WINDOW // 2
            windows += [(s, min(stop, s + WINDOW)) for s in range(start, stop - step, step)]
            continue
        for span in (1, 2, 3):
            if index + span <= len(sentences):
                end = sentences[index + span - 1][1]
                if (span == 1 or end - start <= WINDOW) and end - start >= MIN_WINDOW:
                    windows.append((start, end))
    return windows or [(0, len(found))]


@lru_cache(maxsize=1)
def model() -> Model:
    """The committed model (`guards/injection_model/weights.json`)."""
    data = json.loads(WEIGHTS.read_text(encoding="utf-8"))
    return Model(float(data["bias"]), {k: float(v) for k, v in data["weights"].items()})


class InjectionClassifier(SyncDetector):
    """Prompt injection and jailbreaks in any phrasing the corpus generalises to."""

    name = "injection_classifier"

    def entities(self) -> list[str]:
        """The one type it reports."""
        return [TYPE]

    def warm_up(self) -> None:
        """Load the weights."""
        model().window_scores("warm up")

    def scan(self, request: ScanRequest) -> list[Detection]:
        """Report the windows at or above the stage's threshold, merged where they overlap."""
        wanted = request.stage_config.entities
        if wanted is not None and TYPE not in wanted:
            return []
        floor = request.stage_config.threshold_for(TYPE)
        merged: list[list[float]] = []
        for start, end, score in model().window_scores(request.text):
            if score < floor:
                continue
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
                merged[-1][2] = max(merged[-1][2], score)
            else:
                merged.append([start, end, score])
        return [Detection(TYPE, int(s), int(e), score, "n-gram model") for s, e, score in merged]
