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


class E5IntentClassifier:
    """IntentModel, EmbeddingIntentModel and Encoder at once, over `OnnxIntentModel`."""

    def __init__(self, path: Path, batch_size: int = 16) -> None:
        if not path.exists():
            raise FileNotFoundError(f"no e5 intent model at {path}; run `hotline setup` to build it")
        self._model = OnnxIntentModel(path, batch_size=batch_size)
        self.labels: list[str] = list(self._model.labels)
        digest = hashlib.sha256(path.read_bytes()[-4_000_000:]).hexdigest()[:10]
        self.name = f"e5-small-onnx@{digest}"
        self.providers: list[str] = list(self._model.session.get_providers())

    def predict_with_embeddings(self, texts: list[str]) -> tuple[FloatArray, FloatArray]:
        embeddings, probabilities = self._model.predict(texts)
        return embeddings.astype(np.float32), probabilities.astype(np.float32)

    def predict_proba(self, texts: list[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
        return self._model.predict(texts)[1].astype(np.float64)

    def encode(self, texts: list[str]) -> FloatArray:
        return self._model.predict(texts)[0].astype(np.float32)
