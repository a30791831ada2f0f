"""The e5 ONNX classifier and what the agent sees: suggestions, sub-categories, similar tickets, feedback."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import yaml
from sklearn.metrics import f1_score

from classifiers import BaselineClassifier, IntentModel
from classifiers.assist import Assistant
from classifiers.data import read_labelled_csv
from classifiers.duplicates import read_messages
from classifiers.e5_model import E5IntentClassifier
from classifiers.ensemble import DEFAULT_E5_WEIGHT, EnsembleIntentModel
from classifiers.service import TextIntelligence
from contracts import AgentAssist, Channel, ClassifiedCall, HotlineTranscript, Priority, TicketEvent, Topic
from hotline.pipeline import build_pipeline, call_classifier, open_embedded_bus, open_store
from hotline.settings import ModelChoice, Settings

from ..conftest import SHARED_DIR, TRAINING_CSV

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


def test_the_default_ensemble_mixes_the_two_models_in_e5s_label_order(text_intelligence: TextIntelligence,
                                                                    baseline_model_file: Path) -> None:
    e5 = cast(E5IntentClassifier, text_intelligence.assistant.encoder)
    model = text_intelligence.model
    assert isinstance(model, EnsembleIntentModel) and model.labels == e5.labels
    baseline = BaselineClassifier.load(baseline_model_file)
    texts = [WAGES, GARBAGE]
    expected = 0.25 * e5.predict_proba(texts) + 0.75 * _in_order(baseline, texts, e5.labels)
    assert np.allclose(model.predict_proba(texts), expected, atol=1e-6)
    with pytest.raises(ValueError, match="different categories"):
        EnsembleIntentModel(e5, _Renamed(baseline))  # type: ignore[arg-type]


def _in_order(model: IntentModel, texts: list[str], labels: list[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.take(model.predict_proba(texts), [model.labels.index(label) for label in labels], axis=1)


class _Renamed:
    """The baseline with one category renamed: an ensemble of the two must be refused."""

    def __init__(self, model: IntentModel) -> None:
        self.name, self.labels = "renamed", [*model.labels[:-1], "其他"]


def test_the_raw_surface_validation_set_picks_the_shipped_ensemble_weight(text_intelligence: TextIntelligence,
                                                                         baseline_model_file: Path) -> None:
    """The rule of E5_REPORT.md, re-run: best macro-F1 among baseline, e5 and three mixtures on the 128 messages
    the two annotators labelled alike."""
    labelled = yaml.safe_load((Path(__file__).parent / "raw_validation.yaml").read_text(encoding="utf-8"))
    agreed = {str(i): first for i, (first, second) in labelled.items() if first == second != "OTHER"}
    assert len(agreed) == 128
    messages = read_messages(SHARED_DIR / "data" / "hotline" / "unlabeled_messages.csv")
    texts, truth = [messages[i] for i in agreed], list(agreed.values())
    e5 = cast(E5IntentClassifier, text_intelligence.assistant.encoder)
    e5_p = e5.predict_proba(texts)
    base_p = _in_order(BaselineClassifier.load(baseline_model_file), texts, e5.labels)
    scores = {w: f1_score(truth, [e5.labels[k] for k in (w * e5_p + (1 - w) * base_p).argmax(axis=1)],
                          average="macro") for w in (0.0, 0.25, 0.5, 0.75, 1.0)}
    assert max(scores, key=lambda w: scores[w]) == DEFAULT_E5_WEIGHT
    assert scores[DEFAULT_E5_WEIGHT] >= scores[0.0] + 0.02  # measured 0.693 against the baseline's 0.628


@pytest.mark.parametrize("gold_file", ["subcategory_gold.yaml", "subcategory_gold_fresh.yaml",
                                       "subcategory_gold_third.yaml"])
def test_sub_categories_of_hand_labelled_messages(text_intelligence: TextIntelligence, gold_file: str) -> None:
    """Within the message's own category, the agent's first suggested sub-category holds the annotators' second
    level for 0.86-0.87 of each set's 60 messages, one of the three for 0.90-0.97 (measured 2026-11-29)."""
    gold = yaml.safe_load((Path(__file__).parent / gold_file).read_text(encoding="utf-8"))
    gold = {i: labels for i, labels in gold.items() if labels[0].split("/")[0] == labels[1].split("/")[0]}
    rows = {row.id: row for row in read_labelled_csv(TRAINING_CSV)}
    taxonomy = text_intelligence.taxonomy
    assert taxonomy is not None
    texts = [rows[i].text for i in gold]
    embeddings = text_intelligence.encoder.encode(texts)
    first_hits, any_hits = [], []
    for (message_id, (first, _)), text, embedding in zip(gold.items(), texts, embeddings, strict=True):
        suggested = [s.label.split("/")[1] for s in taxonomy.suggest(text, embedding, rows[message_id].label, 3)]
        first_hits.append(first.split("/")[0] == suggested[0])
        any_hits.append(first.split("/")[0] in suggested)
    assert sum(first_hits) / len(gold) >= 0.83
    assert sum(any_hits) / len(gold) >= 0.88


def test_replayed_calls_are_classified_as_the_stage_classifies_live_ones(
        make_e5_settings: Callable[..., Settings], make_settings: Callable[..., Settings],
        text_intelligence: TextIntelligence, tmp_path: Path) -> None:
    """Rule backtests of a CSV replay calls through `call_classifier`: the same model, sub-categories, place and
    urgency as the pipeline's classify stage; without e5 built, the baseline alone, as the pipeline then runs."""
    transcript = HotlineTranscript(call_id="replay-1", received_at=datetime(2026, 11, 2, 9, tzinfo=UTC),
                                   channel=Channel.OTHER, title="A3区某小区违章建筑",
                                   text="A3区某小区一楼住户私自搭建违章建筑，占用公共绿地，请城管查处。")
    replay, name = call_classifier(make_e5_settings())
    replayed, live = replay(transcript), text_intelligence.classify(transcript)
    assert name == text_intelligence.model.name
    assert replayed.model_dump() == live.model_dump() and replayed.sub_categories
    plain = make_settings(data_dir=tmp_path / "plain")
    replay, name = call_classifier(plain)
    without_e5 = replay(transcript)
    assert name.startswith("baseline") and without_e5.sub_categories == [] and without_e5.embedding is None
    with pytest.raises(FileNotFoundError, match="no e5 model"):
        call_classifier(plain, ModelChoice.E5)
