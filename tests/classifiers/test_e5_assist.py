"""The e5 ONNX classifier and what the agent sees: suggestions, sub-categories, similar tickets, feedback."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import yaml

from classifiers.assist import Assistant
from classifiers.duplicates import read_messages
from classifiers.service import TextIntelligence
from contracts import AgentAssist, Channel, ClassifiedCall, HotlineTranscript, Priority, TicketEvent, Topic
from hotline.pipeline import build_pipeline, open_embedded_bus, open_store
from hotline.settings import Settings

from ..conftest import SHARED_DIR

WAGES = "A3区某建筑工地老板拖欠我们二十多个农民工三个月工资，多次讨要无果，请求劳动监察部门帮忙追讨。"
GARBAGE = "A5区梅溪湖街道某小区门口的垃圾站垃圾满溢，已经好几天没人清运，臭气熏天，蚊蝇很多，请尽快处理。"


def _call(intel: TextIntelligence, call_id: str, text: str, district: str | None = None) -> ClassifiedCall:
    return intel.classify(HotlineTranscript(call_id=call_id, received_at=datetime.now(UTC), text=text,
                                            channel=Channel.PHONE, district_hint=district))


def test_e5_onnx_gives_calibrated_probabilities_and_unit_embeddings(text_intelligence: TextIntelligence) -> None:
    encoder = text_intelligence.encoder
    embeddings = encoder.encode([WAGES, GARBAGE])
    assert embeddings.shape == (2, 384)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)
    e5 = text_intelligence.assistant.encoder
    _, probabilities = e5.predict_with_embeddings([WAGES])  # type: ignore[attr-defined]
    assert abs(float(probabilities.sum()) - 1.0) < 1e-4
    assert e5.labels[int(probabilities.argmax())] == "劳动和社会保障"  # type: ignore[attr-defined]


def test_classified_call_carries_sub_categories_and_embedding(text_intelligence: TextIntelligence) -> None:
    call = _call(text_intelligence, "w1", WAGES)
    assert call.category == "劳动和社会保障"
    assert call.sub_categories and all(s.label.startswith("劳动和社会保障/") for s in call.sub_categories)
    assert call.embedding is not None and len(call.embedding) == 384
    assert call.district == "A3区"


def test_a_knowledge_base_case_finds_itself_first(text_intelligence: TextIntelligence) -> None:
    knowledge = text_intelligence.assistant.knowledge
    case = next(c for c in knowledge.cases if c.department)
    query = text_intelligence.encoder.encode([case.search_text])[0]
    best, score = knowledge.search(query, 3)[0]
    assert best.case_id == case.case_id and score > 0.95


def test_suggestions_come_with_reply_department_and_score(text_intelligence: TextIntelligence) -> None:
    _, assist = text_intelligence.analyse(GARBAGE)
    assert len(assist.suggestions) == 3
    assert assist.suggestions[0].score >= assist.suggestions[-1].score
    assert all(s.reply for s in assist.suggestions)


def test_a_repeat_report_in_the_same_district_suggests_merging(text_intelligence: TextIntelligence) -> None:
    assistant = text_intelligence.assistant
    first = _call(text_intelligence, "dup-1", GARBAGE)
    assistant.assist(first)
    now = datetime.now(UTC)
    assistant.note(TicketEvent(ticket_id="GD-1", source_event_id="call:dup-1", transition="create",
                               status="dispatched", department="A5区城市管理局", priority=Priority.NORMAL,
                               deadline_at=now + timedelta(hours=72), at=now, actor="test", title="垃圾满溢",
                               district="A5区"))
    again = _call(text_intelligence, "dup-2", GARBAGE.replace("好几天", "三四天"))
    assist = assistant.assist(again, remember=False)
    assert [s.ticket_id for s in assist.similar_tickets] == ["GD-1"]
    assert assist.merge_into == "GD-1"
    elsewhere = _call(text_intelligence, "dup-3", GARBAGE.replace("A5区", "A9区"))
    assert assistant.assist(elsewhere, remember=False).similar_tickets == []
    unrelated = _call(text_intelligence, "dup-4", WAGES.replace("A3区", "A5区"))
    assert assistant.assist(unrelated, remember=False).similar_tickets == []
    assistant.note(TicketEvent(ticket_id="GD-1", source_event_id="call:dup-1", transition="close",
                               status="closed", department="A5区城市管理局", priority=Priority.NORMAL,
                               deadline_at=now + timedelta(hours=72), at=now, actor="test", title="垃圾满溢",
                               district="A5区"))
    assert assistant.assist(again, remember=False).merge_into is None  # closed tickets are not merge targets


def test_agent_feedback_is_stored(text_intelligence: TextIntelligence) -> None:
    store = text_intelligence.assistant.store
    store.record_feedback("fb-1", "2549", "used", agent="agent-7")
    store.record_feedback("fb-1", "2554", "wrong", agent="agent-7", note="不是同一类问题")
    assert [(f.case_id, f.verdict) for f in store.feedback("fb-1")] == [("2549", "used"), ("2554", "wrong")]


def test_the_pipeline_publishes_agent_assist_for_each_call(make_e5_settings: Callable[..., Settings]) -> None:
    settings = make_e5_settings()
    bus = open_embedded_bus(settings)
    for n, text in enumerate([WAGES, GARBAGE]):
        bus.publish(Topic.TRANSCRIPTS, HotlineTranscript(call_id=f"p{n}", received_at=datetime.now(UTC), text=text))
    pipeline = build_pipeline(settings, open_store(settings))
    assert "assist" not in pipeline.disabled
    bus.run_until_idle(pipeline.stages)
    assists = [AgentAssist.model_validate_json(r.value) for r in bus.records(Topic.AGENT_ASSIST)]
    assert [a.call_id for a in assists] == ["p0", "p1"]
    assert all(len(a.suggestions) == 3 for a in assists)


def test_the_judged_suggestions_are_what_the_shipped_index_suggests(text_intelligence: TextIntelligence) -> None:
    """suggestion_judgements.yaml holds hand judgements of the e5 index's top 3 for 30 messages; if the model or
    the index changes what it suggests, the judged figures no longer describe it and must be redone."""
    judged = yaml.safe_load((Path(__file__).parent / "suggestion_judgements.yaml").read_text(encoding="utf-8"))
    messages = read_messages(SHARED_DIR / "data" / "hotline" / "unlabeled_messages.csv")
    queries = [str(message_id) for message_id in judged]
    embeddings = text_intelligence.encoder.encode([messages[q] for q in queries])
    knowledge = text_intelligence.assistant.knowledge
    suggested = {q: [case.case_id for case, _ in knowledge.search(embedding, 3)]
                 for q, embedding in zip(queries, embeddings, strict=True)}
    assert suggested == {str(q): [str(c) for c in j["e5"]] for q, j in judged.items()}
    first_useful = [(j["useful"][j["e5"][0]], j["useful_second"][j["e5"][0]]) for j in judged.values()]
    assert [sum(judge) for judge in zip(*first_useful, strict=True)] == [18, 17]  # the figures the README quotes


def test_the_assist_store_keeps_calls_with_phone_numbers_masked(text_intelligence: TextIntelligence) -> None:
    assistant = text_intelligence.assistant
    call = _call(text_intelligence, "pii-1", GARBAGE + "我的电话13812345678，身份证430102199001011234。")
    assistant.assist(call)
    kept = next(c for c in assistant.store.recent_calls(None, call.received_at - timedelta(minutes=1), exclude="x")
                if c.call_id == "pii-1")
    assert "13812345678" not in kept.text and "430102199001011234" not in kept.text
    assert "垃圾站垃圾满溢" in kept.text


def test_remembering_a_call_drops_calls_older_than_the_window(text_intelligence: TextIntelligence) -> None:
    shared = text_intelligence.assistant
    assistant = Assistant(shared.knowledge, shared.store, shared.encoder, shared.lexical)  # its own purge clock
    now = datetime.now(UTC)
    old = _call(text_intelligence, "aged-1", GARBAGE).model_copy(update={"received_at": now - timedelta(days=45)})
    assistant.assist(old)
    assert any(c.call_id == "aged-1" for c in shared.store.recent_calls(None, now - timedelta(days=60), "x"))
    assistant.assist(_call(text_intelligence, "fresh-1", WAGES))
    assert not any(c.call_id == "aged-1" for c in shared.store.recent_calls(None, now - timedelta(days=60), "x"))
