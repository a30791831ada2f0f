"""Baseline intent classifier: character 1-3-gram TF-IDF + logistic regression.

An honest, fast stand-in until the ONNX e5 classifier is built: trained at set-up on the tokenized rows of
messages_train.csv (spaces removed, near-duplicates of raw rows dropped), judged on the 495 raw rows. Plain
logistic regression here is under-confident, so its logits are divided by a temperature fitted on a held-out
15 % of the training rows before the final fit on all of them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import joblib
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from classifiers.calibration import fit_temperature, softmax
from classifiers.data import LabelledText, read_labelled_csv, split_raw_held_out
from classifiers.metrics import EvalReport, evaluate

MODEL_NAME = "baseline-tfidf-char-lr"


@dataclass(frozen=True)
class ModelCard:
    name: str
    trained_at: str
    trained_on: str
    train_rows: int
    eval_rows: int
    eval_accuracy: float
    eval_macro_f1: float
    labels: list[str]
    temperature: float | None = None  # None: a card from before calibration (plain softmax); setup retrains it

    @property
    def calibrated(self) -> bool:
        return self.temperature is not None


class BaselineClassifier:
    def __init__(self, pipeline: Pipeline, card: ModelCard) -> None:
        self._pipeline = pipeline
        self.card = card
        self.labels: list[str] = [str(label) for label in pipeline.classes_]
        self.name = f"{card.name}@{card.trained_at}"

    def predict_proba(self, texts: list[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
        logits = self._pipeline.decision_function(texts)
        return np.asarray(softmax(logits, self.card.temperature or 1.0), dtype=np.float64)

    def predict(self, texts: list[str]) -> list[str]:
        probabilities = self.predict_proba(texts)
        return [self.labels[i] for i in probabilities.argmax(axis=1)]

    @classmethod
    def train(cls, training_csv: Path) -> tuple[BaselineClassifier, EvalReport]:
        rows = read_labelled_csv(training_csv)
        train, held_out = split_raw_held_out(rows)
        temperature = _held_out_temperature(train)
        pipeline = _fit(train)
        labels = [str(label) for label in pipeline.classes_]
        probabilities = softmax(pipeline.decision_function([r.text for r in held_out]), temperature)
        report = evaluate([r.label for r in held_out], [labels[i] for i in probabilities.argmax(axis=1)], labels,
                          probabilities, labels)
        card = ModelCard(
            name=MODEL_NAME,
            trained_at=datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
            trained_on=f"{training_csv.name}: {len(train)} tokenized rows (spaces removed, raw rows' twins dropped)",
            train_rows=len(train),
            eval_rows=len(held_out),
            eval_accuracy=report.accuracy,
            eval_macro_f1=report.macro_f1,
            labels=labels,
            temperature=temperature,
        )
        return cls(pipeline, card), report

    def save(self, path: Path) -> None:
        """Both files are written whole under temporary names, then renamed into place, the card last (the old card
        goes first): an interrupted save leaves the old pair, or a model without a card, which setup retrains."""
        path.parent.mkdir(parents=True, exist_ok=True)
        card_path = path.with_suffix(".card.json")
        card = json.dumps(asdict(self.card), ensure_ascii=False, indent=2).encode("utf-8")
        model_file = _written_aside(path, lambda file: joblib.dump(self._pipeline, file))
        try:
            card_file = _written_aside(card_path, lambda file: file.write(card))
        except BaseException:
            model_file.unlink(missing_ok=True)
            raise
        card_path.unlink(missing_ok=True)
        os.replace(model_file, path)
        os.replace(card_file, card_path)

    @classmethod
    def load(cls, path: Path) -> BaselineClassifier:
        return cls(joblib.load(path), cls.read_card(path))

    @staticmethod
    def read_card(path: Path) -> ModelCard:
        """The model's card alone, without loading the (large) pipeline."""
        if not path.exists():
            raise FileNotFoundError(f"no baseline classifier at {path}; run `hotline setup` to train it")
        return ModelCard(**json.loads(path.with_suffix(".card.json").read_text(encoding="utf-8")))


def _written_aside(path: Path, write: Callable[[IO[bytes]], object]) -> Path:
    """A temporary file beside `path`, written whole and synced to disk, for os.replace to put in place."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _fit(rows: list[LabelledText]) -> Pipeline:
    pipeline = Pipeline([
        ("tfidf", TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True,
                                  max_features=300_000)),
        ("lr", LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced")),
    ])
    return pipeline.fit([r.text for r in rows], [r.label for r in rows])


CALIBRATION_SHARE = 0.15


def _held_out_temperature(rows: list[LabelledText]) -> float:
    """Fit on 85 % of the training rows, pick the temperature on the other 15 % (never on the raw test rows)."""
    fit_rows, calibration_rows = train_test_split(rows, test_size=CALIBRATION_SHARE, random_state=0,
                                                  stratify=[r.label for r in rows])
    pipeline = _fit(fit_rows)
    classes = [str(label) for label in pipeline.classes_]
    logits = pipeline.decision_function([r.text for r in calibration_rows])
    return fit_temperature(logits, np.array([classes.index(r.label) for r in calibration_rows]))
