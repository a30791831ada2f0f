"""What both transports do with raw messages: decode, handle (one by one or as a batch), dead-letter on failure."""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog

from contracts import Message, Topic
from streams.codec import Rejected, dead_letter, decode
from streams.stage import Output, Stage

log = structlog.get_logger(__name__)


def process_raw(
    stage: Stage, raw: bytes, key: str | None, max_bytes: int, attempts: int = 3
) -> Sequence[Output]:
    """Outputs for one message; a rejected or repeatedly failing message becomes one dead letter."""
    try:
        message = decode(stage.input_topic, raw, max_bytes)
    except Rejected as rejection:
        return [_to_dead_letter(stage, raw, key, rejection)]
    return _handle_one(stage, message, raw, key, attempts)


def process_raw_batch(
    stage: Stage, records: Sequence[tuple[bytes, str | None]], max_bytes: int
) -> list[Sequence[Output]]:
    """Outputs for each (raw, key) record, in order. Decodable messages go to `stage.handle_batch` together;
    if that call fails as a whole, each is handled on its own (with retries) instead."""
    if stage.handle_batch is None:
        return [process_raw(stage, raw, key, max_bytes) for raw, key in records]
    results: list[Sequence[Output]] = [[] for _ in records]
    decoded: list[tuple[int, Message]] = []
    for index, (raw, key) in enumerate(records):
        try:
            decoded.append((index, decode(stage.input_topic, raw, max_bytes)))
        except Rejected as rejection:
            results[index] = [_to_dead_letter(stage, raw, key, rejection)]
    if not decoded:
        return results
    try:
        handled = stage.handle_batch([message for _, message in decoded])
        if len(handled) != len(decoded):
            raise RuntimeError(f"{stage.name} returned {len(handled)} results for {len(decoded)} messages")
    except Exception as exc:
        log.warning("stage_batch_failed", stage=stage.name, messages=len(decoded), error=repr(exc))
        for index, message in decoded:
            raw, key = records[index]
            results[index] = _handle_one(stage, message, raw, key)
        return results
    for (index, _), result in zip(decoded, handled, strict=True):
        raw, key = records[index]
        results[index] = [_to_dead_letter(stage, raw, key, result)] if isinstance(result, Rejected) else result
    return results


def _handle_one(stage: Stage, message: Message, raw: bytes, key: str | None, attempts: int = 3) -> Sequence[Output]:
    for attempt in range(1, attempts + 1):
        try:
            return stage.handle(message)
        except Rejected as rejection:
            return [_to_dead_letter(stage, raw, key, rejection)]
        except Exception as exc:  # a stage bug or an outage: retry, then keep the message in the dead letters
            log.warning("stage_failed", stage=stage.name, attempt=attempt, error=repr(exc))
            if attempt == attempts:
                failure = Rejected("processing_error", f"{stage.name} failed {attempts} times: {exc!r}")
                return [_to_dead_letter(stage, raw, key, failure)]
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def _to_dead_letter(stage: Stage, raw: bytes, key: str | None, rejection: Rejected) -> Output:
    log.warning("dead_lettered", stage=stage.name, topic=str(stage.input_topic), reason=str(rejection))
    letter = dead_letter(str(stage.input_topic), stage.name, raw, rejection, key)
    return Output(Topic.DEAD_LETTER, letter, key)
