"""The embedded transport: one process, no broker, every message journaled in SQLite before it counts.

Each stage's outputs and its consumer offset are written in one SQLite transaction, so a crash either
keeps both or neither: a restarted process resumes exactly where the journal says.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog

from contracts import Topic
from streams.codec import encode
from streams.processing import process_raw, process_raw_batch
from streams.stage import Output, Stage
from streams.transport import Transport

log = structlog.get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    offset INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key TEXT,
    value BLOB NOT NULL,
    appended_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_topic_offset ON journal (topic, offset);
CREATE TABLE IF NOT EXISTS consumer_offsets (
    stage TEXT NOT NULL,
    topic TEXT NOT NULL,
    offset INTEGER NOT NULL,
    PRIMARY KEY (stage, topic)
);
"""


# How long a write waits for another process's (an ingest's chunk, a follower's commit) before "database is locked"
BUSY_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class JournalRecord:
    offset: int
    topic: str
    key: str | None
    value: bytes


class EmbeddedBus(Transport):
    def __init__(self, journal_path: Path, max_bytes: Callable[[Topic], int], batch_size: int = 64) -> None:
        journal_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(journal_path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._max_bytes = max_bytes
        self._batch_size = batch_size

    def publish_raw(self, topic: Topic, raw: bytes, key: str | None = None) -> None:
        with self._lock:
            self._append(str(topic), key, raw)

    @contextmanager
    def batch(self) -> Iterator[None]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def read(self, topic: Topic | str, after_offset: int = 0, limit: int = 1000) -> list[JournalRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT offset, topic, key, value FROM journal WHERE topic = ? AND offset > ? "
                "ORDER BY offset LIMIT ?",
                (str(topic), after_offset, limit),
            ).fetchall()
        return [JournalRecord(*row) for row in rows]

    def tail(self, topic: Topic | str, limit: int) -> list[JournalRecord]:
        """The newest `limit` records of a topic, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT offset, topic, key, value FROM journal WHERE topic = ? ORDER BY offset DESC LIMIT ?",
                (str(topic), limit),
            ).fetchall()
        return [JournalRecord(*row) for row in reversed(rows)]

    def count(self, topic: Topic | str) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM journal WHERE topic = ?", (str(topic),)).fetchone()
        return int(n)

    def committed_offset(self, stage: str, topic: Topic | str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT offset FROM consumer_offsets WHERE stage = ? AND topic = ?", (stage, str(topic))
            ).fetchone()
        return int(row[0]) if row else 0

    def lag(self, stage: Stage) -> int:
        with self._lock:
            (n,) = self._db.execute(
                "SELECT count(*) FROM journal WHERE topic = ? AND offset > ?",
                (str(stage.input_topic), self.committed_offset(stage.name, stage.input_topic)),
            ).fetchone()
        return int(n)

    def step(self, stage: Stage) -> int:
        """Process one batch of a stage's input; returns how many messages it consumed."""
        records = self.read(stage.input_topic, self.committed_offset(stage.name, stage.input_topic), self._batch_size)
        max_bytes = self._max_bytes(stage.input_topic)
        if stage.batches:
            for start in range(0, len(records), stage.max_batch):
                chunk = records[start:start + stage.max_batch]
                results = process_raw_batch(stage, [(r.value, r.key) for r in chunk], max_bytes)
                for record, outputs in zip(chunk, results, strict=True):
                    self._commit(stage, record.offset, outputs)
            return len(records)
        for record in records:
            self._commit(stage, record.offset, process_raw(stage, record.value, record.key, max_bytes))
        return len(records)

    def run_until_idle(self, stages: Sequence[Stage], on_progress: Callable[[int], None] | None = None) -> int:
        """Run stages until no stage has input left; returns the number of messages processed."""
        total = 0
        while True:
            consumed = sum(self.step(stage) for stage in stages)
            if consumed == 0:
                return total
            total += consumed
            if on_progress:
                on_progress(consumed)

    def run_forever(self, stages: Sequence[Stage], stop: threading.Event, poll_seconds: float = 0.2) -> None:
        while not stop.is_set():
            if self.run_until_idle(stages) == 0:
                stop.wait(poll_seconds)

    def records(self, topic: Topic | str) -> Iterator[JournalRecord]:
        offset = 0
        while batch := self.read(topic, offset):
            yield from batch
            offset = batch[-1].offset

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _append(self, topic: str, key: str | None, raw: bytes) -> None:
        self._db.execute(
            "INSERT INTO journal (topic, key, value, appended_at) VALUES (?, ?, ?, ?)",
            (topic, key, raw, time.time()),
        )

    def _commit(self, stage: Stage, offset: int, outputs: Sequence[Output]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for output in outputs:
                    self._append(str(output.topic), output.partition_key, encode(output.value))
                self._db.execute(
                    "INSERT INTO consumer_offsets (stage, topic, offset) VALUES (?, ?, ?) "
                    "ON CONFLICT (stage, topic) DO UPDATE SET offset = excluded.offset",
                    (stage.name, str(stage.input_topic), offset),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        """Only a transaction still open: an interrupt (Ctrl-C) that lands once COMMIT is done, or before BEGIN,
        leaves none, and ROLLBACK would then fail and hide the interrupt."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
