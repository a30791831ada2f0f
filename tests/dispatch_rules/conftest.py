"""Fixtures for the decision-table router: the shipped rules compiled once, table editing, cases."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from contracts import CategoryScore, Channel, ClassifiedCall, DetectedEvent, EventKind, Urgency
from dispatch_rules.bundle import RuleBundle, default_bundle
from dispatch_rules.compiler import CompiledRules, compile_rules
from dispatch_rules.versions import RuleStore

# 10:00 in Asia/Shanghai
DAYTIME = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def shipped() -> RuleBundle:
    return default_bundle()


@pytest.fixture(scope="session")
def rules(shipped: RuleBundle) -> CompiledRules:
    return compile_rules(shipped, "test-default")


def edit_table(bundle: RuleBundle, file: str, edit: Callable[[dict[str, Any]], None]) -> RuleBundle:
    """A copy of the bundle with one JDM table changed by `edit(content)` (the decision table's content)."""
    graph = json.loads(bundle.files[file])
    node = next(n for n in graph["nodes"] if n["type"] == "decisionTableNode")
    edit(node["content"])
    return bundle.replace(file, json.dumps(graph, ensure_ascii=False, indent=2))


def rule(content: dict[str, Any], rule_id: str) -> dict[str, Any]:
    """The row of a table content whose rule id output is `rule_id`."""
    out = next(c["id"] for c in content["outputs"] if c["field"] == "rule_id")
    return next(r for r in content["rules"] if json.loads(r[out]) == rule_id)


def column(content: dict[str, Any], field: str, kind: str = "inputs") -> str:
    return str(next(c["id"] for c in content[kind] if c["field"] == field))


def set_output(content: dict[str, Any], rule_id: str, field: str, value: Any) -> None:
    rule(content, rule_id)[column(content, field, "outputs")] = json.dumps(value, ensure_ascii=False)


def call(category: str | None = "城乡建设", text: str = "小区道路破损，请求维修。", *, district: str | None = "A3区",
         confidence: float = 0.9, urgency: Urgency = Urgency.NONE, call_id: str = "c1",
         received_at: datetime = DAYTIME, sub_category: str | None = None, title: str | None = None,
         urgency_terms: list[str] | None = None) -> ClassifiedCall:
    return ClassifiedCall(
        call_id=call_id, received_at=received_at, channel=Channel.PHONE, title=title, text=text, category=category,
        confidence=confidence, top_k=[CategoryScore(label=category or "城乡建设", score=confidence)],
        sub_categories=[CategoryScore(label=sub_category, score=0.8)] if sub_category else [],
        classifier="test-model@1", district=district, urgency=urgency, urgency_terms=urgency_terms or [],
    )


def event(kind: EventKind, confidence: float = 0.8, district: str | None = "A3区", event_id: str = "e1",
          started_at: datetime = DAYTIME) -> DetectedEvent:
    return DetectedEvent(
        event_id=event_id, camera_id="cam-A3-0001", kind=kind, state="started", started_at=started_at,
        observed_at=started_at, confidence=confidence, district=district, detector="test-detector@1",
    )


@pytest.fixture
def database_url(tmp_path: Path, migrated_db: Path) -> str:
    path = tmp_path / "tickets.sqlite3"
    shutil.copy(migrated_db, path)
    return f"sqlite:///{path}"


@pytest.fixture
def store(database_url: str) -> RuleStore:
    return RuleStore.open(database_url, migrate=False)
