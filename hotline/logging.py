"""Structured logging for every command and worker: structlog's events and the standard library's records
(alembic, uvicorn, faust, kafka) rendered alike, so in json mode every line on stderr is one JSON object."""

import logging
import sys
from typing import Any, TextIO

import structlog

_HANDLER_NAME = "hotline"


def _stderr() -> TextIO:
    """sys.stderr as it is now: in-process runners (tests, typer's CliRunner) swap it and close the one they swapped
    in. Under a rich Progress or status it is rich's proxy, which would print the line wrapped to the progress's
    console (stdout): the file behind the proxy is written instead."""
    stream: TextIO = getattr(sys.stderr, "rich_proxied_file", sys.stderr)
    return stream


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to _stderr() as it is when a record comes."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = _stderr()
        super().emit(record)


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    level = level.upper()
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    _route_stdlib_logging(level, shared, renderer, fmt)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=_print_to_stderr,
        cache_logger_on_first_use=False,
    )


def _print_to_stderr(*_args: Any) -> structlog.PrintLogger:
    """A printer to _stderr() as it is now; loggers are not cached, so one per event."""
    return structlog.PrintLogger(_stderr())


def _route_stdlib_logging(level: str, shared: list[structlog.types.Processor], renderer: structlog.types.Processor,
                          fmt: str) -> None:
    """One root handler whose formatter runs stdlib records through structlog's renderer; it replaces the one an
    earlier call installed and leaves other handlers (a test runner's) alone."""
    foreign = [*shared, structlog.stdlib.add_logger_name]
    if fmt == "json":
        foreign.append(structlog.processors.format_exc_info)  # a traceback as a string field, not a repr'd tuple
    handler = _StderrHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=foreign,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin on every import
