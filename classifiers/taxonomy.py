"""Second- and third-level categories, suggested by similarity (the training labels are top-level only)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from scipy import sparse

from classifiers.knowledge import Encoder, FloatArray, cached_embeddings
from classifiers.lexical import LexicalSimilarity
from contracts import CategoryScore


class SubcategoryIndex:
    """The 3-level taxonomy's leaves as '一级/二级/三级', ranked for a message by the mean of two similarities to
    the leaf's words: the e5 cosine and the character-bigram score. The mean ranked the annotators' second level
    first for 0.86 of three sets of 60 raw rows, where the cosine alone did for 0.73–0.80 (E5_REPORT.md)."""

    def __init__(self, paths: list[str], embeddings: FloatArray, lexical: LexicalSimilarity,
                 leaf_vectors: sparse.csr_matrix) -> None:
        self.paths = paths
        self.embeddings = embeddings
        self.lexical = lexical
        self.leaf_vectors = leaf_vectors

    @classmethod
    def build(cls, taxonomy_csv: Path, encoder: Encoder, lexical: LexicalSimilarity,
              cache_dir: Path) -> SubcategoryIndex:
        with taxonomy_csv.open(encoding="utf-8-sig", newline="") as handle:
            rows = [(r["一级分类"], r["二级分类"], r["三级分类"]) for r in csv.DictReader(handle)]
        paths = [f"{a}/{b}/{c}" for a, b, c in rows]
        # the leaf described in words, as a citizen would: "二级：三级"
        texts = [f"{b}：{c}" for _, b, c in rows]
        embeddings = cached_embeddings(encoder, texts, paths, cache_dir, "taxonomy-index")
        return cls(paths, embeddings, lexical, lexical.vectors([f"{b} {c}" for _, b, c in rows]))

    def suggest(self, text: str, embedding: FloatArray, category: str | None, k: int = 3) -> list[CategoryScore]:
        """The k best leaves of `category` (of all categories for None) for a message and its e5 embedding."""
        candidates = [i for i, p in enumerate(self.paths) if category is None or p.startswith(f"{category}/")]
        if not candidates:
            return []
        cosines = self.embeddings[candidates] @ embedding
        words = np.asarray((self.leaf_vectors[candidates] @ self.lexical.vectors([text]).T).toarray()).ravel()
        scores = (cosines + words) / 2
        best = np.argsort(-scores, kind="stable")[:k]
        return [CategoryScore(label=self.paths[candidates[int(i)]], score=float(np.clip(scores[int(i)], 0, 1)))
                for i in best]
