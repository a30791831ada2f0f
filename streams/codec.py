"""Bytes <-> contract models. Anything that does not decode becomes a `Rejected` with a clear reason."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from contracts import TOPIC_MODELS, DeadLetter, Message, Topic, mask_pii

DEAD_LETTER_PAYLOAD_LIMIT = 8 * 1024 * 1024
# Masked beyond the kept limit by this much, so that no number cut at the limit is kept half in clear.
_MASK_MARGIN_BYTES = 64


@dataclass
class Rejected(Exception):
    """A message a stage refuses; it goes to the dead-letter topic with this reason."""

    error_type: str
    reason: str
    details: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.error_type}: {self.reason}"


def encode(message: Message) -> bytes:
    return message.model_dump_json().encode("utf-8")


def decode(topic: Topic, raw: bytes, max_bytes: int) -> Message:
    """Validate raw bytes against the model the topic carries."""
    if len(raw) > max_bytes:
        raise Rejected("oversized", f"message of {len(raw)} bytes exceeds the {max_bytes}-byte limit of {topic}")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected("malformed", f"not valid UTF-8 JSON: {exc}") from exc
    except RecursionError as exc:
        raise Rejected("malformed", "JSON nested too deeply to read") from exc
    if not isinstance(document, dict):
        raise Rejected("malformed", f"expected a JSON object, got {type(document).__name__}")
    model = TOPIC_MODELS[topic]
    schema_id = document.get("schema_id")
    if schema_id != model.SCHEMA:
        raise Rejected(
            "unknown_schema",
            f"schema_id {schema_id!r} is not carried on topic {topic}; expected {model.SCHEMA!r}",
        )
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise Rejected("invalid", summarise(exc), _error_details(exc)) from exc


def summarise(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()[:5]]
    more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more


def _error_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]), "error": err["msg"], "type": err["type"]}
        for err in exc.errors(include_input=False, include_url=False)
    ]


def dead_letter(
    origin_topic: str, stage: str, raw: bytes, rejection: Rejected, key: str | None = None,
    original: bytes | None = None,
) -> DeadLetter:
    """The dead letter for a refused payload, with phone and ID numbers masked in the payload and reason.

    `original`: the whole payload when `raw` is only its beginning (a large file); the letter then records the
    original's size and SHA-256, and says it is truncated.
    """
    whole = raw if original is None else original
    masked = masked_payload(raw, origin_topic)
    cut = len(raw) > DEAD_LETTER_PAYLOAD_LIMIT
    # past the masking window a number may have been cut in two and left in clear: drop the window's tail
    kept = masked[:min(DEAD_LETTER_PAYLOAD_LIMIT, len(masked) - _MASK_MARGIN_BYTES)] if cut else masked
    return DeadLetter(
        dead_letter_id=uuid.uuid4().hex,
        origin_topic=origin_topic,
        stage=stage,
        error_type=rejection.error_type,
        reason=mask_pii(rejection.reason),
        details=rejection.details,
        key_text=key,
        payload_b64=base64.b64encode(kept),
        payload_size=len(whole),
        payload_sha256=hashlib.sha256(whole).hexdigest(),
        payload_truncated=cut or len(raw) < len(whole),
        payload_masked=True,
        rejected_at=datetime.now(UTC),
    )


# string fields that hold base64 bytes, not words: masking digits in them would break the image
_BINARY_FIELDS = frozenset({"image", "snapshot_jpeg", "payload_b64"})


def masked_payload(raw: bytes, origin_topic: str | None = None) -> bytes:
    """The payload with personal numbers masked, still replayable where it can be.

    A message that is its topic's contract is kept as the contract's JSON: validation masked its personal
    fields, and numbers such as confidences or ids must stay as they are. Other JSON has its string values
    masked (numbers and base64 images left alone). Anything else is masked as text; bytes that are not UTF-8
    (a GBK export, binary) pass through unchanged around the masked digits.
    """
    if len(raw) <= DEAD_LETTER_PAYLOAD_LIMIT:
        message = _as_contract(raw, origin_topic)
        if message is not None:
            return encode(message)
        document = _json_document(raw)
        if document is not None:
            try:
                return json.dumps(mask_json_strings(document), ensure_ascii=False).encode("utf-8")
            except RecursionError:  # nested deeper than Python recurses: masked as text below
                pass
    text = raw[:DEAD_LETTER_PAYLOAD_LIMIT + _MASK_MARGIN_BYTES].decode("utf-8", "surrogateescape")
    return mask_pii(text).encode("utf-8", "surrogateescape")


def _as_contract(raw: bytes, origin_topic: str | None) -> Message | None:
    topic = next((t for t in Topic if t.value == origin_topic), None)
    if topic is None:
        return None
    try:
        return decode(topic, raw, DEAD_LETTER_PAYLOAD_LIMIT)
    except Rejected:
        return None


def _json_document(raw: bytes) -> Any:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return document if isinstance(document, dict | list) else None


def mask_json_strings(value: Any, field_name: str | None = None) -> Any:
    """A JSON value with personal numbers masked in its strings; numbers, and base64 bytes, left as they are."""
    if isinstance(value, str):
        return value if field_name in _BINARY_FIELDS else mask_pii(value)
    if isinstance(value, dict):
        return {key: mask_json_strings(item, key) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_json_strings(item, field_name) for item in value]
    return value
