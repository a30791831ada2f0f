"""`hotline deadletter list` and `replay` on the embedded journal (the Kafka side: test_kafka_path.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from contracts import AgentAssist, HotlineTranscript, Topic
from hotline.cli import deadletter_app
from hotline.settings import Settings
from streams import EmbeddedBus, processing
from streams.codec import Rejected
from streams.stage import Stage

from .test_processing import _echo, _Outage


def _bus(settings: Settings) -> EmbeddedBus:
    return EmbeddedBus(settings.journal_path, settings.max_message_bytes)


def _call(call_id: str) -> HotlineTranscript:
    return HotlineTranscript(call_id=call_id, received_at=datetime.now(UTC), text="A3区路灯不亮")


def _cli(*args: str) -> str:
    result = CliRunner().invoke(deadletter_app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_list_shows_the_newest_letters_and_the_count(settings: Settings) -> None:
    assert "0 dead letters in all" in _cli("list")
    assert not settings.journal_path.exists(), "listing must not create an empty journal"
    bus = _bus(settings)
    for n in range(30):
        bus.reject(Topic.TRANSCRIPTS, "ingest", b"{}", Rejected("invalid", f"letter number {n:02d}"))
    bus.close()
    shown = _cli("list", "--limit", "5")
    assert re.findall(r"letter number (\d+)", shown) == ["25", "26", "27", "28", "29"]
    assert "30 dead letters in all" in shown


def test_messages_dead_lettered_by_an_outage_are_replayed(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processing, "TRANSIENT_RETRY_SECONDS", 0.3)
    bus = _bus(settings)
    outage = _Outage(3600)
    stage = Stage("echo", Topic.TRANSCRIPTS, handle=outage)
    for call_id in ("c-1", "c-2"):
        bus.publish(Topic.TRANSCRIPTS, _call(call_id))
    bus.publish_raw(Topic.TRANSCRIPTS, b"not json", "bad")
    bus.run_until_idle([stage])
    assert bus.count(Topic.DEAD_LETTER) == 3 and bus.count(Topic.AGENT_ASSIST) == 0

    dry = _cli("replay", "--error-type", "processing_error")
    assert dry.count("replayable") == 2 and "dry run" in dry
    assert bus.lag(stage) == 0, "a dry run publishes nothing"

    assert "replayed 2 of 2" in _cli("replay", "--error-type", "processing_error", "--yes")
    outage.until = 0  # the database is back
    bus.run_until_idle([Stage("echo", Topic.TRANSCRIPTS, handle=_echo)])
    calls = sorted(AgentAssist.model_validate_json(r.value).call_id for r in bus.records(Topic.AGENT_ASSIST))
    assert calls == ["c-1", "c-2"]
    bus.close()


def test_replay_by_id_and_what_cannot_be_replayed(settings: Settings) -> None:
    bus = _bus(settings)
    bus.reject(Topic.TRANSCRIPTS, "classify", b'{"a": 1}', Rejected("processing_error", "one"), key="k1")
    bus.reject(Topic.FRAMES, "detect", b"\x00" * 10, Rejected("not_an_image", "two"), original=b"\x00" * 99)
    bus.reject(Topic.TRANSCRIPTS, "ingest", b'{"text": ""}', Rejected("invalid", "three"))
    letters = re.findall(r"([0-9a-f]{32}) \[", _cli("list"))
    assert len(letters) == 3
    assert "cannot replay: only the first 10 of 99 bytes" in _cli("replay", letters[1], "--yes")
    assert "mend the file and ingest it again" in _cli("replay", letters[2], "--yes")
    assert "replayed 1 of 1" in _cli("replay", letters[0], "--yes")
    (record,) = bus.records(Topic.TRANSCRIPTS)
    assert (record.key, record.value) == ("k1", b'{"a": 1}')
    assert "replayed already" in _cli("replay", letters[0], "--yes")  # a filter run twice does not repeat it
    assert "replayed 1 of 1" in _cli("replay", letters[0], "--yes", "--again")
    refused = CliRunner().invoke(deadletter_app, ["replay"])
    assert refused.exit_code != 0
    bus.close()
