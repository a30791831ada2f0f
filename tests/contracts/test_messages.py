import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts import Channel, ClassifiedCall, HotlineTranscript, Topic, mask_phone, mask_pii
from contracts.schemas import export_json_schemas
from contracts.topics import TOPIC_MODELS
from streams.codec import Rejected, decode


def test_caller_phone_and_numbers_in_text_are_masked_on_the_contract() -> None:
    transcript = HotlineTranscript(
        call_id="c-1", received_at=datetime.now(UTC), caller_phone="138-1234-5678",
        text="请回电13912345678或0731-84561234，身份证号430102199001011234",
    )
    assert transcript.caller_phone == "138****5678"
    assert HotlineTranscript.model_validate_json(transcript.model_dump_json()) == transcript
    assert "13912345678" not in transcript.text and "139****5678" in transcript.text
    assert "84561234" not in transcript.text
    assert "430102199001011234" not in transcript.text
    assert "13912345678" not in transcript.model_dump_json()


def test_mask_helpers() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone(mask_phone("13812345678")) == "138****5678"
    assert mask_pii("无号码的文本") == "无号码的文本"


@pytest.mark.parametrize("field,value,message", [
    ("text", "   ", "blank"),
    ("call_id", "bad id with spaces", "pattern"),
    ("received_at", "2026-11-22T10:00:00", "timezone"),
])
def test_invalid_transcripts_name_the_field(field: str, value: str, message: str) -> None:
    document = {"call_id": "c-2", "received_at": "2026-11-22T10:00:00+08:00", "text": "路灯坏了"}
    document[field] = value
    with pytest.raises(ValidationError) as info:
        HotlineTranscript.model_validate(document)
    assert info.value.errors()[0]["loc"] == (field,)
    assert message in str(info.value).lower()


def test_every_topic_model_exports_a_versioned_json_schema(tmp_path: Path) -> None:
    paths = export_json_schemas(tmp_path)
    assert len(paths) == len(TOPIC_MODELS)
    for path in paths:
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["$id"].rsplit("/", 1)[1].startswith("v")
        assert "schema_id" in schema["properties"]


def test_exported_schemas_require_the_schema_id_the_consumers_require(tmp_path: Path) -> None:
    for path in export_json_schemas(tmp_path):
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["required"][0] == "schema_id"
        assert "default" not in schema["properties"]["schema_id"]
        topic = Topic(schema["x-topic"])
        assert schema["properties"]["schema_id"]["const"] == TOPIC_MODELS[topic].SCHEMA
    # what a producer without schema_id sends, the consumer refuses
    document = {"call_id": "c1", "received_at": "2026-01-01T08:00:00+08:00", "text": "路灯不亮"}
    with pytest.raises(Rejected, match="unknown_schema"):
        decode(Topic.TRANSCRIPTS, json.dumps(document).encode(), 1 << 20)


def test_classified_call_text_and_title_are_masked_on_the_contract() -> None:
    call = ClassifiedCall(call_id="c", received_at=datetime.now(UTC), channel=Channel.PHONE,
                          text="我的电话13812345678", title="身份证11010519491231002X", category=None,
                          confidence=0.1, top_k=[], classifier="x")
    assert "13812345678" not in call.text and "138****5678" in call.text
    assert call.title is not None and "11010519491231002X" not in call.title
    assert ClassifiedCall.model_validate_json(call.model_dump_json()) == call
