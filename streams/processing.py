"""What both transports do with raw messages: decode, handle (one by one or as a batch), dead-letter on failure.

A stage that fails is retried. Infrastructure errors (the database or a network peer away for a moment) are
retried with capped exponential backoff for up to `TRANSIENT_RETRY_SECONDS`, holding up the partition
meanwhile; any other error is a bug or a message the stage cannot take, retried `attempts` times. Either
way the message then goes to the dead letters as `processing_error` (`hotline deadletter replay` puts it back).
"""

from __future__ import annotations

import errno
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from contracts import Message, Topic
from streams.codec import Rejected, dead_letter, decode
from streams.stage import Output, Stage

log = structlog.get_logger(__name__)

# How long a stage keeps retrying a message through an infrastructure outage before dead-lettering it.
TRANSIENT_RETRY_SECONDS = 60.0
TRANSIENT_FIRST_DELAY_SECONDS = 0.1
TRANSIENT_MAX_DELAY_SECONDS = 10.0

_TRANSIENT = (InterfaceError, DisconnectionError, PoolTimeoutError, ConnectionError, TimeoutError)
# An OperationalError is an outage only by its cause: SQLite busy or locked, or a PostgreSQL SQLSTATE of a lost
# connection (08), a server shutting down (57P01-57P03), a serialisation failure or deadlock (40001, 40P01) or
# exhausted resources (53). "no such column" (new code before `hotline db-upgrade`) is not waited out.
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "busy", "disk i/o error",
                     "unable to open database")
_POSTGRES_TRANSIENT = ("08", "57P01", "57P02", "57P03", "40001", "40P01", "53")
# OSErrors of a driver's socket; a missing or unreadable file stays a deterministic error
_TRANSIENT_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT,
                     errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EAGAIN, errno.EINTR}


def process_raw(
    stage: Stage, raw: bytes, key: str | None, max_bytes: int, attempts: int = 3
) -> Sequence[Output]:
    """Outputs for one message; a rejected or repeatedly failing message becomes one dead letter."""
    try:
        message = _decode(stage, raw, max_bytes)
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
            decoded.append((index, _decode(stage, raw, max_bytes)))
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


def is_transient(exc: BaseException) -> bool:
    """An infrastructure error that may go away by itself: the error or what it was raised from."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _TRANSIENT) or (isinstance(seen, OSError) and seen.errno in _TRANSIENT_ERRNOS):
            return True
        if isinstance(seen, OperationalError):
            return _operational_outage(seen)
        seen = seen.__cause__
    return False


def _operational_outage(error: OperationalError) -> bool:
    driver_error = error.orig
    sqlstate = getattr(driver_error, "sqlstate", None) or getattr(driver_error, "pgcode", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(_POSTGRES_TRANSIENT)
    if driver_error is None or type(driver_error).__module__.startswith("sqlite3"):
        message = str(driver_error if driver_error is not None else error).lower()
        return any(sign in message for sign in _SQLITE_TRANSIENT)
    return True  # another driver's operational error, without a code to tell: treat as an outage


def _decode(stage: Stage, raw: bytes, max_bytes: int) -> Message:
    try:
        return decode(stage.input_topic, raw, max_bytes)
    except Rejected:
        raise
    except Exception as exc:  # a codec bug must not stop the partition: keep the message instead
        raise Rejected("processing_error", f"decoding failed: {exc!r}") from exc


def _handle_one(stage: Stage, message: Message, raw: bytes, key: str | None, attempts: int = 3) -> Sequence[Output]:
    retries = _Retries(stage.name, attempts)
    while True:
        try:
            return stage.handle(message)
        except Rejected as rejection:
            return [_to_dead_letter(stage, raw, key, rejection)]
        except Exception as exc:
            give_up = retries.wait(exc)
            if give_up is not None:
                return [_to_dead_letter(stage, raw, key, give_up)]


@dataclass
class _Retries:
    """When to try a failed message again, and when to stop."""

    stage: str
    attempts: int
    failures: int = 0
    outage_started: float | None = None
    delay: float = TRANSIENT_FIRST_DELAY_SECONDS

    def wait(self, exc: Exception) -> Rejected | None:
        """Sleep before the next try; or, once the retries are spent, the reason to dead-letter instead."""
        return self._outage(exc) if is_transient(exc) else self._failure(exc)

    def _outage(self, exc: Exception) -> Rejected | None:
        now = time.monotonic()
        self.outage_started = now if self.outage_started is None else self.outage_started
        waited = now - self.outage_started
        if waited + self.delay > TRANSIENT_RETRY_SECONDS:
            return Rejected("processing_error", f"{self.stage} met infrastructure errors for {waited:.0f} s: {exc!r}")
        log.warning("stage_transient_error", stage=self.stage, retry_in_s=round(self.delay, 2),
                    waited_s=round(waited, 2), error=repr(exc))
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, TRANSIENT_MAX_DELAY_SECONDS)
        return None

    def _failure(self, exc: Exception) -> Rejected | None:
        self.failures += 1  # a stage bug, or a message it cannot take: a few tries, then the dead letters
        log.warning("stage_failed", stage=self.stage, attempt=self.failures, error=repr(exc))
        if self.failures >= self.attempts:
            return Rejected("processing_error", f"{self.stage} failed {self.attempts} times: {exc!r}")
        time.sleep(0.05 * self.failures)
        return None


def _to_dead_letter(stage: Stage, raw: bytes, key: str | None, rejection: Rejected) -> Output:
    log.warning("dead_lettered", stage=stage.name, topic=str(stage.input_topic), reason=str(rejection))
    letter = dead_letter(str(stage.input_topic), stage.name, raw, rejection, key)
    return Output(Topic.DEAD_LETTER, letter, key)
