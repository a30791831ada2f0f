"""Address extraction against two hand-labelled sets of raw hotline messages (ids and places in YAML here, the
texts in ../shared). address_gold.yaml was used to develop the rules; address_gold_test.yaml was labelled
before and never used to tune them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from classifiers.data import read_labelled_csv
from classifiers.extract import extract_place

from ..conftest import TRAINING_CSV

HERE = Path(__file__).parent
_CODES = re.compile(r"^(?:[A-Z]\d{0,2}[市区县州])+")


def _core(place: str) -> str:
    return _CODES.sub("", place)


def address_is_right(predicted: str | None, gold: list[str] | None) -> bool:
    """Right: no address for a message that names none; otherwise the gold place or a part of it (place codes
    aside), or the gold place with at most three characters more."""
    if gold is None or predicted is None:
        return gold is None and predicted is None
    found = _core(predicted)
    return bool(found) and any(found in _core(g) or (_core(g) in found and len(found) - len(_core(g)) <= 3)
                               for g in gold)


def _score(gold_file: str) -> tuple[float, int, int]:
    gold: dict[str, list[str] | None] = yaml.safe_load((HERE / gold_file).read_text(encoding="utf-8"))
    texts = {row.id: row.text for row in read_labelled_csv(TRAINING_CSV)}
    predicted = {row_id: extract_place(texts[row_id]).address for row_id in gold}
    right = sum(address_is_right(predicted[row_id], places) for row_id, places in gold.items())
    invented = sum(places is None and predicted[row_id] is not None for row_id, places in gold.items())
    return right / len(gold), invented, sum(places is None for places in gold.values())


def test_the_metric_accepts_parts_and_codes_and_refuses_junk() -> None:
    gold = ["A市A5区嘉雨路与六号路交叉口"]
    assert address_is_right("A5区嘉雨路", gold)
    assert address_is_right("A市A5区嘉雨路与六号路交叉口", gold)
    assert not address_is_right("为一个人流车流密集的十字路口", gold)
    assert not address_is_right(None, gold) and not address_is_right("某路", None)
    assert address_is_right(None, None)


# measured 2026-11-29 (the pattern extractor before: 0.400 and 0.267, inventing places for 9/23 and 8/14)
@pytest.mark.parametrize(("gold_file", "at_least", "most_invented"), [
    ("address_gold.yaml", 0.80, 6),        # 0.850, 5 of 23 place-less messages given a place
    ("address_gold_test.yaml", 0.80, 2),   # 0.867, 1 of 14
    ("address_gold_second.yaml", 0.75, 4),       # the same messages labelled by a second, blind pass: 0.800, 3 of 19
    ("address_gold_test_second.yaml", 0.80, 2),  # 0.900, 1 of 15
])
def test_addresses_of_hand_labelled_messages(gold_file: str, at_least: float, most_invented: int) -> None:
    accuracy, invented, placeless = _score(gold_file)
    assert accuracy >= at_least, f"{gold_file}: {accuracy:.3f}"
    assert invented <= most_invented, f"{gold_file}: places invented for {invented} of {placeless}"


@pytest.mark.parametrize(("text", "address"), [
    ("我们是A市A5区桃花塅路58号庆德水韵山城小区的业主。", "A市A5区桃花塅路58号庆德水韵山城小区"),
    ("请求延后L1区迎丰公园清晨路灯熄灯时间半小时", "L1区迎丰公园"),
    ("投诉G4县洲口镇邮政局不派件到家", "G4县洲口镇"),
    ("自2006年到菜花坪谭桥村开店", "菜花坪谭桥村"),
    ("户口薄复印件及家中子女城乡居保缴费登记卡", None),   # 城乡 is not a place
    ("这几天晚上小区路灯不亮", None),                      # 路灯, and a bare 小区 with no name
    ("希望K6县的1路，2路公交车延迟收班时间", None),          # bus lines, not roads
])
def test_address_boundaries(text: str, address: str | None) -> None:
    assert extract_place(text).address == address


@pytest.mark.parametrize(("text", "district"), [
    ("万科城A1区3栋楼下垃圾没人清理", "A5区"),        # an estate's phase, not district A1区
    ("地下车库B2区漏水严重", "A5区"),                 # a car-park zone
    ("北辰三角洲E4区4栋住宅楼", "A5区"),              # a code right before a building number
    ("创发城K1区郡乱改规划", "A5区"),
    ("万科城A1区3栋楼下垃圾，位于A3区", "A3区"),       # a real district later in the text still counts
    ("A3区某小区门口垃圾堆放", "A3区"),               # a district beats the hint as before
    ("A市A3区联丰路米兰春天G2栋", "A3区"),
])
def test_estate_phases_and_car_park_zones_are_not_districts(text: str, district: str) -> None:
    assert extract_place(text, hint="A5区").district == district
