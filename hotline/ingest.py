"""Turning files into topic messages: transcripts from CSV/JSONL/text, frames from a folder of images.

A row that does not make a valid message is kept in the dead-letter topic with the row number and reason.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from contracts import CameraFrame, HotlineTranscript, Topic
from streams import Rejected, Transport
from streams.codec import _error_details, summarise

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
IMAGE_SUFFIXES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
CITY_TZ = timedelta(hours=8)


@dataclass
class IngestReport:
    accepted: int = 0
    rejected: int = 0


def ingest_transcripts(transport: Transport, path: Path, limit: int | None = None,
                       channel: str = "web") -> IngestReport:
    report = IngestReport()
    with transport.batch():
        _ingest_rows(transport, path, limit, channel, report)
    return report


def _ingest_rows(transport: Transport, path: Path, limit: int | None, channel: str, report: IngestReport) -> None:
    for line_no, row in _rows(path, limit):
        raw = json.dumps(row, ensure_ascii=False).encode("utf-8")
        try:
            if isinstance(row, Rejected):
                raise row
            transcript = HotlineTranscript.model_validate(_transcript_fields(row, channel))
        except ValidationError as exc:
            transport.reject(Topic.TRANSCRIPTS, "ingest", raw,
                             Rejected("invalid", f"{path.name} row {line_no}: {summarise(exc)}", _error_details(exc)))
            report.rejected += 1
            continue
        except Rejected as rejection:
            rejection.reason = f"{path.name} line {line_no}: {rejection.reason}"
            transport.reject(Topic.TRANSCRIPTS, "ingest", str(row).encode(), rejection)
            report.rejected += 1
            continue
        transport.publish(Topic.TRANSCRIPTS, transcript)
        report.accepted += 1


def _rows(path: Path, limit: int | None) -> Iterator[tuple[int, Any]]:
    count = 0
    if path.suffix.lower() == ".txt":  # one message per line; its id from the file and line, stable on re-reading
        with path.open(encoding="utf-8-sig") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                yield line_no, {"call_id": f"{path.stem}-{line_no}", "text": line.strip()}
                count += 1
                if limit is not None and count >= limit:
                    return
        return
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield line_no, json.loads(line)
                except json.JSONDecodeError as exc:
                    yield line_no, Rejected("malformed", f"not valid JSON: {exc}")
                count += 1
                if limit is not None and count >= limit:
                    return
        return
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for line_no, row in enumerate(csv.DictReader(handle), start=2):
            yield line_no, row
            count += 1
            if limit is not None and count >= limit:
                return


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
    if value is None:
        return datetime.now(UTC)
    text = str(value).strip()
    for fmt in ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d"):
        try:
            return (datetime.strptime(text, fmt) - CITY_TZ).replace(tzinfo=UTC)
        except ValueError:
            continue
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def ingest_frames(transport: Transport, folder: Path, camera_id: str, interval_seconds: float = 10.0,
                  start: datetime | None = None, limit: int | None = None) -> IngestReport:
    """Publish a folder's images, in name order, as a camera's frames `interval_seconds` apart."""
    report = IngestReport()
    start = start or datetime.now(UTC)
    files = sorted(p for p in folder.iterdir() if p.is_file())[: limit or None]
    for index, path in enumerate(files):
        data = path.read_bytes()
        content_type = IMAGE_SUFFIXES.get(path.suffix.lower())
        if content_type is None:
            transport.reject(Topic.FRAMES, "ingest", data[:4096],
                             Rejected("not_an_image", f"{path.name}: not a .jpg/.jpeg/.png file"))
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
