"""Settings refuse what they cannot honour, with one line naming it: a config file that is not there, a misspelt key
at any depth (file or environment), a log level that is no level."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from hotline.cli import app
from hotline.settings import Settings, SettingsError, describe_settings_error, get_settings

pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.delenv("HOTLINE_CONFIG", raising=False)
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_a_config_file_that_is_not_there_is_refused_by_name(kind: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "hotlin.toml" if kind == "missing" else tmp_path
    monkeypatch.setenv("HOTLINE_CONFIG", str(path))
    with pytest.raises(SettingsError, match=f"HOTLINE_CONFIG names {path}, which"):
        Settings()
    result = CliRunner().invoke(app, ["tickets", "list"])
    assert result.exit_code == 1
    problem = "does not exist" if kind == "missing" else "is a directory, not a file"
    assert result.output.strip().splitlines() == [f"error: HOTLINE_CONFIG names {path}, which {problem}"]


def test_a_config_file_is_still_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hotline.toml"
    config.write_text('transport = "kafka"\n[classifier]\nmin_confidence = 0.7\n', encoding="utf-8")
    monkeypatch.setenv("HOTLINE_CONFIG", str(config))
    settings = Settings()
    assert settings.transport == "kafka" and settings.classifier.min_confidence == 0.7


@pytest.mark.parametrize("table", ["kafka", "limits", "classifier", "assist", "vision"])
def test_a_misspelt_key_in_a_config_table_is_refused(table: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hotline.toml"
    config.write_text(f"[{table}]\nmin_confidance = 0.7\n", encoding="utf-8")
    monkeypatch.setenv("HOTLINE_CONFIG", str(config))
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert describe_settings_error(refused.value) == (
        f"invalid settings: {table}.min_confidance (HOTLINE_{table.upper()}__MIN_CONFIDANCE): no such setting "
        "(misspelt?)")


def test_a_misspelt_nested_environment_variable_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_CLASSIFIER__MIN_CONFIDENCE", "0.7")
    assert Settings().classifier.min_confidence == 0.7
    monkeypatch.delenv("HOTLINE_CLASSIFIER__MIN_CONFIDENCE")
    monkeypatch.setenv("HOTLINE_CLASSIFIER__MIN_CONFIDANCE", "0.7")
    result = CliRunner().invoke(app, ["tickets", "list"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: invalid settings: classifier.min_confidance (HOTLINE_CLASSIFIER__MIN_CONFIDANCE): no such setting "
        "(misspelt?)"]


@pytest.mark.parametrize(("given", "level"), [("debug", "DEBUG"), (" Warning ", "WARNING"), ("ERROR", "ERROR"),
                                              ("WARN", "WARNING"), ("warn", "WARNING"), ("Fatal", "CRITICAL")])
def test_the_log_level_is_any_case(given: str, level: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_LOG_LEVEL", given)
    assert Settings().log_level == level
    result = CliRunner().invoke(app, ["tickets", "list", "--json"])
    assert result.exit_code == 0, result.output


def test_a_log_level_that_is_no_level_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_LOG_LEVEL", "verbose")
    result = CliRunner().invoke(app, ["tickets", "list"])
    assert result.exit_code == 1
    assert result.output.startswith("error: invalid settings: log_level (HOTLINE_LOG_LEVEL): Input should be 'DEBUG'")
