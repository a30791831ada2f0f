"""onnxruntime inference for the fused multilingual-e5-small intent classifier (see ``e5_build``).

The ONNX file takes ``input_ids`` / ``attention_mask`` and returns ``sentence_embedding`` (L2-normalised,
384-d) and, for a fused classifier, ``probabilities``. The tokenizer is the ``tokenizer.json`` saved next
to the model; labels and the ``"query: "`` prefix come from the model's metadata.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
DEFAULT_PREFIX = "query: "
PAD_ID = 1


def available_providers(preferred: Sequence[str] = PREFERRED_PROVIDERS) -> list[str]:
    """``preferred`` filtered to what this onnxruntime build offers (CPU as the last resort)."""
    have = set(ort.get_available_providers())
    chosen = [p for p in preferred if p in have]
    return chosen or ["CPUExecutionProvider"]


def load_tokenizer(path: Path, max_length: int) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=PAD_ID, pad_token="<pad>")
    return tokenizer


class OnnxIntentModel:
    """Embeddings + calibrated class probabilities from one ONNX graph."""

    def __init__(self, path: Path | str, *, max_length: int | None = None, batch_size: int = 32,
                 providers: Sequence[str] | None = None, intra_op_threads: int | None = None) -> None:
        self.path = Path(path)
        options = ort.SessionOptions()
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        self.session = ort.InferenceSession(
            str(self.path), sess_options=options, providers=available_providers(providers or PREFERRED_PROVIDERS))
        meta = self.session.get_modelmeta().custom_metadata_map
        self.labels: list[str] = json.loads(meta.get("labels", "[]"))
        self.prefix: str = meta.get("query_prefix", DEFAULT_PREFIX)
        self.max_length = max_length or int(meta.get("max_seq_length", "512"))
        self.batch_size = batch_size
        self.tokenizer = load_tokenizer(self.path.parent / "tokenizer.json", self.max_length)
        self._outputs = [o.name for o in self.session.get_outputs()]
        dim = next(o.shape[-1] for o in self.session.get_outputs() if o.name == "sentence_embedding")
        self.dim = dim if isinstance(dim, int) else 384

    def _run(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = self.tokenizer.encode_batch([self.prefix + t for t in texts])
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        result = dict(zip(self._outputs, self.session.run(self._outputs, feeds), strict=True))
        probs = result.get("probabilities", np.zeros((len(texts), 0), dtype=np.float32))
        return result["sentence_embedding"], probs

    def predict(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(embeddings [n, 384], probabilities [n, len(labels)])``, in input order.

        Texts are batched by character length (less padding); each batch is padded to its longest text.
        """
        n = len(texts)
        order = np.argsort([len(t) for t in texts], kind="stable")
        emb = np.zeros((n, self.dim), dtype=np.float32)
        probs = np.zeros((n, len(self.labels)), dtype=np.float32)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            e, p = self._run([texts[i] for i in idx])
            emb[idx] = e
            if p.shape[1]:
                probs[idx] = p
        return emb, probs

    def classify(self, texts: list[str]) -> list[tuple[str, float]]:
        """Top label and its probability for each text."""
        _, probs = self.predict(texts)
        best = probs.argmax(axis=1)
        return [(self.labels[int(i)], float(probs[row, i])) for row, i in enumerate(best)]
