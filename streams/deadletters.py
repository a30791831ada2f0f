"""The dead letters read back, on either transport, and put back on their origin topics (`hotline deadletter`).

A replayed payload is the one the letter kept: phone and ID numbers in it are masked (as the contracts mask
them anyway), and a payload the letter kept only the beginning of cannot be replayed.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from pydantic import ValidationError

from contracts import DeadLetter, Topic
from hotline.settings import Settings
from streams.embedded import EmbeddedBus
from streams.transport import Transport


@dataclass(frozen=True)
class LetterFilter:
    """Which dead letters: by id, and/or all of one stage and/or error type (empty: every one)."""

    ids: Collection[str] = ()
    stage: str | None = None
    error_type: str | None = None

    def matches(self, letter: DeadLetter) -> bool:
        return ((not self.ids or letter.dead_letter_id in self.ids)
                and self.stage in (None, letter.stage) and self.error_type in (None, letter.error_type))


@dataclass
class Letters:
    """Dead letters read back; how many records the topic holds, and how many of those are no dead letter."""

    letters: list[DeadLetter]
    total: int = 0
    unreadable: int = 0


def newest(settings: Settings, limit: int) -> Letters:
    """The newest `limit` dead letters, oldest first, and how many there are in all."""
    if settings.transport == "embedded":
        return _newest_embedded(settings, limit)
    read = Letters([])
    kept: list[tuple[float, int, DeadLetter]] = []  # a heap of the newest, by rejection time
    for letter in _each(_kafka_values(settings), read):
        heapq.heappush(kept, (letter.rejected_at.timestamp(), read.total, letter))
        if len(kept) > limit:
            heapq.heappop(kept)
    read.letters = [letter for *_, letter in sorted(kept)]
    return read


def select(settings: Settings, which: LetterFilter) -> Letters:
    """The dead letters that match, in the order they were written (per partition on Kafka)."""
    read = Letters([])
    for letter in _each(_values(settings), read):
        if which.matches(letter):
            read.letters.append(letter)
    return read


REPLAYED_FILE = "replayed-dead-letters.txt"


def replayed_ids(settings: Settings) -> set[str]:
    """Dead letters this host replayed before (kept in the data dir: a letter replayed by another host is not
    known here). A replay that fails again makes a new letter, so the old one need not be replayed twice."""
    path = settings.data_dir / REPLAYED_FILE
    return set(path.read_text(encoding="utf-8").split()) if path.exists() else set()


def replayable(letter: DeadLetter, replayed: Collection[str] = ()) -> str | None:
    """Why a dead letter cannot be put back on its topic, or None when it can."""
    if letter.origin_topic not in {topic.value for topic in Topic} or letter.origin_topic == Topic.DEAD_LETTER:
        return f"origin {letter.origin_topic!r} is not a topic a stage reads"
    if letter.stage == "ingest":
        return "refused at ingest: it holds a row of the file, not a message; mend the file and ingest it again"
    if letter.payload_truncated:
        return f"only the first {len(letter.payload_b64)} of {letter.payload_size} bytes were kept"
    if letter.dead_letter_id in replayed:
        return "replayed already (--again replays it once more)"
    return None


def replay(settings: Settings, letters: list[DeadLetter], again: bool = False) -> int:
    """Publish each replayable letter's payload to its origin topic, with its key, and note it as replayed;
    returns how many."""
    replayed = set() if again else replayed_ids(settings)
    transport = _publisher(settings)
    done: list[str] = []
    try:
        with transport.batch():
            for letter in letters:
                if replayable(letter, replayed) is None:
                    transport.publish_raw(Topic(letter.origin_topic), bytes(letter.payload_b64), letter.key_text)
                    done.append(letter.dead_letter_id)
    finally:
        transport.close()  # on Kafka: waits for the broker's acks, and raises if any record was not delivered
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with (settings.data_dir / REPLAYED_FILE).open("a", encoding="utf-8") as record:
        record.writelines(f"{letter_id}\n" for letter_id in done)
    return len(done)


def _publisher(settings: Settings) -> Transport:
    if settings.transport == "kafka":
        from streams.kafka import KafkaTransport

        return KafkaTransport(settings.kafka, settings.kafka_topic)
    return EmbeddedBus(settings.journal_path, settings.max_message_bytes)


def _newest_embedded(settings: Settings, limit: int) -> Letters:
    if not settings.journal_path.exists():  # nothing was ever journaled; do not create an empty journal
        return Letters([])
    bus = EmbeddedBus(settings.journal_path, settings.max_message_bytes)
    try:
        read = Letters([])
        read.letters = list(_each((r.value for r in bus.tail(Topic.DEAD_LETTER, limit)), read))
        read.total = bus.count(Topic.DEAD_LETTER)
        return read
    finally:
        bus.close()


def _values(settings: Settings) -> Iterator[bytes]:
    if settings.transport == "kafka":
        yield from _kafka_values(settings)
    elif settings.journal_path.exists():
        bus = EmbeddedBus(settings.journal_path, settings.max_message_bytes)
        try:
            yield from (record.value for record in bus.records(Topic.DEAD_LETTER))
        finally:
            bus.close()


def _kafka_values(settings: Settings) -> Iterator[bytes]:
    from streams.kafka import iter_topic  # kafka-python only where Kafka is used

    for *_, value in iter_topic(settings.kafka, settings.kafka_topic, Topic.DEAD_LETTER, timeout_s=600):
        yield value


def _each(values: Iterator[bytes], read: Letters) -> Iterator[DeadLetter]:
    for value in values:
        read.total += 1
        try:
            yield DeadLetter.model_validate_json(value)
        except ValidationError:
            read.unreadable += 1
