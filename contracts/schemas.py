"""Export the JSON Schema of every topic's message, for producers in other languages."""

import json
from pathlib import Path

from contracts.topics import TOPIC_MODELS


def export_json_schemas(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for topic, model in TOPIC_MODELS.items():
        schema = model.model_json_schema(mode="serialization")
        schema["$id"] = model.SCHEMA
        schema["x-topic"] = topic.value
        path = out_dir / f"{model.SCHEMA.replace('/', '.')}.schema.json"
        path.write_text(json.dumps(schema, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written
