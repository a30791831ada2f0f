"""The Kafka worker: each stage becomes a faust agent on its input topic.

Every record goes through `streams.processing.process_raw` (the same per-message logic as the embedded
transport: decode, handle, dead-letter on failure). Its outputs are sent, and acknowledged by the broker,
and only then does the agent ack the record (the stream is `noack`: faust's own ack sits in a `finally` and
would ack a record whose processing raised); faust commits only acked, contiguous offsets.
A batching stage (camera detection) takes up to `max_batch` records at once (`noack_take`, waiting at most
`kafka.batch_wait_seconds`) through `process_raw_batch`; the batch's records are acked after all its outputs
are sent, so the guarantee is the same.
A record whose outputs cannot be sent (or whose processing raises) is never acked: the agent raises and its
`CrashingSupervisor` stops the worker (exit 1), so the record is redelivered to the next worker.
That makes the worker at-least-once: a worker that dies re-delivers what it had not committed, and the
ticket store creates one ticket per source event however often a decision is delivered.

Partitioning is Kafka's: outputs are keyed by `Output.partition_key` (district or call id for calls,
camera id for frames and camera events), and faust's producer uses Kafka's default (murmur2) partitioner.

No faust tables are used (their changelog recovery relies on exact end offsets, which some
Kafka-protocol brokers such as Tansu misreport) and no web server is started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import faust
import structlog
from faust.types import EventT
from mode import CrashingSupervisor

from hotline.settings import KafkaSettings, Settings
from streams.codec import encode
from streams.kafka import DEFAULT_MAX_REQUEST_BYTES, tls_context
from streams.processing import process_raw, process_raw_batch
from streams.stage import Output, Stage

log = structlog.get_logger(__name__)

SEND_ATTEMPTS = 5


def make_faust_app(settings: Settings, stages: Sequence[Stage]) -> faust.App:
    """A faust app with one agent per stage; consumer group `settings.kafka.app_id`."""
    kafka = settings.kafka
    session_timeout_s = kafka.session_timeout_ms / 1000
    faust_dir = settings.data_dir / "faust"  # faust creates only the last folder of its datadir
    faust_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        kafka.app_id,
        broker=[f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(",") if server.strip()],
        broker_credentials=credentials(kafka),
        store="memory://",
        # faust keeps a folder per app even with memory tables; by default it lands in the working directory
        datadir=str(faust_dir / kafka.app_id),
        autodiscover=False,
        web_enabled=False,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_disable_leader=True,  # no on_leader timers: no need for the leader-election topic
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=session_timeout_s,
        broker_heartbeat_interval=min(3.0, session_timeout_s / 3),
        broker_request_timeout=max(90.0, session_timeout_s * 2),
        broker_commit_interval=1.0,
        producer_acks=-1,
        producer_max_batch_size=kafka.producer_max_batch_size,
        producer_max_request_size=DEFAULT_MAX_REQUEST_BYTES,
        consumer_max_fetch_size=DEFAULT_MAX_REQUEST_BYTES,
        stream_wait_empty=True,
        logging_config=None,
    )
    # Stages are synchronous (a model, a database); run them off the event loop so heartbeats keep going.
    # The threads are idle between records and joined when the process exits.
    executor = ThreadPoolExecutor(max_workers=max(1, len(stages)), thread_name_prefix="stage")
    seen: set[str] = set()
    for stage in stages:
        if stage.name in seen:
            raise ValueError(f"two stages are named {stage.name!r}")
        seen.add(stage.name)
        _add_agent(app, settings, stage, executor)

    async def log_assignment(_sender: Any, /, *args: Any, signal: Any = None, **_: Any) -> None:
        assigned: set[Any] = args[0] if args else set()
        by_topic: dict[str, list[int]] = {}
        for tp in assigned:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        log.info("partitions_assigned", partitions={t: sorted(p) for t, p in sorted(by_topic.items())})

    app.on_partitions_assigned.connect(log_assignment)

    return app


def credentials(kafka: KafkaSettings) -> faust.SSLCredentials | faust.SASLCredentials | None:
    """faust's broker credentials for the configured protocol: TLS context and/or SASL user."""
    context = tls_context(kafka)
    if kafka.sasl_password is not None:
        return faust.SASLCredentials(username=kafka.sasl_username, password=kafka.sasl_password.get_secret_value(),
                                     ssl_context=context, mechanism=kafka.sasl_mechanism)
    return faust.SSLCredentials(context) if context is not None else None


def _add_agent(app: faust.App, settings: Settings, stage: Stage, executor: ThreadPoolExecutor) -> None:
    topic = app.topic(
        settings.kafka_topic(stage.input_topic),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.kafka.partitions,
        allow_empty=True,  # an empty record is dead-lettered as malformed, not silently skipped
    )
    max_bytes = settings.max_message_bytes(stage.input_topic)
    send = _sender(app, settings)

    async def run_stage(stream: faust.StreamT[bytes]) -> None:
        loop = asyncio.get_running_loop()
        manual = cast(faust.Stream[bytes], stream).noack()  # acked below, only once the outputs are sent
        async for event in manual.events():
            raw = event.value if isinstance(event.value, bytes) else b""
            key = _key_text(event.key)
            try:
                outputs = await loop.run_in_executor(executor, process_raw, stage, raw, key, max_bytes)
                await send(outputs)
            except Exception as exc:
                _log_not_done(stage, [event], exc)
                raise
            await manual.ack(event)

    async def run_batched_stage(stream: faust.StreamT[bytes]) -> None:
        loop = asyncio.get_running_loop()
        wait = settings.kafka.batch_wait_seconds
        # noack_take yields events and never acks them itself (take_events acks even when the body raises)
        batches = cast(faust.Stream[bytes], stream).noack_take(stage.max_batch, within=wait)
        async for taken in batches:
            events = cast(list[EventT[bytes]], taken)
            records = [(e.value if isinstance(e.value, bytes) else b"", _key_text(e.key)) for e in events]
            try:
                results = await loop.run_in_executor(executor, process_raw_batch, stage, records, max_bytes)
                await send([output for outputs in results for output in outputs])
            except Exception as exc:
                _log_not_done(stage, events, exc)
                raise
            for event in events:
                await stream.ack(event)

    # A stage that raises stops the whole worker (exit 1) instead of being restarted past its record.
    app.agent(topic, name=f"stage-{stage.name}", supervisor_strategy=CrashingSupervisor)(
        run_batched_stage if stage.batches else run_stage)


def _log_not_done(stage: Stage, events: Sequence[EventT[bytes]], exc: BaseException) -> None:
    for event in events:
        log.error("stage_record_not_done", stage=stage.name, topic=event.message.topic,
                  partition=event.message.partition, offset=event.message.offset, error=repr(exc))


def _key_text(key: object) -> str | None:
    if key is None:
        return None
    if isinstance(key, bytes | bytearray | memoryview):
        return bytes(key).decode("utf-8", "replace")
    return str(key)


def _sender(app: faust.App, settings: Settings) -> Callable[[Sequence[Output]], Awaitable[None]]:
    async def send(outputs: Sequence[Output]) -> None:
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                pending = []
                for output in outputs:
                    key = output.partition_key
                    pending.append(
                        await app.producer.send(
                            settings.kafka_topic(output.topic),
                            None if key is None else key.encode("utf-8"),
                            encode(output.value),
                            None,
                            None,
                            None,
                        )
                    )
                for delivery in pending:
                    await delivery
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A resend after a partial failure repeats some outputs: downstream stages are idempotent.
                log.warning("kafka_send_failed", attempt=attempt, error=repr(exc))
                if attempt == SEND_ATTEMPTS:
                    # The caller leaves the record unacked and stops the worker, so that it is redelivered.
                    log.error("kafka_send_gave_up", error=repr(exc))
                    raise
                await asyncio.sleep(0.2 * 2**attempt)

    return send

