"""Turning files into topic messages: transcripts from CSV/JSONL/text, frames from a folder of images.

A row that does not make a valid message is kept in the dead-letter topic with the row number and reason.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from classifiers.data import text_encoding
from contracts import CameraFrame, HotlineTranscript, Topic, city_time, mask_phone
from streams import Rejected, Transport
from streams.codec import _error_details, mask_json_strings, summarise

# Column names accepted for each field: our own, the 泰迪杯 message-board export, and messages_train.csv.
_COLUMNS = {
    "call_id": ("call_id", "留言编号", "id"),
    "received_at": ("received_at", "留言时间"),
    "title": ("title", "留言主题"),
    "text": ("text", "留言详情"),
    "channel": ("channel",),
    "caller_phone": ("caller_phone",),
    "district_hint": ("district_hint",),
}
# Rows per transaction: a huge file must not hold the journal's write lock (and stall `run --follow`) for its whole
# length, and each chunk's rows are kept once it commits.
CHUNK_ROWS = 1000
IMAGE_SUFFIXES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
# 2019-01-08, 2019/1/8 9:32, 2019.01.08 10:00:00, 2019年1月8日 10:00, 2026-11-23T10:00:00+08:00
_TIME = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T]*(\d{1,2})[:时](\d{1,2})分?(?::(\d{1,2}))?"
                   r"(\.\d{1,6})?)?\s*(Z|[+-]\d{2}:?\d{2})?")


@dataclass
class IngestReport:
    accepted: int = 0
    rejected: int = 0


def ingest_transcripts(transport: Transport, path: Path, limit: int | None = None, channel: str = "web",
                       report: IngestReport | None = None) -> IngestReport:
    """Publish a file's transcripts, committed CHUNK_ROWS rows at a time. `report` counts committed rows only: when
    reading or publishing fails part-way, the chunks before are kept and counted in it, the failing one is not."""
    report = report if report is not None else IngestReport()
    rows = _rows(path, limit)
    while True:
        chunk = IngestReport()
        with transport.batch():
            _ingest_rows(transport, path, islice(rows, CHUNK_ROWS), channel, chunk)
        report.accepted += chunk.accepted
        report.rejected += chunk.rejected
        if chunk.accepted + chunk.rejected < CHUNK_ROWS:
            return report


def _ingest_rows(transport: Transport, path: Path, rows: Iterable[tuple[int, Any]], channel: str,
                 report: IngestReport) -> None:
    for line_no, row in rows:
        try:
            if isinstance(row, Rejected):
                raise row
            transcript = HotlineTranscript.model_validate(_transcript_fields(row, channel))
        except ValidationError as exc:
            transport.reject(Topic.TRANSCRIPTS, "ingest", _masked_payload(row),
                             Rejected("invalid", f"{path.name} row {line_no}: {summarise(exc)}", _error_details(exc)))
            report.rejected += 1
            continue
        except Rejected as rejection:
            rejection.reason = f"{path.name} line {line_no}: {rejection.reason}"
            payload = str(row).encode() if isinstance(row, Rejected) else _masked_payload(row)
            transport.reject(Topic.TRANSCRIPTS, "ingest", payload, rejection)
            report.rejected += 1
            continue
        transport.publish(Topic.TRANSCRIPTS, transcript)
        report.accepted += 1


def _masked_payload(row: dict[str, Any]) -> bytes:
    """The refused row as JSON, with phone and ID numbers masked as the contract would have masked them."""
    phone_columns = set(_COLUMNS["caller_phone"])
    masked = {key: mask_phone(value) if key in phone_columns and isinstance(value, str)
              else mask_json_strings(value) for key, value in row.items()}
    return json.dumps(masked, ensure_ascii=False).encode("utf-8")


def _rows(path: Path, limit: int | None) -> Iterator[tuple[int, Any]]:
    for count, numbered in enumerate(_numbered_rows(path), start=1):
        yield numbered
        if limit is not None and count >= limit:
            return


def _numbered_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line or row number, row) for each message of a file; a line that makes no row is a Rejected."""
    suffix = path.suffix.lower()
    if suffix == ".txt":  # one message per line; its id from the file and line, stable on re-reading
        with path.open(encoding=text_encoding(path)) as handle:
            for line_no, line in enumerate(handle, start=1):
                if line.strip():
                    yield line_no, {"call_id": f"{path.stem}-{line_no}", "text": line.strip()}
    elif suffix in (".jsonl", ".ndjson"):
        with path.open(encoding=text_encoding(path)) as handle:
            for line_no, line in enumerate(handle, start=1):
                if line.strip():
                    yield line_no, _json_row(line)
    else:
        with path.open(encoding=text_encoding(path), newline="") as handle:
            yield from enumerate(csv.DictReader(handle), start=2)


def _json_row(line: str) -> dict[str, Any] | Rejected:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return Rejected("malformed", f"not valid JSON: {exc}")
    if not isinstance(row, dict):
        return Rejected("invalid", f"a JSON object is needed, not {type(row).__name__}")
    return row


def _transcript_fields(row: dict[str, Any], channel: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for field, names in _COLUMNS.items():
        value = next((row[n] for n in names if row.get(n) not in (None, "")), None)
        if value is not None:
            fields[field] = value
    fields.setdefault("channel", channel)
    if "call_id" in fields:
        fields["call_id"] = str(fields["call_id"]).strip()
    fields["received_at"] = _parse_time(fields.get("received_at"))
    return fields


def _parse_time(value: Any) -> datetime:
    """A received time as files write it; one without a zone is city time. Refuses what it cannot read."""
    if value is None:
        return datetime.now(UTC)
    text = str(value).strip()
    try:
        return _epoch(value, text) or _written_time(text)
    except (ValueError, OverflowError, OSError):
        raise Rejected("invalid", f"received_at: not a time: {text[:60]!r}") from None


def _epoch(value: Any, text: str) -> datetime | None:
    """A JSON number, or a string of 10 or 13 digits, is seconds (or milliseconds) since 1970."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif text.isdigit() and len(text) in (10, 13):
        seconds = float(int(text))
    else:
        return None
    return datetime.fromtimestamp(seconds / 1000 if abs(seconds) >= 1e11 else seconds, UTC)


def _written_time(text: str) -> datetime:
    match = _TIME.fullmatch(text)
    if match is None:
        parsed = datetime.fromisoformat(text)
    else:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        parsed = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                          round(float(fraction or 0) * 1_000_000), _zone(zone))
    return city_time(parsed)


def _zone(written: str | None) -> timezone | None:
    if not written:
        return None
    if written == "Z":
        return UTC
    digits = written[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return timezone(-offset if written[0] == "-" else offset)


def ingest_frames(transport: Transport, folder: Path, camera_id: str, interval_seconds: float = 10.0,
                  start: datetime | None = None, limit: int | None = None) -> IngestReport:
    """Publish a folder's images, in name order, as a camera's frames `interval_seconds` apart."""
    if not 0 < interval_seconds < math.inf:  # NaN too
        # the camera stage dead-letters a frame not later than its camera's last as a redelivery
        raise ValueError(f"interval must be a number of seconds above 0, not {interval_seconds:g}: each frame must "
                         "be later than the one before")
    report = IngestReport()
    start = start or datetime.now(UTC)
    files = sorted(p for p in folder.iterdir() if p.is_file())[: limit or None]
    for index, path in enumerate(files):
        data = path.read_bytes()
        content_type = IMAGE_SUFFIXES.get(path.suffix.lower())
        if content_type is None:
            transport.reject(Topic.FRAMES, "ingest", data[:4096],
                             Rejected("not_an_image", f"{path.name}: not a .jpg/.jpeg/.png file"), original=data)
            report.rejected += 1
            continue
        frame = CameraFrame(
            frame_id=f"{camera_id}.{hashlib.sha1(data).hexdigest()[:16]}",
            camera_id=camera_id,
            captured_at=start + timedelta(seconds=index * interval_seconds),
            content_type=content_type,
            image=base64.b64encode(data),
        )
        transport.publish(Topic.FRAMES, frame)
        report.accepted += 1
    return report


def read_transcripts(path: Path, limit: int | None = None, channel: str = "web") -> Iterator[HotlineTranscript | str]:
    """Transcripts from a file, or for a row that makes none, the reason."""
    for line_no, row in _rows(path, limit):
        if isinstance(row, Rejected):
            yield f"{path.name} line {line_no}: {row.reason}"
            continue
        try:
            yield HotlineTranscript.model_validate(_transcript_fields(row, channel))
        except ValidationError as exc:
            yield f"{path.name} row {line_no}: {summarise(exc)}"
        except Rejected as rejection:
            yield f"{path.name} line {line_no}: {rejection.reason}"
