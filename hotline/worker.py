"""The Kafka worker process: every stage of the pipeline as a faust agent, in the foreground.

Run as many as there are partitions to share; they form one consumer group (`kafka.app_id`).
SIGTERM or SIGINT stops it cleanly: the record in hand is finished, processed offsets are committed.

    python -m hotline.worker        # settings from HOTLINE_... environment variables / HOTLINE_CONFIG
"""

from __future__ import annotations

import logging

import faust
import structlog

from hotline.logging import configure_logging
from hotline.pipeline import build_pipeline, open_store
from hotline.settings import Settings, settings_or_exit
from streams.faust_app import make_faust_app
from streams.kafka import ensure_topics

log = structlog.get_logger(__name__)


def run_worker(settings: Settings) -> None:
    """Build the pipeline, make sure the topics exist, and consume until stopped by a signal."""
    quiet_client_logs(settings.log_level)
    store = open_store(settings)
    try:
        pipeline = build_pipeline(settings, store)
        ensure_topics(settings.kafka, settings.kafka_topic, settings.max_message_bytes)
        app = make_faust_app(settings, pipeline.stages)
        log.info(
            "worker_starting",
            bootstrap_servers=settings.kafka.bootstrap_servers,
            group=settings.kafka.app_id,
            topic_prefix=settings.kafka.topic_prefix,
            stages=[stage.name for stage in pipeline.stages],
            disabled=pipeline.disabled,
        )
        worker = faust.Worker(
            app,
            loglevel=settings.log_level,
            override_logging=False,  # keep the process's logging (configure_logging) as it is
            quiet=True,
        )
        worker.spinner = None  # a terminal progress spinner; it writes escape codes even to a file
        try:
            worker.execute_from_commandline()  # blocks; always ends in SystemExit
        except SystemExit as stop:
            if stop.code not in (None, 0):
                log.error("worker_failed", exit_code=stop.code)
                raise
        log.info("worker_stopped")
    finally:
        store.engine.dispose()


def refuse_embedded(settings: Settings) -> None:
    """A worker on the embedded transport would idle while ingest fills the local journal: stop at once."""
    if settings.transport != "kafka":
        raise SystemExit(f"error: the worker runs the stages on Kafka, but HOTLINE_TRANSPORT is "
                         f"{settings.transport!r}: set HOTLINE_TRANSPORT=kafka (and HOTLINE_KAFKA__BOOTSTRAP_SERVERS), "
                         "or use `hotline run` for the embedded transport")


def quiet_client_logs(level: str) -> None:
    """kafka-python and aiokafka log every connection at INFO; keep them to warnings unless debugging."""
    if logging.getLevelName(level.upper()) != logging.DEBUG:
        for name in ("kafka", "aiokafka", "faust", "mode", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)


def main() -> None:
    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    refuse_embedded(settings)
    run_worker(settings)


if __name__ == "__main__":
    main()
