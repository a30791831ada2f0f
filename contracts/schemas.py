"""Export the JSON Schema of every topic's message, for producers in other languages."""

import json
from pathlib import Path
from typing import Any

from contracts.messages import Message
from contracts.topics import TOPIC_MODELS


def export_json_schemas(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for topic, model in TOPIC_MODELS.items():
        schema = json_schema(model)
        schema["x-topic"] = topic.value
        path = out_dir / f"{model.SCHEMA.replace('/', '.')}.schema.json"
        path.write_text(json.dumps(schema, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


def json_schema(model: type[Message]) -> dict[str, Any]:
    """The model's JSON Schema, with `schema_id` required: the model fills it in by default, but a consumer
    (streams.codec.decode) refuses a message without it, so a producer must send it."""
    schema = model.model_json_schema(mode="serialization")
    schema["$id"] = model.SCHEMA
    required: list[str] = schema.setdefault("required", [])
    if "schema_id" not in required:
        required.insert(0, "schema_id")
    schema["properties"]["schema_id"].pop("default", None)
    return schema
