"""Small helpers several test modules share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """A settable clock for code that takes a `clock` callable."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now
