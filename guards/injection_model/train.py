"""`python -m guards.injection_model.train`: fit the classifier on the corpus, write weights.json.

Deterministic: the corpus is expanded with a fixed seed and L-BFGS has no randomness;
weights are rounded and those too small to matter are dropped, so the file changes only
when the corpus or this code does. Needs scikit-learn (a development dependency); the
detector only reads the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

from guards.injection_model import MODEL_DIR, WEIGHTS
from guards.injection_model.corpus import corpus, corpus_files
from guards.injection_model.features import text_features

__all__ = ["digest", "train", "write"]

# What shapes the weights: a change to any of these makes weights.json stale.
_SOURCES = ("corpus.py", "features.py", "train.py")
_C = 4.0
_PRUNE = 0.05


def digest() -> str:
    """SHA-256 over the corpus files and the code that turns them into weights."""
    sha = hashlib.sha256()
    for path in [*corpus_files(), *(MODEL_DIR / name for name in _SOURCES)]:
        sha.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()


def train() -> dict[str, Any]:
    """Fit and return the model as written to weights.json."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    samples = corpus()
    rows = []
    for sample in samples:
        counts = text_features(sample.text)
        scale = 1 / math.sqrt(sum(counts.values()) or 1)
        rows.append({name: count * scale for name, count in counts.items()})
    vectorizer = DictVectorizer(sort=True)
    matrix = vectorizer.fit_transform(rows)
    labels = [sample.label for sample in samples]
    model = LogisticRegression(C=_C, solver="lbfgs", class_weight="balanced", max_iter=5000)
    model.fit(matrix, labels)
    weights = {
        name: round(float(weight), 4)
        for name, weight in zip(vectorizer.get_feature_names_out(), model.coef_[0], strict=True)
        if abs(weight) >= _PRUNE
    }
    return {
        "digest": digest(),
        "samples": {"attack": sum(labels), "benign": len(labels) - sum(labels)},
        "bias": round(float(model.intercept_[0]), 4),
        "weights": dict(sorted(weights.items())),
    }


def write(path: Path = WEIGHTS) -> None:
    """Train and write the weights file."""
    path.write_text(json.dumps(train(), ensure_ascii=False, indent=0) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else WEIGHTS)
