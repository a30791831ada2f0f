"""Lexical similarity for spotting the same issue reported again: character bigrams weighted by rarity.

Why not the e5 embedding: fine-tuned to tell categories apart, it puts any two messages of one category close
together whatever the place, so on hand-labelled pairs of the unlabelled messages it ranks duplicates poorly
(tests/classifiers/duplicate_gold.yaml). Duplicates share rare names — an estate, a road, a company, a
restaurant — and rare character bigrams find them.

Bigrams are hashed, so a name never seen in the reference corpus still counts, with the highest weight.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

from classifiers.extract import same_area

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
N_BUCKETS = 2**20
KEPT_VECTORS = 10_000  # about 4 KB each
GROUPING_BLOCK = 500


class LexicalSimilarity:
    """Cosine of sublinear-tf × idf character-bigram vectors; idf from a reference corpus."""

    def __init__(self, idf: FloatArray) -> None:
        if idf.shape != (N_BUCKETS,):
            raise ValueError(f"idf must have {N_BUCKETS} entries, not {idf.shape}")
        self.idf = idf
        self._hasher = _hasher()
        self._kept: OrderedDict[str, sparse.csr_matrix] = OrderedDict()
        self._kept_lock = threading.Lock()

    @classmethod
    def fit(cls, reference_texts: Sequence[str]) -> LexicalSimilarity:
        counts = _hasher().transform(reference_texts)
        document_frequency = np.bincount(counts.indices, minlength=N_BUCKETS)
        return cls(np.log((1 + len(reference_texts)) / (1 + document_frequency)) + 1)

    def vectors(self, texts: Sequence[str]) -> sparse.csr_matrix:
        counts = self._hasher.transform(texts).astype(np.float64)
        counts.data = 1 + np.log(counts.data)
        weighted: sparse.csr_matrix = normalize(sparse.csr_matrix(counts.multiply(self.idf)))
        return weighted

    def scores(self, query: str, texts: Sequence[str]) -> FloatArray:
        """Cosine of the query to each text (0 for an empty text)."""
        if not texts:
            return np.zeros(0)
        matrix = self.vectors([query, *texts])
        return np.asarray((matrix[1:] @ matrix[0].T).toarray()).ravel()

    def scores_by_key(self, query: str, keys: Sequence[str], texts: Sequence[str]) -> FloatArray:
        """Like scores, for texts that never change under their key (a call's or a ticket's text)."""
        if not texts:
            return np.zeros(0)
        return np.asarray((self.kept_vectors(keys, texts) @ self.vectors([query]).T).toarray()).ravel()

    def kept_vectors(self, keys: Sequence[str], texts: Sequence[str]) -> sparse.csr_matrix:
        """Like vectors, for texts that never change under their key: their vectors are kept, so a query over
        the same recent calls or tickets hashes only the new ones."""
        with self._kept_lock:  # the API's worker threads and the stage share one instance
            missing = [i for i, key in enumerate(keys) if key not in self._kept]
            if missing:
                for i, vector in zip(missing, self.vectors([texts[i] for i in missing]), strict=True):
                    self._kept[keys[i]] = vector
            for key in keys:
                self._kept.move_to_end(key)
            matrix: sparse.csr_matrix = sparse.vstack([self._kept[key] for key in keys]).tocsr()
            while len(self._kept) > KEPT_VECTORS:
                self._kept.popitem(last=False)
        return matrix

    def pair_scores(self, firsts: Sequence[str], seconds: Sequence[str]) -> FloatArray:
        """Cosine of each text in firsts to the text at the same position in seconds."""
        return np.asarray(self.vectors(firsts).multiply(self.vectors(seconds)).sum(axis=1)).ravel()


def repeat_groups(lexical: LexicalSimilarity, texts: Sequence[str], districts: Sequence[str | None],
                  threshold: float, keys: Sequence[str] | None = None) -> list[list[int]]:
    """Reports of one issue: texts linked, directly or through others, by a score at or above the threshold,
    between districts that may be the same place (equal, or one placed only in the city). Largest first.
    `keys` (one per text, the text never changing under it) lets repeated groupings reuse kept vectors."""
    if not texts:
        return []
    vectors = lexical.vectors(texts) if keys is None else lexical.kept_vectors(keys, texts)
    linked = []
    for start in range(0, len(texts), GROUPING_BLOCK):  # a block of rows at a time: most pairs share some bigram
        block = (vectors[start:start + GROUPING_BLOCK] @ vectors.T).tocoo()
        close = (block.data >= threshold) & (block.row + start < block.col)
        linked += [(int(i), int(j)) for i, j in zip(block.row[close] + start, block.col[close], strict=True)
                   if same_area(districts[i], districts[j])]
    graph = sparse.coo_matrix((np.ones(len(linked)), ([i for i, _ in linked], [j for _, j in linked])),
                              shape=(len(texts), len(texts)))
    _, group_of = connected_components(graph, directed=False)
    groups: dict[int, list[int]] = {}
    for index, group in enumerate(group_of):
        groups.setdefault(int(group), []).append(index)
    return sorted(groups.values(), key=lambda members: (-len(members), members[0]))


def ticket_key(ticket_id: str) -> str:
    """The kept-vector key of a ticket's title and description (calls are kept under their call id)."""
    return f"ticket:{ticket_id}"


def _hasher() -> HashingVectorizer:
    return HashingVectorizer(analyzer="char", ngram_range=(2, 2), n_features=N_BUCKETS, alternate_sign=False,
                             norm=None)
