"""Confidence that means what it says: temperature scaling and the figures that check it.

A classifier's top probability is what the agent sees and what decides between auto-dispatch and the manual
queue, so it should match how often the classifier is right. Temperature scaling (one scalar dividing the
logits, fitted on held-out rows by log-loss) fixes an over- or under-confident model without changing its
ranking, hence without changing accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

FloatArray = np.ndarray[Any, np.dtype[np.floating[Any]]]
IntArray = np.ndarray[Any, np.dtype[np.integer[Any]]]

CALIBRATION_BINS = 15
ROUTING_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def softmax(logits: FloatArray, temperature: float = 1.0) -> FloatArray:
    probabilities: FloatArray = np.exp(log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1))
    return probabilities


def log_loss(probabilities: FloatArray, true: IntArray) -> float:
    picked = probabilities[np.arange(len(true)), true]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def fit_temperature(logits: FloatArray, true: IntArray) -> float:
    """The temperature that minimises the log-loss of softmax(logits / T) on these held-out rows."""
    logits = np.asarray(logits, dtype=np.float64)

    def loss(temperature: float) -> float:
        return float(-log_softmax(logits / temperature, axis=1)[np.arange(len(true)), true].mean())

    return float(minimize_scalar(loss, bounds=(0.05, 20.0), method="bounded").x)


def expected_calibration_error(probabilities: FloatArray, true: IntArray, bins: int = CALIBRATION_BINS) -> float:
    """Mean |confidence − accuracy| over equal-width confidence bins, weighted by the rows in each bin."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == true
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in pairwise(edges):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            error += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(error)


@dataclass(frozen=True)
class RoutingPoint:
    """At this confidence threshold: the share of calls routed automatically and how many of those are right."""

    threshold: float
    auto_share: float
    auto_accuracy: float | None


def routing_curve(probabilities: FloatArray, true: IntArray,
                  thresholds: tuple[float, ...] = ROUTING_THRESHOLDS) -> list[RoutingPoint]:
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == true
    points = []
    for threshold in thresholds:
        routed = confidence >= threshold
        accuracy = float(correct[routed].mean()) if routed.any() else None
        points.append(RoutingPoint(threshold, float(routed.mean()), accuracy))
    return points


@dataclass(frozen=True)
class CalibrationReport:
    ece: float
    log_loss: float
    mean_confidence: float
    routing: list[RoutingPoint]

    def as_text(self) -> str:
        lines = [f"calibration: ECE={self.ece:.3f} ({CALIBRATION_BINS} bins)  log-loss={self.log_loss:.3f}  "
                 f"mean top confidence={self.mean_confidence:.3f}",
                 "confidence threshold -> share routed automatically, accuracy of those (the rest go to manual):"]
        for point in self.routing:
            accuracy = "-" if point.auto_accuracy is None else f"{point.auto_accuracy:.3f}"
            lines.append(f"  >= {point.threshold:.1f}: {point.auto_share:6.1%} routed, accuracy {accuracy}")
        return "\n".join(lines)


def calibration_report(probabilities: FloatArray, true: IntArray) -> CalibrationReport:
    return CalibrationReport(
        ece=expected_calibration_error(probabilities, true),
        log_loss=log_loss(probabilities, true),
        mean_confidence=float(probabilities.max(axis=1).mean()),
        routing=routing_curve(probabilities, true),
    )
