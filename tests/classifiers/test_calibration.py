"""Confidence calibration: the temperature fit, ECE, the routing curve, the baseline's calibrated card, and the
figures `hotline eval classify` prints."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from classifiers import BaselineClassifier
from classifiers.calibration import (
    expected_calibration_error,
    fit_temperature,
    routing_curve,
    softmax,
)
from classifiers.data import read_labelled_csv, split_raw_held_out
from hotline.cli import eval_app
from hotline.settings import get_settings

from ..conftest import MODEL_CACHE, TRAINING_CSV


def _sampled(temperature: float, rows: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits / temperature): data whose true temperature is known."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, size=(rows, 5))
    probabilities = softmax(logits, temperature)
    labels = np.array([rng.choice(5, p=p) for p in probabilities])
    return logits, labels


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_temperature_the_labels_were_drawn_with(true_temperature: float) -> None:
    logits, labels = _sampled(true_temperature)
    assert fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.15)


def test_ece_is_small_when_calibrated_and_large_when_over_confident() -> None:
    logits, labels = _sampled(2.0)
    calibrated = expected_calibration_error(softmax(logits, 2.0), labels)
    over_confident = expected_calibration_error(softmax(logits, 0.5), labels)
    assert calibrated < 0.03 < 0.1 < over_confident


def test_routing_curve_routes_fewer_calls_more_accurately_as_the_threshold_rises() -> None:
    probabilities = np.array([[0.95, 0.05], [0.85, 0.15], [0.6, 0.4], [0.45, 0.55]])
    labels = np.array([0, 0, 1, 1])
    curve = routing_curve(probabilities, labels, thresholds=(0.5, 0.7, 0.9, 0.99))
    assert [p.auto_share for p in curve] == [1.0, 0.5, 0.25, 0.0]
    assert [p.auto_accuracy for p in curve] == [0.75, 1.0, 1.0, None]


def test_baseline_confidence_is_temperature_scaled_and_better_calibrated_on_raw_rows(
        baseline_model_file: Path) -> None:
    model = BaselineClassifier.load(baseline_model_file)
    assert model.card.calibrated and model.card.temperature is not None
    _, raw = split_raw_held_out(read_labelled_csv(TRAINING_CSV))
    labels = np.array([model.labels.index(r.label) for r in raw])
    scaled = model.predict_proba([r.text for r in raw])
    plain = softmax(np.log(scaled) * model.card.temperature)  # undo the temperature: the uncalibrated softmax
    assert np.allclose(plain.sum(axis=1), 1.0)
    assert (scaled.argmax(axis=1) == plain.argmax(axis=1)).all()  # scaling never changes the ranking
    # measured 2026-11-29: ECE 0.104 plain, 0.058 with the temperature fitted on training rows
    assert expected_calibration_error(scaled, labels) < expected_calibration_error(plain, labels)


@pytest.fixture
def test_cache_settings(monkeypatch: pytest.MonkeyPatch, baseline_model_file: Path) -> Iterator[None]:
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(MODEL_CACHE.parent))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_eval_classify_prints_calibration_and_the_routing_trade_off(test_cache_settings: None) -> None:
    # the eval sub-app alone: the main app's callback would point the logs at the runner's stream, closed after
    result = CliRunner().invoke(eval_app, ["classify", "--data", str(TRAINING_CSV)])
    assert result.exit_code == 0, result.output
    assert "n=495" in result.output and "macro-F1=" in result.output
    assert "calibration: ECE=" in result.output
    top = re.search(r"accuracy=([\d.]+).*top-2 ([\d.]+)  top-3 ([\d.]+)", result.output, re.S)
    assert top is not None and float(top[1]) <= float(top[2]) <= float(top[3]) <= 1.0
    assert ">= 0.5:" in result.output and "routed, accuracy" in result.output


def test_eval_classify_refuses_a_model_it_does_not_know() -> None:
    result = CliRunner().invoke(eval_app, ["classify", "--data", str(TRAINING_CSV), "--model", "ensmble"])
    assert result.exit_code == 2 and "'ensmble' is not one of" in result.output
