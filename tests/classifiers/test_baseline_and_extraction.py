import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from classifiers import BaselineClassifier, classify
from classifiers.data import read_labelled_csv, split_raw_held_out
from classifiers.extract import assess_urgency, extract_place
from contracts import HotlineTranscript, Urgency

from ..conftest import TRAINING_CSV


def test_raw_rows_are_held_out_and_their_tokenized_twins_left_out_of_training() -> None:
    rows = read_labelled_csv(TRAINING_CSV)
    train, held_out = split_raw_held_out(rows)
    assert len(held_out) == 495 and all(r.form == "raw" for r in held_out)
    assert all(" " not in r.text for r in train[:50])
    assert 5_500 < len(train) < 6_510  # the twins of raw rows are gone
    twin = next(r for r in rows if r.id == "t0")  # the tokenized copy of raw row s24
    assert twin not in train


def test_baseline_model_card_reports_its_held_out_figures(baseline_model_file: Path) -> None:
    card = json.loads(baseline_model_file.with_suffix(".card.json").read_text(encoding="utf-8"))
    assert card["eval_rows"] == 495
    assert card["eval_macro_f1"] > 0.8  # measured 0.859 on 2026-11-22


def test_classified_call_has_category_place_and_urgency(baseline_model_file: Path) -> None:
    model = BaselineClassifier.load(baseline_model_file)
    transcript = HotlineTranscript(
        call_id="c9", received_at=datetime.now(UTC), title="A3区望月湖小学附近燃气泄漏",
        text="A3区望月湖街道望月湖小学旁边的燃气管道泄漏，气味很重，学校有很多学生，请燃气公司马上处理。",
    )
    call = classify(model, transcript, min_confidence=0.0, top_k=3)
    assert call.category in model.labels and len(call.top_k) == 3
    assert call.top_k[0].score >= call.top_k[1].score
    assert call.district == "A3区"
    assert call.urgency == Urgency.EMERGENCY and call.urgency_terms
    abstained = classify(model, transcript, min_confidence=1.01, top_k=3)
    assert abstained.category is None and abstained.confidence == call.confidence


@pytest.mark.parametrize("text,district,address_part", [
    ("座落在A市A3区联丰路米兰春天G2栋320，一家影楼", "A3区", "联丰路"),
    ("K8县春华镇金鼎村七里组的水泥路还没修", "K8县", "春华镇"),
    ("西湖建筑集团占道施工有安全隐患", None, None),
])
def test_place_extraction(text: str, district: str | None, address_part: str | None) -> None:
    place = extract_place(text)
    assert place.district == district
    if address_part:
        assert place.address is not None and address_part in place.address


def test_urgency_levels() -> None:
    assert assess_urgency("楼道里有人被困电梯").level == Urgency.EMERGENCY
    assert assess_urgency("小区门口积水严重").level == Urgency.ELEVATED
    assert assess_urgency("咨询公积金提取流程").level == Urgency.NONE
