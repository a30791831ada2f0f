"""The Kafka transport: publish to Kafka topics with kafka-python; create topics; read a topic back.

The stages themselves run in a faust worker (streams.faust_app); this module is what producers (the CLI,
the call-centre adapter, tests) use to put messages on the topics, and what tools use to read them.

Works against Apache Kafka and against Kafka-protocol brokers such as Tansu (see streams/KAFKA.md):
no idempotent or transactional producer is used, and reading a topic never trusts the reported end offsets
alone (Tansu reports the base offset of the last batch + 1).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import Cancelled, KafkaError, TopicAlreadyExistsError

from contracts import Topic
from streams.transport import Transport

if TYPE_CHECKING:
    from hotline.settings import KafkaSettings

log = structlog.get_logger(__name__)

TopicName = Callable[[Topic], str]
MaxBytes = Callable[[Topic], int]

# Frames are up to 8 MiB and a dead letter carries up to 8 MiB of payload in base64 (4/3 of it) plus JSON.
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
# A record this much bigger than the application limit still reaches the stage, which dead-letters it
# with a clear reason instead of the producer failing with a broker error.
_TOPIC_HEADROOM_BYTES = 1024 * 1024


class _DropCancelledRefresh(logging.Filter):
    """kafka-python 3.0 logs an ERROR when a client is closed while a metadata refresh waits behind a
    long-poll fetch on the same connection (`Metadata refresh: failed Cancelled`): nothing failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "Metadata refresh: failed %s" and isinstance(record.args, tuple)
                    and len(record.args) == 1 and isinstance(record.args[0], Cancelled))


logging.getLogger("kafka.cluster").addFilter(_DropCancelledRefresh())


class KafkaPublishError(RuntimeError):
    """Some records could not be delivered to Kafka."""


def bootstrap_list(kafka_settings: KafkaSettings) -> list[str]:
    return [server.strip() for server in kafka_settings.bootstrap_servers.split(",") if server.strip()]


def client_security(kafka_settings: KafkaSettings) -> dict[str, Any]:
    """kafka-python connection options for the configured security protocol (TLS files, SASL credentials)."""
    options: dict[str, Any] = {"security_protocol": kafka_settings.security_protocol}
    if kafka_settings.uses_tls:
        options["ssl_check_hostname"] = True
        for option in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(kafka_settings, option)
            if path is not None:
                options[option] = str(_readable(path, option))
    if kafka_settings.sasl_password is not None:
        options.update(sasl_mechanism=kafka_settings.sasl_mechanism,
                       sasl_plain_username=kafka_settings.sasl_username,
                       sasl_plain_password=kafka_settings.sasl_password.get_secret_value())
    return options


def tls_context(kafka_settings: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context for clients that take one (faust/aiokafka): system CAs or ssl_cafile, the client cert."""
    if not kafka_settings.uses_tls:
        return None
    cafile = kafka_settings.ssl_cafile
    context = ssl.create_default_context(cafile=str(_readable(cafile, "ssl_cafile")) if cafile else None)
    if kafka_settings.ssl_certfile and kafka_settings.ssl_keyfile:
        context.load_cert_chain(str(_readable(kafka_settings.ssl_certfile, "ssl_certfile")),
                                str(_readable(kafka_settings.ssl_keyfile, "ssl_keyfile")))
    return context


def _readable(path: Path, option: str) -> Path:
    if not path.is_file():
        raise ValueError(f"kafka.{option}: no such file {path}")
    return path


def topic_max_message_bytes(topic: Topic, max_bytes: MaxBytes) -> int:
    """The broker-side `max.message.bytes` for a topic, given the application's limit for it."""
    if topic is Topic.DEAD_LETTER:
        largest = max(max_bytes(t) for t in Topic)
        return largest * 4 // 3 + _TOPIC_HEADROOM_BYTES
    return max_bytes(topic) + _TOPIC_HEADROOM_BYTES


class KafkaTransport(Transport):
    """Publishes to Kafka. Records are sent asynchronously; `flush()` (and `close()`) wait for every
    record to be acknowledged by all in-sync replicas and raise `KafkaPublishError` if any failed."""

    def __init__(
        self,
        kafka_settings: KafkaSettings,
        topic_name: TopicName,
        *,
        max_request_size: int = DEFAULT_MAX_REQUEST_BYTES,
        linger_ms: int = 5,
        client_id: str | None = None,
    ) -> None:
        self._topic_name = topic_name
        self._failures: list[BaseException] = []
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_list(kafka_settings),
            client_id=client_id or f"{kafka_settings.app_id}-producer",
            acks="all",
            # Tansu (and some managed Kafka offerings) have no idempotent producer; consumers are
            # idempotent on the source event id instead.
            enable_idempotence=False,
            linger_ms=linger_ms,
            batch_size=kafka_settings.producer_max_batch_size,
            max_request_size=max_request_size,
            retries=5,
            **client_security(kafka_settings),
        )

    def publish_raw(self, topic: Topic, raw: bytes, key: str | None = None) -> None:
        future = self._producer.send(
            self._topic_name(topic), value=raw, key=None if key is None else key.encode("utf-8")
        )
        future.add_errback(self._on_failure, self._topic_name(topic))

    def flush(self, timeout_s: float | None = 60.0) -> None:
        self._producer.flush(timeout=timeout_s)
        if self._failures:
            failures, self._failures = self._failures, []
            raise KafkaPublishError(f"{len(failures)} record(s) were not delivered; first: {failures[0]!r}")

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._producer.close()

    def _on_failure(self, error: BaseException, topic: str) -> None:
        log.error("kafka_publish_failed", topic=topic, error=repr(error))
        self._failures.append(error)


def ensure_topics(
    kafka_settings: KafkaSettings,
    topic_name: TopicName,
    max_bytes: MaxBytes,
    topics: Iterable[Topic] = tuple(Topic),
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet (partitions and replication from the settings).

    Idempotent: an existing topic is left as it is (its partition count is not changed). Returns the
    names of the topics it created.
    """
    wanted = {topic_name(topic): topic for topic in topics}
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_list(kafka_settings),
        client_id=f"{kafka_settings.app_id}-admin",
        request_timeout_ms=int(timeout_s * 1000),
        **client_security(kafka_settings),
    )
    created: list[str] = []
    try:
        existing = set(admin.list_topics())
        for name, topic in wanted.items():
            if name in existing:
                continue
            new_topic = NewTopic(
                name,
                num_partitions=kafka_settings.partitions,
                replication_factor=kafka_settings.replication_factor,
                topic_configs={"max.message.bytes": str(topic_max_message_bytes(topic, max_bytes))},
            )
            try:
                admin.create_topics([new_topic], timeout_ms=int(timeout_s * 1000))
            except TopicAlreadyExistsError:  # another worker created it meanwhile
                continue
            created.append(name)
    finally:
        admin.close()
    if created:
        log.info("kafka_topics_created", topics=created, partitions=kafka_settings.partitions)
    return created


def read_topic(
    kafka_settings: KafkaSettings,
    topic_name: TopicName,
    topic: Topic,
    timeout_s: float = 10.0,
    idle_ms: int = 500,
) -> list[tuple[str | None, bytes]]:
    """Every record on a topic from the earliest offset, as (key, value), ordered by partition then offset.

    No consumer group is used and nothing is committed. Stops once every partition has been read up to
    the end offsets the broker reports and a further fetch of `idle_ms` brings nothing new (a broker
    may under-report end offsets), or when `timeout_s` runs out. A topic that does not exist reads empty.
    """
    records = iter_topic(kafka_settings, topic_name, topic, timeout_s, idle_ms)
    return [(key, value) for _, _, key, value in sorted(records, key=lambda record: record[:2])]


def iter_topic(
    kafka_settings: KafkaSettings,
    topic_name: TopicName,
    topic: Topic,
    timeout_s: float = 10.0,
    idle_ms: int = 500,
) -> Iterator[tuple[int, int, str | None, bytes]]:
    """Like `read_topic`, but yields (partition, offset, key, value) as records arrive, holding none of them:
    for tools that go through a long topic (the dead letters)."""
    name = topic_name(topic)
    deadline = time.monotonic() + timeout_s
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_list(kafka_settings),
        client_id=f"{kafka_settings.app_id}-reader",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        allow_auto_create_topics=False,  # reading must not create a topic with the broker's defaults
        fetch_max_wait_ms=min(idle_ms, 500),
        max_partition_fetch_bytes=DEFAULT_MAX_REQUEST_BYTES,
        fetch_max_bytes=4 * DEFAULT_MAX_REQUEST_BYTES,
        **client_security(kafka_settings),
    )
    try:
        partitions = consumer.partitions_for_topic(name)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(name)
        if not partitions:
            return
        assigned = [TopicPartition(name, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends: dict[TopicPartition, int] = consumer.end_offsets(assigned)
        next_offset = dict.fromkeys(sorted(partitions), 0)  # a record fetched twice is yielded once
        while time.monotonic() < deadline:
            remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
            batch = consumer.poll(timeout_ms=min(idle_ms, remaining_ms))
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset < next_offset[tp.partition]:
                        continue
                    next_offset[tp.partition] = message.offset + 1
                    key = None if message.key is None else bytes(message.key).decode("utf-8", "replace")
                    yield tp.partition, message.offset, key, bytes(message.value)
            caught_up = all(consumer.position(tp) >= ends.get(tp, 0) for tp in assigned)
            if caught_up and not batch:
                break
    except KafkaError as exc:
        log.error("kafka_read_failed", topic=name, error=repr(exc))
        raise
    finally:
        consumer.close()
