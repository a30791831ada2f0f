"""How well a similarity score finds repeat reports, measured on hand-labelled message pairs.

The pairs were drawn per stratum of a candidate pool (see the gold file's header), so each pair is weighted by
pool/drawn of its stratum: precision and recall estimate the figures over the whole pool, not over the sample.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sklearn.metrics import average_precision_score, cohen_kappa_score

from classifiers.data import message_text

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
PairScorer = Callable[[Sequence[str], Sequence[str]], FloatArray]


@dataclass(frozen=True)
class LabelledPair:
    first: str
    second: str
    stratum: str
    duplicate: bool


@dataclass(frozen=True)
class GoldSet:
    name: str
    pairs: list[LabelledPair]
    weight_of_stratum: dict[str, float]

    @property
    def weights(self) -> FloatArray:
        return np.array([self.weight_of_stratum[p.stratum] for p in self.pairs])

    @property
    def labels(self) -> np.ndarray[Any, np.dtype[np.bool_]]:
        return np.array([p.duplicate for p in self.pairs])


@dataclass(frozen=True)
class ThresholdFigures:
    threshold: float
    precision: float
    recall: float
    right: int
    wrong: int
    missed: int


@dataclass(frozen=True)
class DuplicateReport:
    gold: str
    pairs: int
    duplicates: int
    average_precision: float | None  # None for a yes/no score, which ranks nothing
    at: list[ThresholdFigures]

    def as_text(self) -> str:
        ranking = "" if self.average_precision is None else f", average precision {self.average_precision:.3f}"
        lines = [f"{self.gold}: {self.pairs} pairs, {self.duplicates} duplicates{ranking}"]
        lines += [f"  score >= {f.threshold:.3f}: precision {f.precision:.2f}, recall {f.recall:.2f} "
                  f"(pairs: {f.right} right, {f.wrong} wrong, {f.missed} missed)" for f in self.at]
        return "\n".join(lines)


def load_gold(path: Path, labeller: int = 1) -> list[GoldSet]:
    """The labelled sets, with the first labeller's labels or (labeller=2) the second's."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    sets = []
    for name, body in raw.items():
        weights = {stratum: pool / drawn for stratum, (pool, drawn) in body["strata"].items()}
        short = [row for row in body["pairs"] if len(row) < 3 + labeller]
        if short:
            raise ValueError(f"{path}: set {name!r}: a pair needs [message, message, stratum, label …] with "
                             f"labeller {labeller}'s label; {short[0]!r} has none")
        pairs = [LabelledPair(str(a), str(b), str(stratum), bool(labels[labeller - 1]))
                 for a, b, stratum, *labels in body["pairs"]]
        unknown = {p.stratum for p in pairs} - weights.keys()
        if unknown:
            raise ValueError(f"{path}: set {name!r} has pairs in strata without sizes: {sorted(unknown)}")
        sets.append(GoldSet(name, pairs, weights))
    return sets


def labeller_agreement(path: Path) -> list[tuple[str, int, int, float]]:
    """Per set: pairs, pairs both labellers put the same way, Cohen's kappa."""
    agreement = []
    for first, second in zip(load_gold(path, 1), load_gold(path, 2), strict=True):
        same = int((first.labels == second.labels).sum())
        agreement.append((first.name, len(first.pairs), same, float(cohen_kappa_score(first.labels, second.labels))))
    return agreement


def read_messages(path: Path) -> dict[str, str]:
    """留言编号 -> title and text, as the assist stage sees a message."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return {row["留言编号"].strip(): message_text(row["留言主题"].strip(), row["留言详情"].strip())
                for row in csv.DictReader(handle)}


def evaluate_duplicates(gold: GoldSet, messages: dict[str, str], score_pairs: PairScorer,
                        thresholds: Sequence[float]) -> DuplicateReport:
    missing = sorted({m for p in gold.pairs for m in (p.first, p.second)} - messages.keys())
    if missing:
        raise ValueError(f"{len(missing)} messages of the gold set are not in the data, e.g. {missing[:3]}")
    scores = score_pairs([messages[p.first] for p in gold.pairs], [messages[p.second] for p in gold.pairs])
    labels, weights = gold.labels, gold.weights
    ranks = len(set(scores.tolist())) > 2
    return DuplicateReport(
        gold=gold.name, pairs=len(gold.pairs), duplicates=int(labels.sum()),
        average_precision=float(average_precision_score(labels, scores, sample_weight=weights)) if ranks else None,
        at=[_at_threshold(scores, labels, weights, t) for t in thresholds],
    )


def _at_threshold(scores: FloatArray, labels: np.ndarray[Any, np.dtype[np.bool_]], weights: FloatArray,
                  threshold: float) -> ThresholdFigures:
    flagged = scores >= threshold
    right, wrong, missed = flagged & labels, flagged & ~labels, ~flagged & labels
    true_weight, flagged_weight = weights[right].sum(), weights[flagged].sum()
    return ThresholdFigures(
        threshold=threshold,
        precision=float(true_weight / flagged_weight) if flagged_weight else 0.0,
        recall=float(true_weight / weights[labels].sum()),
        right=int(right.sum()), wrong=int(wrong.sum()), missed=int(missed.sum()),
    )
