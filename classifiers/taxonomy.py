"""Second- and third-level categories, suggested by similarity (the training labels are top-level only)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from classifiers.knowledge import Encoder, FloatArray, cached_embeddings
from contracts import CategoryScore


class SubcategoryIndex:
    """The 3-level taxonomy's leaves as '一级/二级/三级', embedded once; ranked by cosine to a message."""

    def __init__(self, paths: list[str], embeddings: FloatArray) -> None:
        self.paths = paths
        self.embeddings = embeddings

    @classmethod
    def build(cls, taxonomy_csv: Path, encoder: Encoder, cache_dir: Path) -> SubcategoryIndex:
        with taxonomy_csv.open(encoding="utf-8-sig", newline="") as handle:
            rows = [(r["一级分类"], r["二级分类"], r["三级分类"]) for r in csv.DictReader(handle)]
        paths = [f"{a}/{b}/{c}" for a, b, c in rows]
        # the leaf described in words, as a citizen would: "二级：三级"
        texts = [f"{b}：{c}" for _, b, c in rows]
        return cls(paths, cached_embeddings(encoder, texts, paths, cache_dir, "taxonomy-index"))

    def suggest(self, embedding: FloatArray, category: str | None, k: int = 3) -> list[CategoryScore]:
        candidates = [i for i, p in enumerate(self.paths) if category is None or p.startswith(f"{category}/")]
        if not candidates:
            return []
        scores = self.embeddings[candidates] @ embedding
        best = np.argsort(-scores)[:k]
        return [CategoryScore(label=self.paths[candidates[int(i)]], score=float(np.clip(scores[int(i)], 0, 1)))
                for i in best]
