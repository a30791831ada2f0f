"""The Kafka path against a real Kafka-protocol broker (Tansu): faust workers, failover, dead letters.

Each test uses its own topic prefix and consumer group on one module-wide broker; worker processes are
`python -m hotline.worker`, configured through HOTLINE_... environment variables, and are always stopped.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from contracts import CameraFrame, Channel, DeadLetter, HotlineTranscript, TicketEvent, Topic
from hotline.ingest import ingest_frames
from hotline.settings import REPO_ROOT, Settings
from streams.broker import TansuBroker
from streams.kafka import KafkaTransport, ensure_topics, read_topic
from tickets import TicketStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

UNLABELED_CSV = REPO_ROOT.parent / "shared" / "data" / "hotline" / "unlabeled_messages.csv"
SESSION_TIMEOUT_MS = 6000


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log") as running:
        yield running


class Workers:
    """`python -m hotline.worker` processes; every one is stopped at teardown, whatever happened."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, env: dict[str, str], module: str = "hotline.worker") -> subprocess.Popen[bytes]:
        with self.log_path(name).open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", module], cwd=REPO_ROOT, env=env,
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            )
        self.processes[name] = process
        return process

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"worker-{name}.log"

    def events(self, name: str, event: str) -> list[dict[str, Any]]:
        """The worker's structured (JSON) log lines with this event name."""
        found = []
        for line in self.log_path(name).read_text("utf-8", "replace").splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                record = json.loads(line)
                if record.get("event") == event:
                    found.append(record)
        return found

    def assigned_transcripts(self, name: str, prefix: str) -> list[int]:
        """The transcript partitions in the worker's latest assignment."""
        assignments = self.events(name, "partitions_assigned")
        if not assignments:
            return []
        return list(assignments[-1]["partitions"].get(f"{prefix}{Topic.TRANSCRIPTS.value}", []))

    def check_alive(self, *names: str) -> None:
        for name in names:
            code = self.processes[name].poll()
            if code is not None:
                raise AssertionError(f"worker {name} exited with {code}:\n{self.tail(name)}")

    def tail(self, name: str, limit: int = 3000) -> str:
        return self.log_path(name).read_text("utf-8", "replace")[-limit:]

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            print(f"--- worker {name} (exit {process.returncode}) ---\n{self.tail(name)}")


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


def _kafka_settings(make_settings: Callable[..., Settings], broker: TansuBroker, tmp_path: Path,
                    **overrides: Any) -> Settings:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    return make_settings(
        transport="kafka",
        database_url=f"sqlite:///{tmp_path / 'tickets.sqlite3'}",
        kafka={"bootstrap_servers": broker.bootstrap_servers, "topic_prefix": prefix,
               "app_id": f"hotline-{prefix.rstrip('.')}", "session_timeout_ms": SESSION_TIMEOUT_MS,
               "producer_max_batch_size": 1},
        **overrides,
    )


def _worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("HOTLINE_")}
    env.update({
        "HOTLINE_TRANSPORT": "kafka",
        "HOTLINE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "HOTLINE_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "HOTLINE_KAFKA__APP_ID": settings.kafka.app_id,
        "HOTLINE_KAFKA__SESSION_TIMEOUT_MS": str(settings.kafka.session_timeout_ms),
        "HOTLINE_KAFKA__PRODUCER_MAX_BATCH_SIZE": str(settings.kafka.producer_max_batch_size),
        "HOTLINE_DATA_DIR": str(settings.data_dir),
        "HOTLINE_SHARED_DIR": str(settings.shared_dir),
        "HOTLINE_DATABASE_URL": settings.resolved_database_url,
        "HOTLINE_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str,
              check: Callable[[], None] = lambda: None) -> float:
    """Poll until `condition()`; returns the seconds it took. `check` may raise (e.g. a worker died)."""
    started = time.monotonic()
    while not condition():
        check()
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - started


def _transcripts(count: int) -> list[HotlineTranscript]:
    """Real citizen messages (title + details) from the unlabeled set, as calls."""
    calls: list[HotlineTranscript] = []
    with UNLABELED_CSV.open(encoding="utf-8-sig", newline="") as rows:
        for row in csv.DictReader(rows):
            text = (row["留言详情"] or "").strip()
            if not text or len(text) > 5000:
                continue
            calls.append(HotlineTranscript(
                call_id=f"call-{row['留言编号']}", received_at=datetime.now(UTC),
                channel=Channel.WEB, title=(row["留言主题"] or "")[:500] or None, text=text,
            ))
            if len(calls) == count:
                return calls
    raise AssertionError(f"{UNLABELED_CSV} has fewer than {count} usable rows")


def _ticket_events(settings: Settings) -> list[TicketEvent]:
    return [TicketEvent.model_validate_json(value)
            for _, value in read_topic(settings.kafka, settings.kafka_topic, Topic.TICKETS, timeout_s=10)]


def test_two_workers_one_killed_every_call_makes_exactly_one_ticket(
    make_settings: Callable[..., Settings], broker: TansuBroker, workers: Workers, tmp_path: Path
) -> None:
    settings = _kafka_settings(make_settings, broker, tmp_path)
    prefix = settings.kafka.topic_prefix
    ensure_topics(settings.kafka, settings.kafka_topic, settings.max_message_bytes)
    store = TicketStore(settings.resolved_database_url)  # migrated once, before the workers share it
    calls = _transcripts(60)
    expected = {f"call:{call.call_id}" for call in calls}
    env = _worker_env(settings)

    started = time.monotonic()
    workers.start("a", env)
    workers.start("b", env)
    joined = _wait_for(
        lambda: bool(workers.assigned_transcripts("a", prefix) and workers.assigned_transcripts("b", prefix)),
        90, "both workers to hold transcript partitions", lambda: workers.check_alive("a", "b"))

    transport = KafkaTransport(settings.kafka, settings.kafka_topic)
    try:
        for call in calls[:40]:
            transport.publish(Topic.TRANSCRIPTS, call)
        transport.flush()
        _wait_for(lambda: store.count() >= 3, 60, "the first tickets", lambda: workers.check_alive("a", "b"))
        workers.processes["a"].send_signal(signal.SIGKILL)  # mid-stream: no commit, no goodbye to the group
        workers.processes["a"].wait(timeout=10)
        tickets_at_kill = store.count()
        for call in calls[40:]:
            transport.publish(Topic.TRANSCRIPTS, call)
        transport.flush()
    finally:
        transport.close()
    workers.start("c", env)

    took = _wait_for(lambda: store.count() >= len(calls), 120, "one ticket per call",
                     lambda: workers.check_alive("b", "c"))
    # The group heals: the replacement is given a share of the partitions.
    healed = _wait_for(lambda: bool(workers.assigned_transcripts("c", prefix)), 60, "the replacement to join",
                       lambda: workers.check_alive("b", "c"))
    print(f"workers joined after {joined:.1f} s; {tickets_at_kill} tickets at the kill; all {len(calls)} "
          f"{took:.1f} s after starting the replacement, which joined {healed:.1f} s later; "
          f"{time.monotonic() - started:.1f} s in all")

    counts = store.source_event_counts()
    assert set(counts) == expected
    assert all(n == 1 for n in counts.values()), {k: n for k, n in counts.items() if n != 1}
    assert store.count() == len(calls)

    # Every ticket's creation is announced on the tickets topic. A redelivered decision announces it again
    # (same transition_seq), which is what repairs a worker killed between the insert and the send.
    ticket_ids = {ticket.id for ticket in store.list(limit=1000)}
    events: list[TicketEvent] = []

    def announced() -> set[str]:
        return {event.ticket_id for event in events if event.transition == "create"}

    def events_arrived() -> bool:
        events[:] = _ticket_events(settings)
        return announced() >= ticket_ids

    _wait_for(events_arrived, 30, "the ticket events")
    assert {event.source_event_id for event in events} <= expected
    assert announced() == ticket_ids
    creations = {(e.ticket_id, e.transition_seq) for e in events if e.transition == "create"}
    assert len(creations) == len(ticket_ids), "a ticket was created twice"


def test_bad_messages_are_dead_lettered_on_the_kafka_path(
    make_settings: Callable[..., Settings], broker: TansuBroker, workers: Workers, tmp_path: Path
) -> None:
    limit = 4096
    settings = _kafka_settings(make_settings, broker, tmp_path, limits={"max_text_message_bytes": limit})
    ensure_topics(settings.kafka, settings.kafka_topic, settings.max_message_bytes)
    store = TicketStore(settings.resolved_database_url)
    good = _transcripts(1)[0]
    oversized = HotlineTranscript(call_id="too-long", received_at=datetime.now(UTC),
                                  text="小区门口垃圾堆积多日无人清理，" * 200)
    bad: dict[str, bytes] = {
        "malformed": b'{"call_id": "x", "text": ',
        "unknown_schema": json.dumps({"schema_id": "hotline.transcript/v9", "call_id": "y"}).encode(),
        "invalid": json.dumps({"schema_id": "hotline.transcript/v1", "call_id": "z",
                               "received_at": "2026-11-22T10:00:00+08:00", "text": "   "}).encode(),
        "oversized": oversized.model_dump_json().encode(),
        # a poison record: json.loads raises RecursionError on it
        "deep": b'{"schema_id":"hotline.transcript/v1","x":' + b"[" * 1500 + b"]" * 1500 + b"}",
    }
    expected_type = {name: "malformed" if name == "deep" else name for name in bad}
    assert len(bad["oversized"]) > limit and len(bad["deep"]) < limit
    workers.start("solo", _worker_env(settings, HOTLINE_LIMITS__MAX_TEXT_MESSAGE_BYTES=str(limit)))

    transport = KafkaTransport(settings.kafka, settings.kafka_topic)
    try:
        for name, raw in bad.items():
            transport.publish_raw(Topic.TRANSCRIPTS, raw, key=f"bad-{name}")
        transport.publish(Topic.TRANSCRIPTS, good)
        transport.flush()
    finally:
        transport.close()

    letters: dict[str, DeadLetter] = {}

    def all_dead_lettered() -> bool:
        for _, value in read_topic(settings.kafka, settings.kafka_topic, Topic.DEAD_LETTER, timeout_s=5):
            letter = DeadLetter.model_validate_json(value)
            letters[letter.key_text or ""] = letter
        return len(letters) >= len(bad)

    _wait_for(all_dead_lettered, 90, "the dead letters", lambda: workers.check_alive("solo"))
    _wait_for(lambda: store.count() >= 1, 60, "the good call's ticket", lambda: workers.check_alive("solo"))

    assert set(letters) == {f"bad-{name}" for name in bad}
    for name, raw in bad.items():
        letter = letters[f"bad-{name}"]
        assert letter.error_type == expected_type[name]
        assert letter.origin_topic == Topic.TRANSCRIPTS.value and letter.stage == "classify"
        assert letter.payload_sha256 == hashlib.sha256(raw).hexdigest() and letter.payload_size == len(raw)
        assert letter.payload_b64 == raw  # kept whole: all of these are under the dead-letter payload limit
    assert "JSON" in letters["bad-malformed"].reason
    assert "hotline.transcript/v9" in letters["bad-unknown_schema"].reason
    assert "text is blank" in letters["bad-invalid"].reason
    assert letters["bad-invalid"].details[0]["field"] == "text"
    assert f"{len(bad['oversized'])} bytes exceeds the {limit}-byte limit" in letters["bad-oversized"].reason
    assert store.source_event_counts() == {f"call:{good.call_id}": 1}
    events: list[TicketEvent] = []

    def event_arrived() -> bool:
        events[:] = _ticket_events(settings)
        return bool(events)

    _wait_for(event_arrived, 30, "the ticket event")
    assert [event.source_event_id for event in events if event.transition == "create"] == [f"call:{good.call_id}"]
    assert {event.source_event_id for event in events} == {f"call:{good.call_id}"}


def test_camera_frames_are_batched_into_events_and_tickets_on_the_kafka_path(
    make_settings: Callable[..., Settings], broker: TansuBroker, workers: Workers, tmp_path: Path
) -> None:
    settings = _kafka_settings(make_settings, broker, tmp_path)
    ensure_topics(settings.kafka, settings.kafka_topic, settings.max_message_bytes)
    store = TicketStore(settings.resolved_database_url)
    workers.start("solo", _worker_env(settings, HOTLINE_VISION__BATCH_SIZE="4"))
    garbage = REPO_ROOT.parent / "shared" / "data" / "vision" / "garbage" / "images"
    transport = KafkaTransport(settings.kafka, settings.kafka_topic)
    try:
        report = ingest_frames(transport, garbage, "cam-A3-0001", limit=12)  # the demo's frames
        stranger = CameraFrame(frame_id="cam-nowhere.1", camera_id="cam-nowhere", captured_at=datetime.now(UTC),
                               image=base64.b64encode((garbage / sorted(os.listdir(garbage))[0]).read_bytes()))
        transport.publish(Topic.FRAMES, stranger)
        transport.flush()
    finally:
        transport.close()
    assert report.accepted == 12

    letters: list[DeadLetter] = []

    def dead_lettered() -> bool:
        letters[:] = [DeadLetter.model_validate_json(value) for _, value in
                      read_topic(settings.kafka, settings.kafka_topic, Topic.DEAD_LETTER, timeout_s=5)]
        return bool(letters)

    _wait_for(dead_lettered, 90, "the unknown camera's dead letter", lambda: workers.check_alive("solo"))
    _wait_for(lambda: store.count() >= 2, 90, "the camera tickets", lambda: workers.check_alive("solo"))
    assert [(letter.error_type, letter.stage) for letter in letters] == [("unknown_camera", "detect")]
    tickets = store.source_event_counts()
    assert len(tickets) == 2 and all(count == 1 for count in tickets.values())
    assert all(source.startswith("camera-event:cam-A3-0001.") for source in tickets), tickets


def _assist_call_ids(settings: Settings) -> list[str]:
    return [json.loads(value)["call_id"] for _, value in
            read_topic(settings.kafka, settings.kafka_topic, Topic.AGENT_ASSIST, timeout_s=5)]


def test_a_record_whose_outputs_cannot_be_sent_stops_the_worker_and_is_redelivered(
    make_settings: Callable[..., Settings], broker: TansuBroker, workers: Workers, tmp_path: Path
) -> None:
    settings = _kafka_settings(make_settings, broker, tmp_path)
    ensure_topics(settings.kafka, settings.kafka_topic, settings.max_message_bytes)
    transport = KafkaTransport(settings.kafka, settings.kafka_topic)
    try:
        for call_id in ("big-1", "good-1"):  # one key: one partition, in this order
            transport.publish(Topic.TRANSCRIPTS, HotlineTranscript(
                call_id=call_id, received_at=datetime.now(UTC), text="A3区路灯不亮"), key="k")
        transport.flush()
    finally:
        transport.close()
    env = _worker_env(settings)
    echo = "tests.streams.kafka_echo_worker"

    first = workers.start("first", env, module=echo)  # big-1's output is larger than any request may be
    try:
        first.wait(timeout=120)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker went on past a record:\n{workers.tail('first')}") from None
    assert first.returncode != 0
    assert workers.events("first", "kafka_send_gave_up")
    assert [e["offset"] for e in workers.events("first", "stage_record_not_done")] == [0]
    assert _assist_call_ids(settings) == []

    workers.start("second", env | {"ECHO_SMALL": "1"}, module=echo)  # the next worker gets big-1 again
    calls: list[str] = []

    def both_echoed() -> bool:
        calls[:] = _assist_call_ids(settings)
        return {"big-1", "good-1"} <= set(calls)

    _wait_for(both_echoed, 90, "big-1 redelivered to the next worker", lambda: workers.check_alive("second"))
    assert calls == ["big-1", "good-1"]


def test_deadletter_list_and_replay_read_the_kafka_topic(
    make_settings: Callable[..., Settings], broker: TansuBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from hotline.cli import deadletter_app
    from hotline.settings import get_settings
    from streams.codec import Rejected

    settings = _kafka_settings(make_settings, broker, tmp_path)
    ensure_topics(settings.kafka, settings.kafka_topic, settings.max_message_bytes)
    for name, value in _worker_env(settings).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    call = HotlineTranscript(call_id="lost-1", received_at=datetime.now(UTC), text="A3区路灯不亮")
    transport = KafkaTransport(settings.kafka, settings.kafka_topic)
    try:
        transport.reject(Topic.TRANSCRIPTS, "ingest", b"not json", Rejected("malformed", "first"))
        transport.reject(Topic.TRANSCRIPTS, "ticketing", call.model_dump_json().encode(),
                         Rejected("processing_error", "second: the database was away"), key="A3")
        transport.reject(Topic.TRANSCRIPTS, "ingest", b"[]", Rejected("malformed", "third"))
        transport.flush()
    finally:
        transport.close()

    def cli(*args: str) -> str:
        result = CliRunner().invoke(deadletter_app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    try:
        listed = cli("list", "--limit", "2")
        assert "second" in listed and "third" in listed and "first" not in listed
        assert "3 dead letters in all" in listed
        assert not settings.journal_path.exists(), "the Kafka transport must not open the embedded journal"
        assert "dry run" in cli("replay", "--stage", "ticketing")
        assert "replayed 1 of 1" in cli("replay", "--stage", "ticketing", "--error-type", "processing_error", "--yes")
    finally:
        get_settings.cache_clear()
    replayed = read_topic(settings.kafka, settings.kafka_topic, Topic.TRANSCRIPTS, timeout_s=10)
    assert [(key, HotlineTranscript.model_validate_json(value)) for key, value in replayed] == [("A3", call)]
