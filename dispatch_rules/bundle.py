"""A rule set as published: the files of one folder (JDM tables, manifest, directory, taxonomy) and their hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts import Priority

DEFAULT_TABLES_DIR = Path(__file__).with_name("tables")
MANIFEST_FILE = "ruleset.yaml"
BUNDLE_SUFFIXES = (".json", ".yaml", ".yml")
TableName = Literal["department", "priority", "deadline", "direct_answer"]
TABLE_NAMES: tuple[TableName, ...] = ("department", "priority", "deadline", "direct_answer")


class TableRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str = Field(pattern=r"^[\w.\-]+\.json$")
    exclusive: bool = Field(False, description="Rows must not overlap (as a DMN 'unique' table); checked.")


class Tables(BaseModel):
    model_config = ConfigDict(extra="forbid")
    department: TableRef
    priority: TableRef
    deadline: TableRef
    direct_answer: TableRef

    def ref(self, name: TableName) -> TableRef:
        ref: TableRef = getattr(self, name)
        return ref


class MinConfidence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hotline: float = Field(ge=0, le=1)
    camera: float = Field(ge=0, le=1)


class Fallback(BaseModel):
    """Used only if a table fails at run time (validation makes that unlikely); the explanation says so."""

    model_config = ConfigDict(extra="forbid")
    priority: Priority
    deadline_hours: int = Field(gt=0)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    timezone: str = "Asia/Shanghai"
    min_confidence: MinConfidence
    fallback: Fallback
    directory: str
    taxonomy: str
    calendar: str | None = Field(None, description="Working-day calendar file; none: weekends off, no holidays.")
    tables: Tables

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        """Every case reads its hour and weekday in this zone: an unknown one would fail each case at run time."""
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as error:  # OSError: a folder such as "Asia"
            raise ValueError(f"unknown time zone {value!r}: an IANA name such as Asia/Shanghai") from error
        return value


@dataclass(frozen=True)
class RuleBundle:
    """File name -> text. What gets validated, hashed, stored as a version and compiled."""

    files: dict[str, str]

    @property
    def content_hash(self) -> str:
        canonical = json.dumps(sorted(self.files.items()), ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def replace(self, name: str, text: str) -> RuleBundle:
        return RuleBundle({**self.files, name: text})

    def write(self, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in sorted(self.files.items()):
            path = folder / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
        return written


class BundleError(Exception):
    pass


def load_bundle(path: Path, base: RuleBundle | None = None) -> RuleBundle:
    """A folder is a whole rule set; a single file replaces the file of that name in `base` (one edited table)."""
    if path.is_dir():
        files = {
            p.name: p.read_text(encoding="utf-8")
            for p in sorted(path.iterdir())
            if p.is_file() and p.suffix in BUNDLE_SUFFIXES
        }
        if MANIFEST_FILE not in files:
            raise BundleError(f"{path} has no {MANIFEST_FILE}: not a rule set folder")
        return RuleBundle(files)
    if not path.is_file():
        raise BundleError(f"{path} does not exist")
    if base is None:
        base = load_bundle(DEFAULT_TABLES_DIR)
    if path.name not in base.files:
        raise BundleError(f"{path.name} is not a file of the rule set (files: {', '.join(sorted(base.files))})")
    return base.replace(path.name, path.read_text(encoding="utf-8"))


def default_bundle() -> RuleBundle:
    return load_bundle(DEFAULT_TABLES_DIR)
