"""Reading transcripts from files: a plain text file is one message per line, with ids stable on re-reading."""

from __future__ import annotations

from pathlib import Path

from contracts import HotlineTranscript
from hotline.ingest import read_transcripts


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
