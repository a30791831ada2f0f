"""Classification figures: accuracy, macro-F1, per-class precision/recall/F1, the confusion matrix and, given the
probabilities, how well the confidence is calibrated and what each auto-dispatch threshold would route."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from classifiers.calibration import CalibrationReport, FloatArray, calibration_report


@dataclass(frozen=True)
class ClassReport:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class EvalReport:
    n: int
    accuracy: float
    macro_f1: float
    per_class: list[ClassReport]
    labels: list[str]
    confusion: list[list[int]]
    abstained: int = 0
    calibration: CalibrationReport | None = None
    top_k_accuracy: dict[int, float] | None = None  # k -> share of rows whose category is among the k most likely

    def as_text(self) -> str:
        lines = [f"n={self.n}  accuracy={self.accuracy:.4f}  macro-F1={self.macro_f1:.4f}"]
        if self.top_k_accuracy:
            lines.append("right category among the k the agent sees first: " + "  ".join(
                f"top-{k} {share:.4f}" for k, share in sorted(self.top_k_accuracy.items())))
        if self.abstained:
            lines.append(f"abstained (below confidence threshold, counted as wrong): {self.abstained}")
        lines.append(f"{'class':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
        for c in self.per_class:
            lines.append(f"{c.label:<12}{c.precision:>10.3f}{c.recall:>10.3f}{c.f1:>10.3f}{c.support:>9d}")
        lines.append("confusion (rows = true, columns = predicted, order as above):")
        lines.extend("  " + " ".join(f"{v:>5d}" for v in row) for row in self.confusion)
        if self.calibration is not None:
            lines.append(self.calibration.as_text())
        return "\n".join(lines)


def evaluate(true: list[str], predicted: list[str], labels: list[str],
             probabilities: FloatArray | None = None, model_labels: list[str] | None = None) -> EvalReport:
    """`probabilities` (columns in `model_labels` order) add the calibration figures, over the rows whose true
    label the model knows."""
    precision, recall, f1, support = precision_recall_fscore_support(
        true, predicted, labels=labels, zero_division=0
    )
    per_class = [
        ClassReport(label, float(p), float(r), float(f), int(s))
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    ]
    matrix = confusion_matrix(true, predicted, labels=labels)
    return EvalReport(
        n=len(true),
        accuracy=float(accuracy_score(true, predicted)),
        macro_f1=float(f1_score(true, predicted, labels=labels, average="macro", zero_division=0)),
        per_class=per_class,
        labels=labels,
        confusion=np.asarray(matrix).astype(int).tolist(),
        calibration=_calibration(true, probabilities, model_labels),
        top_k_accuracy=_top_k_accuracy(true, probabilities, model_labels),
    )


def _top_k_accuracy(true: list[str], probabilities: FloatArray | None, model_labels: list[str] | None,
                    ks: tuple[int, ...] = (2, 3)) -> dict[int, float] | None:
    if probabilities is None or model_labels is None or not true:
        return None
    ranked = np.argsort(-np.asarray(probabilities), axis=1)
    rows = list(zip(true, ranked, strict=True))
    return {k: float(np.mean([label in {model_labels[i] for i in row[:k]} for label, row in rows])) for k in ks}


def _calibration(true: list[str], probabilities: FloatArray | None,
                 model_labels: list[str] | None) -> CalibrationReport | None:
    if probabilities is None or model_labels is None:
        return None
    known = [i for i, label in enumerate(true) if label in model_labels]
    if not known:
        return None
    indices = np.array([model_labels.index(true[i]) for i in known])
    return calibration_report(np.asarray(probabilities)[known], indices)
