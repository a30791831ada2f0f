"""The interface both transports offer: publish messages, and run stages over their topics."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from contracts import Message, Topic
from streams.codec import Rejected, dead_letter, encode
from streams.stage import Output


class Transport(ABC):
    @abstractmethod
    def publish_raw(self, topic: Topic, raw: bytes, key: str | None = None) -> None:
        """Append bytes to a topic as they are; consumers validate them."""

    def publish(self, topic: Topic, value: Message, key: str | None = None) -> None:
        self.publish_raw(topic, encode(value), key if key is not None else value.key())

    def publish_outputs(self, outputs: Sequence[Output]) -> None:
        for output in outputs:
            self.publish(output.topic, output.value, output.partition_key)

    def reject(self, origin: Topic, stage: str, raw: bytes, rejection: Rejected, key: str | None = None,
               original: bytes | None = None) -> None:
        """Keep a refused input in the dead-letter topic. `original`: the whole input when `raw` is only its
        beginning; the letter then records the whole input's size and SHA-256."""
        letter = dead_letter(str(origin), stage, raw, rejection, key, original=original)
        self.publish(Topic.DEAD_LETTER, letter, key)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group many publishes (e.g. a file's rows) into one durable write where the transport can."""
        yield

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
