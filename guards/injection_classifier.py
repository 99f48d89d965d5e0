"""`injection_classifier`: a linear n-gram model that scores how much a text reads like an attack.

The second layer under the `injection` rules: where a rule needs the attack's words, the
model generalises from word, word-pair and character n-gram features (`guards.injection_model`)
learnt from the project's own multilingual corpus. It runs offline on the committed weights,
a few dictionary look-ups per token: about 0.2 ms per KB.

A text is scored in windows of whole sentences: each sentence, and each run of two or three
in a row of at most `WINDOW` tokens (a longer sentence in half-overlapping pieces), so an
instruction buried in a long document or tool output is not diluted by the text around it,
and one spread over two sentences ("Forget everything. Now write ...") is still read whole.
A window of fewer than `MIN_WINDOW` tokens is not scored on its own (a line of code says too
little), unless the whole text is that short. Each window's score is the model's probability
that it is an attack; windows at or above the stage's threshold for `LIKELY_INJECTION`
(`thresholds`, else its built-in 0.75) are reported: of each group of overlapping ones, the
best, so a finding points at the sentences that read as the attack, not at all that touch
them. Obfuscated text is read as the rules read it: the de-obfuscated
views of `guards._deobfuscate` (leetspeak, spaced-out letters, reversed, ROT13) are scored
too, mapped back to the characters they came from, and so is what a base64 or hex run
decodes to (a finding then spans the run).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from itertools import accumulate

from guards._deobfuscate import encoded_runs, views
from guards.base import Detection, ScanRequest, SyncDetector
from guards.injection_model import WEIGHTS
from guards.injection_model.features import context_features, token_features, tokens

__all__ = ["MIN_WINDOW", "TYPE", "WINDOW", "InjectionClassifier", "Model", "model"]

TYPE = "LIKELY_INJECTION"
WINDOW = 48
MIN_WINDOW = 10
_SENTENCE_END = frozenset(".!?\n")
_CACHE = 100_000  # token and pair weights kept, each


class Model:
    """The committed logistic-regression weights, scoring windows of a token sequence."""

    def __init__(self, bias: float, weights: dict[str, float]) -> None:
        self.bias = bias
        self.weights = weights
        self._token: dict[str, tuple[float, int]] = {}
        self._pair: dict[tuple[str, str], tuple[float, int]] = {}

    def _sum(self, names: list[str] | tuple[str, ...]) -> tuple[float, int]:
        return sum(self.weights.get(n, 0.0) for n in names), len(names)

    def _of_token(self, token: str) -> tuple[float, int]:
        cached = self._token.get(token)
        if cached is None:
            cached = self._sum(token_features(token))
            if len(self._token) < _CACHE:
                self._token[token] = cached
        return cached

    def _of_pair(self, before: str, token: str) -> tuple[float, int]:
        cached = self._pair.get((before, token))
        if cached is None:
            cached = self._sum(context_features(before, token))
            if len(self._pair) < _CACHE:
                self._pair[before, token] = cached
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
                more, extra = self._of_pair(previous, token)
                weight += more
                count += extra
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


def _scored(text: str) -> list[tuple[int, int, float]]:
    """Window scores of the text, of its de-obfuscated views and of its decoded runs, as
    spans of the text."""
    scored = model().window_scores(text)
    for view in views(text):
        for start, end, score in model().window_scores(view.text):
            scored.append((*view.to_source(start, end), score))
    for start, end, decoded in encoded_runs(text):
        scored += [(start, end, score) for _a, _b, score in model().window_scores(decoded)]
    return scored


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
        """Report the best window of each group of overlapping ones at or above the stage's
        threshold."""
        wanted = request.stage_config.entities
        if wanted is not None and TYPE not in wanted:
            return []
        floor = request.stage_config.threshold_for(TYPE)
        groups: list[tuple[int, tuple[int, int, float]]] = []  # (reach, best window)
        for window in sorted(w for w in _scored(request.text) if w[2] >= floor):
            if groups and window[0] <= groups[-1][0]:
                reach, best = groups[-1]
                groups[-1] = (max(reach, window[1]), max(best, window, key=lambda w: w[2]))
            else:
                groups.append((window[1], window))
        return [Detection(TYPE, s, e, score, "n-gram model") for _r, (s, e, score) in groups]
