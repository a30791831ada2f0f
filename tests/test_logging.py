"""In json mode every line on stderr is one JSON object: the standard library's loggers (alembic, uvicorn, faust,
kafka) go through structlog's renderer too."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
import structlog
from rich.console import Console
from rich.file_proxy import FileProxy

from hotline.logging import configure_logging

pytestmark = pytest.mark.usefixtures("restore_logging")


def _emit_everywhere() -> None:
    logging.getLogger("alembic.runtime.migration").info("Running upgrade %s -> %s", "0007", "0008")
    logging.getLogger("uvicorn.error").warning("Started server process [%d]", 42)
    try:
        raise RuntimeError("broker gone")
    except RuntimeError:
        logging.getLogger("kafka.conn").exception("connection lost")
    structlog.get_logger("hotline").info("worker_starting", stages=["classify"])


def test_json_mode_writes_only_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    _emit_everywhere()
    lines = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines]  # raises on a plain-text line
    assert [(r["event"], r["level"]) for r in records] == [
        ("Running upgrade 0007 -> 0008", "info"), ("Started server process [42]", "warning"),
        ("connection lost", "error"), ("worker_starting", "info")]
    assert records[0]["logger"] == "alembic.runtime.migration" and "timestamp" in records[0]
    assert "RuntimeError: broker gone" in records[2]["exception"]


def test_console_mode_renders_stdlib_records_alike(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", "console")
    logging.getLogger("alembic.runtime.migration").debug("Context impl %s.", "SQLiteImpl")
    [line] = capsys.readouterr().err.splitlines()
    assert "[debug" in line and "Context impl SQLiteImpl." in line and "alembic.runtime.migration" in line


def test_configuring_again_replaces_the_handler_only() -> None:
    configure_logging("INFO", "json")
    configure_logging("WARNING", "console")
    root = logging.getLogger()
    assert [h.get_name() for h in root.handlers].count("hotline") == 1
    assert root.level == logging.WARNING


def test_lines_go_to_stderr_itself_under_a_rich_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rich Progress or status swaps sys.stderr for a proxy that prints, wrapped, to its console (stdout)."""
    stderr, screen = io.StringIO(), io.StringIO()
    configure_logging("INFO", "json")
    monkeypatch.setattr(sys, "stderr", FileProxy(Console(file=screen, width=40), stderr))
    logging.getLogger("alembic.runtime.migration").info("Running upgrade %s -> %s", "0007", "0008")
    structlog.get_logger("hotline").info("worker_starting", stages=["classify", "dispatch", "ticketing"])
    assert screen.getvalue() == ""
    records = [json.loads(line) for line in stderr.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["Running upgrade 0007 -> 0008", "worker_starting"]
