"""The `hotline` command's guards: setup retrains a baseline an interrupted save left unreadable; options and
settings that would silently do the wrong thing are refused or warned about."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

import hotline.cli
from classifiers import BaselineClassifier
from hotline.cli import app
from hotline.pipeline import BASELINE_MODEL_FILE, build_pipeline, open_store
from hotline.settings import Settings, get_settings

pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.fixture
def cli_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.delenv("HOTLINE_CONFIG", raising=False)
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    yield data_dir
    get_settings.cache_clear()


@pytest.mark.parametrize("damage", ["card missing", "model truncated"])
def test_setup_retrains_a_baseline_an_interrupted_save_left_behind(
    damage: str, make_settings: Callable[..., Settings], baseline_model_file: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings()
    model = settings.models_dir / BASELINE_MODEL_FILE
    if damage == "card missing":
        model.with_suffix(".card.json").unlink()
    else:
        model.write_bytes(model.read_bytes()[:100_000])
    trained: list[Path] = []

    def train(training_csv: Path) -> tuple[BaselineClassifier, Any]:  # the real training takes minutes
        trained.append(training_csv)
        return BaselineClassifier.load(baseline_model_file), SimpleNamespace(accuracy=0.85, macro_f1=0.86, n=495)

    monkeypatch.setattr(BaselineClassifier, "train", staticmethod(train))
    monkeypatch.setattr(hotline.cli, "_setup_e5", lambda _settings, _force: None)
    hotline.cli._setup(settings)
    out = " ".join(capsys.readouterr().out.split())
    assert len(trained) == 1
    assert f"training the baseline classifier: the one at {model} is unreadable" in out
    assert BaselineClassifier.load(model).card.calibrated
    hotline.cli._setup(settings)
    assert len(trained) == 1 and f"baseline classifier present: {model}" in " ".join(capsys.readouterr().out.split())


def test_tickets_list_refuses_a_status_that_does_not_exist(cli_settings: Path) -> None:
    refused = CliRunner().invoke(app, ["tickets", "list", "--status", "dispatchd"])
    assert refused.exit_code == 2 and "dispatched" in refused.output
    listed = CliRunner().invoke(app, ["tickets", "list", "--status", "dispatched", "--json"])
    assert listed.exit_code == 0, listed.output


def test_the_worker_refuses_the_embedded_transport(cli_settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hotline.worker

    started: list[Settings] = []
    monkeypatch.setattr(hotline.worker, "run_worker", started.append)
    refused = CliRunner().invoke(app, ["worker"])
    assert refused.exit_code == 1 and started == []
    assert refused.output.startswith("error: the worker runs the stages on Kafka, but HOTLINE_TRANSPORT is "
                                     "'embedded': set HOTLINE_TRANSPORT=kafka")
    monkeypatch.setenv("HOTLINE_TRANSPORT", "kafka")
    get_settings.cache_clear()
    assert CliRunner().invoke(app, ["worker"]).exit_code == 0 and len(started) == 1


def test_choosing_e5_before_it_is_built_warns_that_the_baseline_runs_alone(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(classifier={"model": "e5"})
    with structlog.testing.capture_logs() as logs:
        pipeline = build_pipeline(settings, open_store(settings))
    [warning] = [entry for entry in logs if entry["event"] == "classifier_model_unavailable"]
    assert warning["log_level"] == "warning" and warning["configured"] == "e5"
    assert warning["classifying_with"].startswith("baseline-tfidf-char-lr")
    assert "the baseline runs alone" in warning["reason"]
    assert "classify" in [stage.name for stage in pipeline.stages]
    with structlog.testing.capture_logs() as logs:
        build_pipeline(make_settings(data_dir=settings.data_dir.parent / "default"), open_store(settings))
    assert not [entry for entry in logs if entry["event"] == "classifier_model_unavailable"]



class _Bus:
    closed = False

    def close(self) -> None:
        self.closed = True


def _interrupted(_settings: Settings, _bus: object, _follow: bool) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_stops_run_with_130_and_closes_the_bus(cli_settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hotline.pipeline

    bus = _Bus()
    monkeypatch.setattr(hotline.pipeline, "open_embedded_bus", lambda _settings: bus)
    monkeypatch.setattr(hotline.cli, "_drive_embedded", _interrupted)
    stopped = CliRunner().invoke(app, ["run"])
    assert stopped.exit_code == 130 and bus.closed
    assert stopped.output.count("stopped (Ctrl-C)") == 1


def test_ctrl_c_during_the_demo_run_prints_no_tickets(cli_settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hotline.ingest
    import hotline.pipeline

    fed = SimpleNamespace(accepted=1, rejected=0)
    printed: list[int] = []
    monkeypatch.setattr(hotline.cli, "_setup", lambda _settings: None)
    monkeypatch.setattr(hotline.ingest, "ingest_transcripts", lambda *_args, **_kwargs: fed)
    monkeypatch.setattr(hotline.ingest, "ingest_frames", lambda *_args, **_kwargs: fed)
    monkeypatch.setattr(hotline.pipeline, "open_embedded_bus", lambda _settings: _Bus())
    monkeypatch.setattr(hotline.cli, "_drive_embedded", _interrupted)
    monkeypatch.setattr(hotline.cli, "_print_tickets", lambda _settings, limit: printed.append(limit))
    stopped = CliRunner().invoke(app, ["demo"])
    assert stopped.exit_code == 130 and printed == [] and "stopped (Ctrl-C)" in stopped.output
