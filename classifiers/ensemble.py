"""The default intent model when e5 is built: a weighted mean of the baseline's and e5's probabilities.

e5 runs for every call anyway (its embedding finds suggested answers and sub-categories), so the mean costs one
baseline call more. The e5 weight, 0.25, was picked by a rule fixed before any scoring: the best macro-F1 of
{baseline, e5, means with weight 0.25 / 0.5 / 0.75} on 128 raw-surface unlabelled messages that two blind
annotators labelled alike (classifiers/E5_REPORT.md, "A raw-surface validation set").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from classifiers.knowledge import FloatArray
from classifiers.stage import EmbeddingIntentModel, IntentModel

DEFAULT_E5_WEIGHT = 0.25


class EnsembleIntentModel:
    """EmbeddingIntentModel: e5's embedding, and w·p(e5) + (1−w)·p(other) over e5's label order."""

    def __init__(self, e5: EmbeddingIntentModel, other: IntentModel, e5_weight: float = DEFAULT_E5_WEIGHT) -> None:
        if not 0 <= e5_weight <= 1:
            raise ValueError(f"e5_weight must be within [0, 1], not {e5_weight}")
        if set(e5.labels) != set(other.labels):
            raise ValueError(f"the two models know different categories: {sorted(set(e5.labels) ^ set(other.labels))}")
        self._e5, self._other, self._weight = e5, other, e5_weight
        self._other_columns = [list(other.labels).index(label) for label in e5.labels]
        self.labels: list[str] = list(e5.labels)
        self.name = f"ensemble({other.name}×{1 - e5_weight:.2f}+{e5.name}×{e5_weight:.2f})"

    def predict_with_embeddings(self, texts: list[str]) -> tuple[FloatArray, FloatArray]:
        embeddings, e5_probabilities = self._e5.predict_with_embeddings(texts)
        other = self._other.predict_proba(texts)[:, self._other_columns]
        mixed = self._weight * np.asarray(e5_probabilities, dtype=np.float64) + (1 - self._weight) * other
        return embeddings, mixed.astype(np.float32)

    def predict_proba(self, texts: list[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
        return np.asarray(self.predict_with_embeddings(texts)[1], dtype=np.float64)
