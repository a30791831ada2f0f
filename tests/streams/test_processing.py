"""process_raw and the codec on bad input and failing stages: poison records, outages, masked dead letters."""

from __future__ import annotations

import errno
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from contracts import (
    AgentAssist,
    CategoryScore,
    Channel,
    ClassifiedCall,
    DeadLetter,
    HotlineTranscript,
    Message,
    Topic,
)
from streams import EmbeddedBus, processing
from streams.codec import Rejected, dead_letter, decode, encode
from streams.processing import is_transient, process_raw, process_raw_batch
from streams.stage import Output, Stage

LIMIT = 256 * 1024
DEEP = b'{"schema_id":"hotline.transcript/v1","x":' + b"[" * 50000 + b"]" * 50000 + b"}"
PHONE, RESIDENT_ID = "13812345678", "11010519491231002X"


def _call(call_id: str = "c-1") -> HotlineTranscript:
    return HotlineTranscript(call_id=call_id, received_at=datetime.now(UTC), text="A3区路灯不亮")


def _echo(message: Message) -> Sequence[Output]:
    assert isinstance(message, HotlineTranscript)
    return [Output(Topic.AGENT_ASSIST, AgentAssist(call_id=message.call_id, category=None, confidence=0.0,
                                                   top_k=[], classifier="echo"))]


def _stage(handle: Callable[[Message], Sequence[Output]] = _echo) -> Stage:
    return Stage("echo", Topic.TRANSCRIPTS, handle=handle)


def _letter(outputs: Sequence[Output]) -> DeadLetter:
    (output,) = outputs
    assert output.topic is Topic.DEAD_LETTER and isinstance(output.value, DeadLetter)
    return output.value


def test_deeply_nested_json_is_malformed_not_a_crash() -> None:
    assert len(DEEP) < LIMIT
    with pytest.raises(Rejected) as info:
        decode(Topic.TRANSCRIPTS, DEEP, LIMIT)
    assert info.value.error_type == "malformed" and "nested" in info.value.reason
    assert _letter(process_raw(_stage(), DEEP, "k", LIMIT)).error_type == "malformed"


def test_an_unexpected_decoding_error_is_a_processing_error_dead_letter(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(topic: Topic, raw: bytes, max_bytes: int) -> Message:
        raise KeyError("codec bug")

    monkeypatch.setattr(processing, "decode", broken)
    letter = _letter(process_raw(_stage(), encode(_call()), "k", LIMIT))
    assert letter.error_type == "processing_error" and "codec bug" in letter.reason
    batching = Stage("batch", Topic.TRANSCRIPTS, handle=_echo, handle_batch=lambda ms: [_echo(m) for m in ms],
                     max_batch=4)
    (outputs,) = process_raw_batch(batching, [(encode(_call()), "k")], LIMIT)
    assert _letter(outputs).error_type == "processing_error"


def test_a_poison_record_on_the_embedded_journal_neither_crashes_nor_stalls_the_stage(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path / "journal.sqlite3", lambda topic: LIMIT)
    bus.publish_raw(Topic.TRANSCRIPTS, DEEP, "k")
    bus.publish(Topic.TRANSCRIPTS, _call("good-1"))
    stage = _stage()
    assert bus.run_until_idle([stage]) == 2
    assert bus.lag(stage) == 0
    assert [AgentAssist.model_validate_json(r.value).call_id for r in bus.records(Topic.AGENT_ASSIST)] == ["good-1"]
    (record,) = bus.records(Topic.DEAD_LETTER)
    assert DeadLetter.model_validate_json(record.value).error_type == "malformed"
    bus.close()


class _Outage:
    """A stage whose database is away for `seconds` (from its first call), then back."""

    def __init__(self, seconds: float, error: Exception | None = None) -> None:
        self.seconds = seconds
        self.error = error or OperationalError("INSERT ...", {}, Exception("server closed the connection"))
        self.until: float | None = None
        self.calls = 0

    def __call__(self, message: Message) -> Sequence[Output]:
        self.calls += 1
        self.until = self.until or time.monotonic() + self.seconds
        if time.monotonic() < self.until:
            raise self.error
        return _echo(message)


def test_a_short_database_outage_is_waited_out_not_dead_lettered() -> None:
    outage = _Outage(0.8)
    started = time.monotonic()
    (output,) = process_raw(_stage(outage), encode(_call()), "k", LIMIT)
    assert output.topic is Topic.AGENT_ASSIST
    assert outage.calls > 3  # more than the three tries a deterministic error gets
    assert 0.8 <= time.monotonic() - started < 5


def test_an_outage_longer_than_the_retry_budget_dead_letters_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processing, "TRANSIENT_RETRY_SECONDS", 0.5)
    letter = _letter(process_raw(_stage(_Outage(60)), encode(_call()), "k", LIMIT))
    assert letter.error_type == "processing_error" and "infrastructure" in letter.reason


def test_a_deterministic_error_is_dead_lettered_after_three_tries() -> None:
    outage = _Outage(60, ValueError("a stage bug"))
    letter = _letter(process_raw(_stage(outage), encode(_call()), "k", LIMIT))
    assert outage.calls == 3 and "failed 3 times" in letter.reason


class _PgError(Exception):
    """A driver error as psycopg raises it: with its SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("error,transient", [
    (OperationalError("SELECT 1", {}, Exception("gone")), True),
    (OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked")), True),
    (OperationalError("SELECT x", {}, sqlite3.OperationalError("no such column: x")), False),
    (OperationalError("SELECT 1", {}, _PgError("08006")), True),  # connection failure
    (OperationalError("SELECT 1", {}, _PgError("57P01")), True),  # admin shutdown (a failover)
    (OperationalError("SELECT 1", {}, _PgError("54000")), False),  # program limit exceeded: a bad message
    (ConnectionResetError(), True),
    (TimeoutError(), True),
    (OSError(errno.ECONNREFUSED, "refused"), True),
    (OSError(errno.ENOENT, "no such file"), False),
    (FileNotFoundError("model.onnx"), False),
    (ValueError("bug"), False),
])
def test_which_errors_are_transient(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_an_error_raised_from_an_outage_is_transient() -> None:
    try:
        try:
            raise ConnectionRefusedError("db")
        except ConnectionRefusedError as cause:
            raise RuntimeError("could not save the ticket") from cause
    except RuntimeError as wrapped:
        assert is_transient(wrapped)


def _failing(message: Message) -> Sequence[Output]:
    raise RuntimeError("classifier unavailable")


@pytest.mark.parametrize("drop", [None, "received_at"])
def test_dead_letters_keep_phone_and_id_numbers_masked(drop: str | None) -> None:
    document = {"schema_id": "hotline.transcript/v1", "call_id": "c1", "received_at": "2026-01-01T08:00:00+08:00",
                "caller_phone": PHONE, "text": f"我叫张三，身份证{RESIDENT_ID}，电话{PHONE}，小区垃圾没人清"}
    document.pop(drop or "", None)  # without received_at the message is invalid; with it the stage fails
    raw = json.dumps(document, ensure_ascii=False).encode()
    letter = _letter(process_raw(_stage(_failing), raw, None, LIMIT, attempts=1))
    payload = bytes(letter.payload_b64).decode()
    assert PHONE not in payload and RESIDENT_ID not in payload and "138****5678" in payload
    assert letter.payload_masked and not letter.payload_truncated
    assert letter.payload_size == len(raw) and letter.payload_sha256 == hashlib.sha256(raw).hexdigest()


def test_a_dead_lettered_contract_message_replays_as_itself_with_its_numbers_intact() -> None:
    """Masking the JSON text would have turned a confidence of 0.24002297869455144 into 0.****…5144: not JSON."""
    scores = [CategoryScore(label="城乡建设", score=0.24002297869455144)]
    call = ClassifiedCall(call_id="2019010800012345", received_at=datetime.now(UTC), channel=Channel.PHONE,
                          text=f"电话{PHONE}，路灯不亮", category="城乡建设", confidence=0.24002297869455144,
                          top_k=scores, classifier="m@1", embedding=[0.1234567890123456, -0.9876543210987654])
    raw = encode(call).replace(b"138****5678", PHONE.encode())  # as a producer that bypassed the contract sent it
    letter = dead_letter(str(Topic.CLASSIFIED_CALLS), "dispatch-calls", raw, Rejected("processing_error", "x"))
    replayed = decode(Topic.CLASSIFIED_CALLS, bytes(letter.payload_b64), LIMIT)
    assert replayed == call and PHONE.encode() not in bytes(letter.payload_b64)


def test_json_that_is_not_a_contract_keeps_its_numbers_and_images_while_its_words_are_masked() -> None:
    image = "MTM4MTIzNDU2NzgxMzgxMjM0NTY3OA=="  # base64 whose digits look like a phone number
    raw = json.dumps({"schema_id": "camera.frame/v1", "frame_id": "f1", "score": 0.13812345678901,
                      "image": image, "note": f"电话{PHONE}"}, ensure_ascii=False).encode()
    letter = dead_letter(str(Topic.FRAMES), "detect", raw, Rejected("invalid", "camera_id: missing"))
    document = json.loads(bytes(letter.payload_b64))
    assert document["score"] == 0.13812345678901 and document["image"] == image
    assert document["note"] == "电话138****5678"


def test_a_payload_cut_at_the_limit_says_so_and_keeps_no_number_half_in_clear() -> None:
    from streams.codec import DEAD_LETTER_PAYLOAD_LIMIT

    # full-width digits shrink when masked; the cut must still be flagged, and no phone kept partly in clear
    filler = "１３８１２３４５６７８，" * (DEAD_LETTER_PAYLOAD_LIMIT // 30)
    raw = (filler + "x" * DEAD_LETTER_PAYLOAD_LIMIT).encode()[:DEAD_LETTER_PAYLOAD_LIMIT + 40] + PHONE.encode()
    letter = dead_letter("hotline.transcripts", "ingest", raw, Rejected("oversized", "too big"))
    kept = bytes(letter.payload_b64)
    assert letter.payload_truncated and len(kept) <= DEAD_LETTER_PAYLOAD_LIMIT
    assert PHONE[:7].encode() not in kept and "１３８１２３４".encode() not in kept


def test_a_payload_that_is_not_utf8_is_masked_too() -> None:
    raw = f"电话{PHONE}，路灯不亮".encode("gbk")
    letter = _letter(process_raw(_stage(), raw, None, LIMIT))
    assert letter.error_type == "malformed"
    assert PHONE.encode() not in bytes(letter.payload_b64) and "路灯不亮".encode("gbk") in bytes(letter.payload_b64)


def test_a_dead_letter_written_before_masking_still_reads() -> None:
    document = json.loads(dead_letter("hotline.transcripts", "classify", b"x", Rejected("malformed", "x"))
                          .model_dump_json())
    del document["payload_masked"]
    assert DeadLetter.model_validate(document).payload_masked is False


def test_a_dead_letter_of_a_payload_prefix_records_the_whole_payload() -> None:
    whole = b"\x00video" * 10_000
    letter = dead_letter("camera.frames", "ingest", whole[:4096], Rejected("not_an_image", "x"), original=whole)
    assert bytes(letter.payload_b64) == whole[:4096] and letter.payload_truncated
    assert letter.payload_size == len(whole) and letter.payload_sha256 == hashlib.sha256(whole).hexdigest()


def test_ingest_dead_letters_a_non_image_file_with_its_real_size_and_hash(tmp_path: Path) -> None:
    from hotline.ingest import ingest_frames

    frames = tmp_path / "frames"
    frames.mkdir()
    video = frames / "clip.mp4"
    video.write_bytes(b"\x00\x01mp4" * 5000)
    bus = EmbeddedBus(tmp_path / "journal.sqlite3", lambda topic: LIMIT)
    assert ingest_frames(bus, frames, "cam-A3-0001").rejected == 1
    (record,) = bus.records(Topic.DEAD_LETTER)
    letter = DeadLetter.model_validate_json(record.value)
    data = video.read_bytes()
    assert letter.payload_size == len(data) and letter.payload_sha256 == hashlib.sha256(data).hexdigest()
    assert letter.payload_truncated and bytes(letter.payload_b64) == data[:4096]
    bus.close()
