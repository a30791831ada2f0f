"""Shared fixtures: settings pointing at a temporary data dir, and a baseline classifier trained once."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from classifiers import BaselineClassifier
from hotline.pipeline import BASELINE_MODEL_FILE
from hotline.settings import REPO_ROOT, Settings

SHARED_DIR = REPO_ROOT.parent / "shared"
TRAINING_CSV = SHARED_DIR / "data" / "hotline" / "messages_train.csv"
MODEL_CACHE = REPO_ROOT / "var" / "test-cache" / "models"


@pytest.fixture(scope="session")
def baseline_model_file() -> Path:
    """Train the baseline once per machine (it is a pure function of the training CSV) and reuse it."""
    path = MODEL_CACHE / BASELINE_MODEL_FILE
    if not path.exists():
        classifier, _ = BaselineClassifier.train(TRAINING_CSV)
        classifier.save(path)
    return path


@pytest.fixture
def make_settings(tmp_path: Path, baseline_model_file: Path) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        data_dir = overrides.pop("data_dir", tmp_path / "data")
        models = data_dir / "models"
        models.mkdir(parents=True, exist_ok=True)
        for file in baseline_model_file.parent.glob(f"{Path(BASELINE_MODEL_FILE).stem}*"):
            shutil.copy(file, models / file.name)
        return Settings(data_dir=data_dir, shared_dir=SHARED_DIR, **overrides)

    return factory
