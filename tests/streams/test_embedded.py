"""The embedded transport: dead letters with reasons, durable journal, exactly one ticket per input."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import typer

from contracts import DeadLetter, HotlineTranscript, TicketEvent, Topic
from hotline.pipeline import build_pipeline, open_embedded_bus, open_store
from hotline.settings import REPO_ROOT, Settings
from streams import EmbeddedBus, Stage
from streams.codec import encode
from streams.stage import Output


def _transcript(n: int) -> HotlineTranscript:
    return HotlineTranscript(call_id=f"call-{n}", received_at=datetime.now(UTC),
                             text=f"A{n % 9 + 1}区某小区门口垃圾堆积多日无人清理，臭味很大，请尽快处理。编号{n}")


def _dead_letters(settings: Settings) -> list[DeadLetter]:
    bus = open_embedded_bus(settings)
    try:
        return [DeadLetter.model_validate_json(r.value) for r in bus.records(Topic.DEAD_LETTER)]
    finally:
        bus.close()


def test_bad_messages_land_in_dead_letters_with_reasons_and_good_ones_still_flow(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    bus = open_embedded_bus(settings)
    limit = settings.limits.max_text_message_bytes
    bus.publish_raw(Topic.TRANSCRIPTS, b'{"call_id": "x", "text": ')
    bus.publish_raw(Topic.TRANSCRIPTS, json.dumps({"schema_id": "hotline.transcript/v9", "call_id": "y"}).encode())
    bus.publish_raw(Topic.TRANSCRIPTS, json.dumps({
        "schema_id": "hotline.transcript/v1", "call_id": "z", "received_at": "2026-11-22T10:00:00+08:00",
        "text": "   "}).encode())
    bus.publish_raw(Topic.TRANSCRIPTS, b"{" + b" " * limit + b"}")
    bus.publish(Topic.TRANSCRIPTS, _transcript(1))
    store = open_store(settings)
    bus.run_until_idle(build_pipeline(settings, store).stages)
    bus.close()

    letters = {letter.error_type: letter for letter in _dead_letters(settings)}
    assert set(letters) == {"malformed", "unknown_schema", "invalid", "oversized"}
    assert "JSON" in letters["malformed"].reason
    assert "hotline.transcript/v9" in letters["unknown_schema"].reason
    assert "text" in letters["invalid"].reason and letters["invalid"].details[0]["field"] == "text"
    assert str(limit) in letters["oversized"].reason
    assert letters["oversized"].payload_size == limit + 2
    assert all(letter.origin_topic == Topic.TRANSCRIPTS for letter in letters.values())
    assert store.source_event_counts() == {"call:call-1": 1}


def test_redelivered_decision_makes_no_second_ticket(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    bus = open_embedded_bus(settings)
    store = open_store(settings)
    stages = build_pipeline(settings, store).stages
    bus.publish(Topic.TRANSCRIPTS, _transcript(7))
    bus.publish(Topic.TRANSCRIPTS, _transcript(7))  # the same call delivered twice
    bus.run_until_idle(stages)
    assert store.source_event_counts() == {"call:call-7": 1}
    assert bus.count(Topic.DISPATCH_DECISIONS) == 2
    events = [TicketEvent.model_validate_json(r.value) for r in bus.records(Topic.TICKETS)]
    assert len({(e.ticket_id, e.transition_seq) for e in events}) == 1  # one ticket, its creation re-announced


def test_a_killed_process_resumes_from_the_journal_with_exactly_one_ticket_per_call(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    bus = open_embedded_bus(settings)
    calls = 300
    for n in range(calls):
        bus.publish(Topic.TRANSCRIPTS, _transcript(n))
    bus.close()
    env = os.environ | {"HOTLINE_DATA_DIR": str(settings.data_dir), "HOTLINE_SHARED_DIR": str(settings.shared_dir)}
    command = [sys.executable, "-m", "hotline.cli", "run"]
    worker = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = open_store(settings)
    deadline = time.monotonic() + 120
    while store.count() < 20 and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    killed_at = store.count()
    assert 0 < killed_at < calls, "the worker must be killed mid-stream"

    subprocess.run(command, env=env, cwd=REPO_ROOT, check=True, capture_output=True, timeout=300)
    counts = store.source_event_counts()
    assert len(counts) == calls
    assert set(counts.values()) == {1}


def test_encoded_messages_round_trip() -> None:
    transcript = _transcript(3)
    assert HotlineTranscript.model_validate_json(encode(transcript)) == transcript


@pytest.mark.parametrize("topic", list(Topic))
def test_every_topic_has_a_size_limit(topic: Topic) -> None:
    assert Settings().max_message_bytes(topic) > 0


def test_a_write_waits_out_another_process_holding_the_journal_longer_than_sqlites_default(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    bus = open_embedded_bus(settings)
    other = sqlite3.connect(settings.journal_path, isolation_level=None, check_same_thread=False)  # an ingest
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(6.0, lambda: other.execute("COMMIT"))  # sqlite3's own default gives up after 5 s
    release.start()
    try:
        bus.publish(Topic.TRANSCRIPTS, _transcript(1))
    finally:
        release.join()
        other.close()
    assert bus.count(Topic.TRANSCRIPTS) == 1
    bus.close()


class _InterruptedAfterCommit:
    """The journal connection, with Ctrl-C landing just as COMMIT returns (the signal is checked between bytecodes)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        cursor = self._connection.execute(sql, *args)
        if sql == "COMMIT":
            raise KeyboardInterrupt
        return cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def _stage(handle: Callable[[Any], list[Output]]) -> Stage:
    return Stage(name="classify", input_topic=Topic.TRANSCRIPTS, handle=handle)


def test_ctrl_c_during_commit_stays_an_interrupt_and_the_commit_stands(make_settings: Callable[..., Settings]) -> None:
    bus = open_embedded_bus(make_settings())
    bus.publish(Topic.TRANSCRIPTS, _transcript(1))
    real = bus._db
    bus._db = _InterruptedAfterCommit(real)  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        bus.step(_stage(lambda _message: []))
    bus._db = real
    assert bus.committed_offset("classify", Topic.TRANSCRIPTS) > 0 and not real.in_transaction
    bus.close()


@pytest.mark.parametrize("follow", [False, True])
def test_hotline_run_stops_cleanly_on_ctrl_c(follow: bool, make_settings: Callable[..., Settings],
                                            monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                            ) -> None:
    import hotline.cli
    import hotline.pipeline

    settings = make_settings()
    opened = open_embedded_bus(settings)
    for n in range(3):
        opened.publish(Topic.TRANSCRIPTS, _transcript(n))
    opened.close()
    seen: list[int] = []

    def handle(_message: Any) -> list[Output]:
        seen.append(1)
        if len(seen) == (4 if follow else 2):  # follow: once the catch-up run is over and a new call comes
            raise KeyboardInterrupt
        return []

    buses: list[EmbeddedBus] = []

    def opened_bus(settings: Settings) -> EmbeddedBus:
        buses.append(open_embedded_bus(settings))
        return buses[-1]

    def a_new_call() -> None:
        writer = open_embedded_bus(settings)
        writer.publish(Topic.TRANSCRIPTS, _transcript(9))
        writer.close()

    monkeypatch.setattr(hotline.pipeline, "open_embedded_bus", opened_bus)
    monkeypatch.setattr(hotline.pipeline, "build_pipeline", lambda _s, _st: hotline.pipeline.Pipeline([_stage(handle)]))
    monkeypatch.setattr(hotline.pipeline, "open_store", lambda _s: None)
    if follow:
        threading.Timer(1.0, a_new_call).start()
    try:
        with pytest.raises(typer.Exit) as stopped:
            hotline.cli._run_embedded(settings, follow=follow)
    except KeyboardInterrupt:  # uncaught, it would also stop pytest itself
        pytest.fail("Ctrl-C escaped `hotline run`")
    assert stopped.value.exit_code == 130 and "stopped (Ctrl-C)" in capsys.readouterr().out
    with pytest.raises(sqlite3.ProgrammingError):
        buses[0].count(Topic.TRANSCRIPTS)  # closed
    resumed = open_embedded_bus(settings)
    assert resumed.committed_offset("classify", Topic.TRANSCRIPTS) == (3 if follow else 1)
    resumed.close()
