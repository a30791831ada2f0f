"""The e5 intent classifier as the pipeline sees it: one ONNX graph giving embeddings and probabilities."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.e5_runtime import OnnxIntentModel
from classifiers.knowledge import FloatArray

E5_DIR_NAME = "e5-intent"
E5_MODEL_FILE = "intent.onnx"


def _tail_digest(path: Path, tail_bytes: int = 4_000_000) -> str:
    """Identifies the model by its last bytes, where the fused head and metadata live, without reading 470 MB."""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - tail_bytes))
        return hashlib.sha256(handle.read()).hexdigest()[:10]


class E5IntentClassifier:
    """IntentModel, EmbeddingIntentModel and Encoder at once, over `OnnxIntentModel`."""

    def __init__(self, path: Path, batch_size: int = 16) -> None:
        if not path.exists():
            raise FileNotFoundError(f"no e5 intent model at {path}; run `hotline setup` to build it")
        self._model = OnnxIntentModel(path, batch_size=batch_size)
        self.labels: list[str] = list(self._model.labels)
        self.name = f"e5-small-onnx@{_tail_digest(path)}"
        self.providers: list[str] = list(self._model.session.get_providers())

    def predict_with_embeddings(self, texts: list[str]) -> tuple[FloatArray, FloatArray]:
        embeddings, probabilities = self._model.predict(texts)
        return embeddings.astype(np.float32), probabilities.astype(np.float32)

    def predict_proba(self, texts: list[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
        return self._model.predict(texts)[1].astype(np.float64)

    def encode(self, texts: list[str]) -> FloatArray:
        return self._model.predict(texts)[0].astype(np.float32)
