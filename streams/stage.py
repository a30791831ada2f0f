"""A stage: consume one topic, emit messages to others. Both transports run the same stages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from contracts import Message, Topic
from streams.codec import Rejected


@dataclass(frozen=True)
class Output:
    topic: Topic
    value: Message
    key: str | None = None

    @property
    def partition_key(self) -> str | None:
        return self.key if self.key is not None else self.value.key()


Handler = Callable[[Message], Sequence[Output]]
# One result per message, in order: its outputs, or the reason it goes to the dead letters.
BatchHandler = Callable[[Sequence[Message]], Sequence[Sequence[Output] | Rejected]]


@dataclass(frozen=True)
class Stage:
    """`handle` may raise `streams.codec.Rejected` to dead-letter the message it was given.

    A stage whose work batches well (a detector over frames of many cameras) also gives `handle_batch`; the
    transports then hand it up to `max_batch` messages at once, in input order. `handle` stays the fallback:
    if `handle_batch` fails as a whole, each message is retried on its own, so one bad message cannot sink
    the others.
    """

    name: str
    input_topic: Topic
    handle: Handler
    handle_batch: BatchHandler | None = None
    max_batch: int = 1

    @property
    def batches(self) -> bool:
        return self.handle_batch is not None and self.max_batch > 1
