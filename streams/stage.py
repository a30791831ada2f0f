"""A stage: consume one topic, emit messages to others. Both transports run the same stages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from contracts import Message, Topic


@dataclass(frozen=True)
class Output:
    topic: Topic
    value: Message
    key: str | None = None

    @property
    def partition_key(self) -> str | None:
        return self.key if self.key is not None else self.value.key()


Handler = Callable[[Message], Sequence[Output]]


@dataclass(frozen=True)
class Stage:
    """`handle` may raise `streams.codec.Rejected` to dead-letter the message it was given."""

    name: str
    input_topic: Topic
    handle: Handler
