"""The embedded transport: dead letters with reasons, durable journal, exactly one ticket per input."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from contracts import DeadLetter, HotlineTranscript, TicketEvent, Topic
from hotline.pipeline import build_pipeline, open_embedded_bus, open_store
from hotline.settings import REPO_ROOT, Settings
from streams.codec import encode


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
