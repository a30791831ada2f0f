"""What both transports do with one raw message: decode, handle, dead-letter on failure."""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog

from contracts import Topic
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
