"""The assist stage's own state: which remembered calls a call is compared with, forgetting by a clock that a
wrongly dated call cannot move, and agents' feedback notes kept masked."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from classifiers.assist import Assistant
from classifiers.assist_store import AssistStore
from classifiers.extract import city_of, is_city_wide, same_area
from classifiers.knowledge import FloatArray, KnowledgeIndex
from classifiers.lexical import LexicalSimilarity
from contracts import Channel, ClassifiedCall

GARBAGE = "A5区幸福家园小区东门垃圾桶满溢三天无人清理，臭味很大"


class NoEncoder:
    name = "none"

    def encode(self, texts: list[str]) -> FloatArray:
        return np.zeros((len(texts), 4), dtype=np.float32)


@pytest.fixture
def store(tmp_path: Path, migrated_db: Path) -> AssistStore:
    shutil.copy(migrated_db, tmp_path / "db.sqlite3")
    return AssistStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")


def _call(call_id: str, at: datetime, district: str = "A5区") -> ClassifiedCall:
    return ClassifiedCall(call_id=call_id, received_at=at, channel=Channel.PHONE, text=GARBAGE, category="城乡建设",
                          confidence=0.9, top_k=[], classifier="test", district=district, embedding=[0.0] * 4)


def test_a_call_dated_ahead_does_not_wipe_the_remembered_calls(store: AssistStore) -> None:
    now = datetime.now(UTC)
    clock = [now]
    assistant = Assistant(KnowledgeIndex([], np.zeros((0, 4), dtype=np.float32)), store, NoEncoder(),
                          LexicalSimilarity.fit([GARBAGE, "拖欠工资", "路灯不亮"]), clock=lambda: clock[0])
    assistant.assist(_call("c1", now))
    assistant.assist(_call("ahead", now.replace(year=now.year + 1), district="A9区"))
    kept = {c.call_id for c in store.recent_calls(None, now - timedelta(days=400), exclude="none")}
    assert kept == {"c1", "ahead"}
    # and forgetting goes on as time passes: two hours later, calls past the window are dropped
    store.remember_call("stale", "A5区", "标题", "正文", now - timedelta(days=60))
    clock[0] = now + timedelta(hours=2)
    assistant.assist(_call("c2", clock[0]))
    assert "stale" not in {c.call_id for c in store.recent_calls(None, now - timedelta(days=400), exclude="none")}


def test_a_feedback_note_is_stored_masked(store: AssistStore) -> None:
    store.record_feedback("live-1", "2549", "wrong", "agent-7", note="来电人13812345678，身份证11010119900307123X")
    [feedback] = store.feedback("live-1")
    assert feedback.note == "来电人138****5678，身份证110***********123X"


@pytest.mark.parametrize("first,second,same", [
    ("A3区", "A3区", True), ("A3区", "A5区", False), ("A3区", "A市", True), ("A3区", None, True),
    ("K市", "K8县", True), ("K市", "A3区", False), ("K市", "A市", False), ("K市", None, True),
    ("K8县", "A市", False), ("A市", "岳麓区", True), ("K市", "岳麓区", False), ("A9市", "A市", True),
])
def test_same_area(first: str | None, second: str | None, same: bool) -> None:
    assert same_area(first, second) is same and same_area(second, first) is same


def test_only_the_home_city_is_city_wide() -> None:
    assert is_city_wide(None) and is_city_wide("A市")
    assert not is_city_wide("K市") and not is_city_wide("A3区")
    assert city_of("K8县") == "K市" and city_of("A3区") == city_of("岳麓区") == "A市"


def test_a_call_placed_in_another_prefecture_is_compared_with_that_prefecture_only(store: AssistStore) -> None:
    now = datetime.now(UTC)
    for call_id, district in [("a3", "A3区"), ("city", "A市"), ("nowhere", None), ("k", "K市"), ("k8", "K8县")]:
        store.remember_call(call_id, district, "标题", "正文", now - timedelta(hours=1))

    def candidates(district: str | None) -> set[str]:
        return {c.call_id for c in store.recent_calls(district, now - timedelta(days=30), exclude="none")}

    assert candidates("A3区") == {"a3", "city", "nowhere"}
    assert candidates("K市") == {"k", "k8", "nowhere"}
    assert candidates("K8县") == {"k8", "k", "nowhere"}
    assert candidates("A市") == {"a3", "city", "nowhere"}
    assert candidates(None) == {"a3", "city", "nowhere", "k", "k8"}
