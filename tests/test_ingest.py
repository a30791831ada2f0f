"""Reading transcripts from files: a plain text file is one message per line, with ids stable on re-reading; CSV
in UTF-8 or GBK, JSONL; times as files write them; a refused row dead-lettered masked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts import DeadLetter, HotlineTranscript, Topic
from hotline.ingest import IngestReport, ingest_frames, ingest_transcripts, read_transcripts
from streams import EmbeddedBus


def test_a_text_file_is_one_message_per_line(tmp_path: Path) -> None:
    path = tmp_path / "calls.txt"
    path.write_text("\ufeffA3区某小区门口垃圾堆放多日无人清理。\n\n咨询A市落户需要什么材料？\n", encoding="utf-8")
    first = list(read_transcripts(path))
    assert all(isinstance(t, HotlineTranscript) for t in first)
    assert [(t.call_id, t.text) for t in first if isinstance(t, HotlineTranscript)] == [
        ("calls-1", "A3区某小区门口垃圾堆放多日无人清理。"), ("calls-3", "咨询A市落户需要什么材料？")]
    again = [t.call_id for t in read_transcripts(path, limit=1) if isinstance(t, HotlineTranscript)]
    assert again == ["calls-1"]


def test_a_csv_row_without_text_names_the_row_and_field(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text("call_id,text\nc1,路灯不亮\nc2,\n", encoding="utf-8")
    read = list(read_transcripts(path))
    assert isinstance(read[0], HotlineTranscript) and read[1] == "calls.csv row 3: text: Field required"


def _dead_letters(bus: EmbeddedBus) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(record.value) for record in bus.records(Topic.DEAD_LETTER)]


def test_a_refused_row_is_dead_lettered_with_its_numbers_masked(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text("call_id,text,caller_phone\nabc 1,我叫张三电话13812345678身份证11010119900307123X,13812345678\n",
                    encoding="utf-8")
    bus = EmbeddedBus(tmp_path / "journal.sqlite3", max_bytes=lambda _topic: 10**7)
    assert ingest_transcripts(bus, path).rejected == 1
    [letter] = _dead_letters(bus)
    bus.close()
    payload = json.loads(letter.payload_b64)
    assert payload == {"call_id": "abc 1", "text": "我叫张三电话138****5678身份证110***********123X",
                       "caller_phone": "138****5678"}


@pytest.mark.parametrize("written,utc", [
    ("2019/01/08", "2019-01-07T16:00:00+00:00"),
    ("2019年1月8日", "2019-01-07T16:00:00+00:00"),
    ("2019.01.08 10:00:00", "2019-01-08T02:00:00+00:00"),
    ("2019/1/8 9:32", "2019-01-08T01:32:00+00:00"),
    ("2026-11-23 10:00", "2026-11-23T02:00:00+00:00"),
    ("2026-11-23 10:00:00", "2026-11-23T02:00:00+00:00"),
    ("2026-11-23T10:00:00", "2026-11-23T02:00:00+00:00"),
    ("2026-11-23T10:00:00+00:00", "2026-11-23T10:00:00+00:00"),
    ("2026-11-23T10:00:00Z", "2026-11-23T10:00:00+00:00"),
    ("1546300800", "2019-01-01T00:00:00+00:00"),
])
def test_received_times_in_the_usual_formats_are_city_time_unless_zoned(tmp_path: Path, written: str,
                                                                        utc: str) -> None:
    path = tmp_path / "calls.csv"
    path.write_text(f"留言编号,留言时间,留言详情\n1,{written},路灯不亮\n", encoding="utf-8")
    [transcript] = list(read_transcripts(path))
    assert isinstance(transcript, HotlineTranscript) and transcript.received_at.isoformat() == utc


def test_a_numeric_epoch_in_jsonl_is_a_time(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_text('{"call_id": 1, "text": "路灯不亮", "received_at": 1546300800}\n', encoding="utf-8")
    [transcript] = list(read_transcripts(path))
    assert isinstance(transcript, HotlineTranscript)
    assert transcript.received_at == datetime(2019, 1, 1, tzinfo=UTC)


def test_an_unreadable_time_refuses_its_row_only(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text("留言编号,留言时间,留言详情\n1,上周三,路灯不亮\n2,2019-13-45,噪音\n3,2019-01-08,积水\n",
                    encoding="utf-8")
    read = list(read_transcripts(path))
    assert read[:2] == ["calls.csv line 2: received_at: not a time: '上周三'",
                        "calls.csv line 3: received_at: not a time: '2019-13-45'"]
    assert isinstance(read[2], HotlineTranscript)
    bus = EmbeddedBus(tmp_path / "journal.sqlite3", max_bytes=lambda _topic: 10**7)
    report = ingest_transcripts(bus, path)
    letters = _dead_letters(bus)
    bus.close()
    assert (report.accepted, report.rejected) == (1, 2)
    assert letters[0].reason == "calls.csv line 2: received_at: not a time: '上周三'"


def test_a_gbk_csv_is_read(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_bytes("留言编号,留言主题,留言详情\n1,路灯不亮,A3区某路路灯不亮\n".encode("gbk"))
    [transcript] = list(read_transcripts(path))
    assert isinstance(transcript, HotlineTranscript) and transcript.text == "A3区某路路灯不亮"


def test_jsonl_with_a_bom_and_lines_that_are_not_objects(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_text('\ufeff{"call_id": "c1", "text": "路灯不亮"}\n["路灯不亮"]\n"路灯不亮"\n', encoding="utf-8")
    read = list(read_transcripts(path))
    assert isinstance(read[0], HotlineTranscript) and read[0].call_id == "c1"
    assert read[1:] == ["calls.jsonl line 2: a JSON object is needed, not list",
                        "calls.jsonl line 3: a JSON object is needed, not str"]
    bus = EmbeddedBus(tmp_path / "journal.sqlite3", max_bytes=lambda _topic: 10**7)
    report = ingest_transcripts(bus, path)
    bus.close()
    assert (report.accepted, report.rejected) == (1, 2)


def _file_broken_at(path: Path, good_rows: int) -> Path:
    """ASCII rows (so the GB18030 fallback reads them too), then a byte no encoding reads: the read fails part-way."""
    rows = "".join(f"c{i},streetlight {i} on Road 7 is out\n" for i in range(good_rows))
    path.write_bytes(b"call_id,text\n" + rows.encode() + b"c-bad,\xff\xff\n" + b"c-after,noise\n")
    return path


def test_a_file_that_fails_part_way_keeps_its_committed_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hotline.ingest

    monkeypatch.setattr(hotline.ingest, "CHUNK_ROWS", 100)
    path = _file_broken_at(tmp_path / "calls.csv", 2_000)
    bus = EmbeddedBus(tmp_path / "journal.sqlite3", max_bytes=lambda _topic: 10**7)
    report = IngestReport()
    with pytest.raises(UnicodeDecodeError):
        ingest_transcripts(bus, path, report=report)
    kept = bus.count(Topic.TRANSCRIPTS)
    bus.close()
    assert 0 < report.accepted < 2_000 and report.accepted % 100 == 0  # whole chunks only
    assert kept == report.accepted


@pytest.mark.usefixtures("restore_logging")
def test_the_ingest_command_says_how_many_rows_it_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from hotline.cli import app
    from hotline.settings import get_settings

    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    path = _file_broken_at(tmp_path / "calls.csv", 5_000)
    result = CliRunner().invoke(app, ["ingest", "transcripts", str(path)])
    get_settings.cache_clear()
    bus = EmbeddedBus(tmp_path / "data" / "journal.sqlite3", max_bytes=lambda _topic: 10**7)
    kept = bus.count(Topic.TRANSCRIPTS)
    bus.close()
    assert result.exit_code == 1 and kept > 0
    assert (f"calls.csv is neither UTF-8 nor GB18030 text; the {kept} transcripts accepted (0 rejected) before that "
            "point are kept") in " ".join(result.output.split())


def test_rows_are_committed_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hotline.ingest

    monkeypatch.setattr(hotline.ingest, "CHUNK_ROWS", 3)
    path = tmp_path / "calls.txt"
    path.write_text("".join(f"call {i}\n" for i in range(7)), encoding="utf-8")
    bus = EmbeddedBus(tmp_path / "journal.sqlite3", max_bytes=lambda _topic: 10**7)
    batches = 0
    opened = bus.batch

    @contextmanager
    def counted() -> Iterator[None]:
        nonlocal batches
        batches += 1
        with opened():
            yield

    monkeypatch.setattr(bus, "batch", counted)
    report = ingest_transcripts(bus, path)
    assert (report.accepted, bus.count(Topic.TRANSCRIPTS), batches) == (7, 7, 3)
    bus.close()


@pytest.mark.parametrize("interval", [0.0, -10.0, float("nan"), float("inf")])
def test_frames_need_a_positive_interval(tmp_path: Path, interval: float) -> None:
    """Frames of one camera at equal or falling times would be dead-lettered as stale by the camera stage."""
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8\xff")
    bus = EmbeddedBus(tmp_path / "journal.sqlite3", max_bytes=lambda _topic: 10**7)
    with pytest.raises(ValueError, match="interval must be a number of seconds above 0"):
        ingest_frames(bus, folder, "cam-A3-0001", interval)
    assert bus.count(Topic.FRAMES) == 0
    bus.close()


@pytest.mark.usefixtures("restore_logging")
def test_the_frames_command_refuses_an_interval_of_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from hotline.cli import app
    from hotline.settings import get_settings

    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8\xff")
    result = CliRunner().invoke(app, ["ingest", "frames", str(folder), "--camera", "cam-A3-0001", "--interval", "0"])
    get_settings.cache_clear()
    assert result.exit_code == 1 and "error: interval must be a number of seconds above 0" in result.output
    assert "Traceback" not in result.output
