"""The injection classifier's corpus, features and training; its weights are `weights.json`.

The corpus (`corpus/<language>.yaml`) is written by the project: templated attacks of every
family the rule packs cover and benign look-alikes, in six languages, expanded with a fixed
seed (`corpus.py`). `features.py` turns text into word, word-pair and character n-gram
features, the same way for training and for the detector. `python -m
guards.injection_model.train` fits a logistic regression (scikit-learn, a development
dependency only) and writes `weights.json`, which is committed; a test fails when the corpus
or the code that shapes the weights changed since (the file records their digest), and a
slow one retrains and compares. Nothing is trained or downloaded at run time.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MODEL_DIR", "WEIGHTS"]

MODEL_DIR = Path(__file__).parent
WEIGHTS = MODEL_DIR / "weights.json"
