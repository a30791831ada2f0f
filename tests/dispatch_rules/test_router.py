"""Routing by the shipped decision tables: departments, priorities, deadlines, manual queue, explanations."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from contracts import EventKind, Priority, Urgency
from dispatch_rules.bundle import RuleBundle
from dispatch_rules.compiler import CompiledRules, compile_rules
from dispatch_rules.router import DecisionTableRouter
from tickets.store import TicketStore

from .conftest import call, column, edit_table, event, rule


def test_category_routes_to_the_district_body_and_explains_why(rules: CompiledRules) -> None:
    decision = DecisionTableRouter(rules).route_call(call("城乡建设", district="A3区"))
    assert decision.department == "A3区住房和城乡建设局" and decision.rule_id == "hl.cx.default"
    assert decision.source_event_id == "call:c1" and decision.rules_version == "test-default"
    assert decision.priority == Priority.NORMAL and decision.deadline_working_days == 3
    local = decision.decided_at.astimezone(ZoneInfo("Asia/Shanghai"))
    assert decision.deadline_at == rules.calendar.add_working_days(local, 3)
    assert decision.deadline_hours >= 72 and decision.explanation["deadline"]["calendar"] == "calendar.yaml"
    assert decision.manual_reason is None and not decision.direct_answer_allowed
    explanation = decision.explanation
    assert explanation["inputs"]["category"] == "城乡建设" and explanation["inputs"]["hour"] == 10
    assert explanation["department"]["id"] == "A3区.housing"
    steps = {s["table"]: s for s in explanation["steps"]}
    assert steps["department"]["rule_id"] == "hl.cx.default" and steps["department"]["file"] == "department.json"
    assert steps["department"]["conditions"]["category"] == '"城乡建设"'
    assert steps["priority"]["rule_id"] == "pr.default" and steps["deadline"]["rule_id"] == "dl.hotline.normal"


def test_keywords_pick_a_more_specific_row(rules: CompiledRules) -> None:
    router = DecisionTableRouter(rules)
    decision = router.route_call(call("城乡建设", "楼顶私搭乱建，影响邻居采光。", district="A5区"))
    assert decision.department == "A5区城市管理局" and decision.rule_id == "hl.cx.illegal_building"
    assert "contains($, \"私搭乱建\")" in decision.explanation["steps"][0]["conditions"]["text"]
    overridden = router.route_call(call("城乡建设", "楼顶私搭乱建。", district="A7县"))
    assert overridden.department == "A7县城市管理和行政执法局"  # the directory's override for A7县
    fund = router.route_call(call("劳动和社会保障", "单位不给缴住房公积金。", district="A3区"))
    assert fund.department == "A市住房公积金管理中心"  # a city-only body
    assert "no district bodies" in fund.explanation["department"]["resolved"]


def test_emergency_goes_to_the_fire_brigade_at_once(rules: CompiledRules) -> None:
    decision = DecisionTableRouter(rules).route_call(
        call("城乡建设", "楼道里燃气泄漏，味道很大！", urgency=Urgency.EMERGENCY, urgency_terms=["燃气泄漏"]))
    assert decision.department == "A3区消防救援大队" and decision.rule_id == "hl.emergency.gas"
    assert decision.co_handlers == ["A3区住房和城乡建设局", "A3区应急管理局"]
    assert decision.priority == Priority.URGENT and decision.deadline_hours == 2


def test_people_trapped_in_a_lift_go_to_the_fire_brigade_with_market_supervision(rules: CompiledRules) -> None:
    router = DecisionTableRouter(rules)
    lift = router.route_call(call("城乡建设", "小区电梯困人半小时了没人来！", urgency=Urgency.EMERGENCY,
                                  urgency_terms=["电梯困人"]))
    assert lift.department == "A3区消防救援大队" and lift.rule_id == "hl.emergency.elevator"
    assert lift.co_handlers == ["A3区市场监督管理局"]
    fire = router.route_call(call("商贸旅游", "楼下饭店失火了，浓烟很大", urgency=Urgency.EMERGENCY,
                                  urgency_terms=["失火"]))
    assert fire.rule_id == "hl.emergency.fire"


def test_an_emergency_is_routed_even_when_the_category_is_unsure(rules: CompiledRules) -> None:
    router = DecisionTableRouter(rules)
    unsure = router.route_call(call("城乡建设", "楼道里燃气泄漏，味道很大！", confidence=0.2,
                                    urgency=Urgency.EMERGENCY, urgency_terms=["燃气泄漏"]))
    assert unsure.department == "A3区消防救援大队" and unsure.manual_reason is None
    assert "below the rules' threshold" in unsure.explanation["confidence_gate_bypassed"]
    # an emergency whose row asks for the category (none does here but the category default) still waits
    ordinary = router.route_call(call("城乡建设", "小区路灯不亮了", confidence=0.2, urgency=Urgency.EMERGENCY))
    assert ordinary.department is None and "below the rules' threshold" in (ordinary.manual_reason or "")
    calm = router.route_call(call("城乡建设", "楼道里燃气泄漏", confidence=0.2))
    assert calm.department is None  # not an emergency: the gate holds


@pytest.mark.parametrize("cell", ['$ == "emergency" and category == "城乡建设"',
                                  '$ == "emergency" and confidence > 0.1',
                                  '$ == "emergency" and $root.sub_category == null'])
def test_an_emergency_row_naming_a_classifier_field_keeps_the_gate(shipped: RuleBundle, cell: str) -> None:
    """A cell may read the category, sub-category or confidence by name: such a row asks the classifier."""
    bundle = edit_table(shipped, "department.json",
                        lambda c: rule(c, "hl.emergency.gas").__setitem__(column(c, "urgency"), cell))
    unsure = DecisionTableRouter(compile_rules(bundle, "named")).route_call(
        call("城乡建设", "楼道里燃气泄漏，味道很大！", confidence=0.2, urgency=Urgency.EMERGENCY,
             urgency_terms=["燃气泄漏"]))
    assert unsure.department is None and "below the rules' threshold" in (unsure.manual_reason or "")


def test_hour_of_day_raises_priority(rules: CompiledRules) -> None:
    router = DecisionTableRouter(rules)
    night = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)  # 23:30 in Asia/Shanghai
    late = router.route_call(call("环境保护", "工地施工噪音扰民。", received_at=night))
    assert late.priority == Priority.HIGH and late.deadline_hours == 24
    assert late.explanation["steps"][1]["rule_id"] == "pr.night_noise.late"
    assert router.route_call(call("环境保护", "工地施工噪音扰民。")).priority == Priority.NORMAL


def test_simple_questions_may_be_answered_directly(rules: CompiledRules) -> None:
    router = DecisionTableRouter(rules)
    question = router.route_call(call("劳动和社会保障", "请问灵活就业人员如何办理养老保险？"))
    assert question.direct_answer_allowed and question.department == "A3区人力资源和社会保障局"
    complaint = router.route_call(call("劳动和社会保障", "咨询一下，公司拖欠工资三个月，我要投诉。"))
    assert not complaint.direct_answer_allowed and complaint.priority == Priority.HIGH


def test_low_confidence_or_abstention_goes_to_the_manual_queue(rules: CompiledRules) -> None:
    router = DecisionTableRouter(rules)
    low = router.route_call(call("城乡建设", confidence=0.42))
    assert low.department is None and low.rule_id is None
    assert "0.42 below the rules' threshold 0.50" in (low.manual_reason or "")
    assert low.priority == Priority.NORMAL and low.deadline_working_days == 3  # still gets a deadline
    abstained = router.route_call(call(None, confidence=0.3))
    assert abstained.department is None and "abstained" in (abstained.manual_reason or "")
    assert abstained.explanation["manual_reason"] == abstained.manual_reason


def test_no_matching_rule_unknown_place_and_manual_rows(rules: CompiledRules) -> None:
    router = DecisionTableRouter(rules)
    unknown = router.route_call(call("外星人"))
    assert unknown.department is None and "no department rule matched" in (unknown.manual_reason or "")
    nowhere = router.route_call(call("教育文体", district="Z9区"))
    assert nowhere.department is None and nowhere.rule_id == "hl.jy.default"
    assert "'Z9区' is not in the department directory" in (nowhere.manual_reason or "")
    discipline = router.route_call(call("纪检监察"))
    assert discipline.department is None and discipline.rule_id == "hl.jj.manual"
    assert "纪委监委" in (discipline.manual_reason or "")


def test_places_the_directory_reads(rules: CompiledRules) -> None:
    router = DecisionTableRouter(rules)
    no_place = router.route_call(call("教育文体", district=None))
    assert no_place.department == "A市教育局" and "home city" in no_place.explanation["department"]["resolved"]
    city = router.route_call(call("交通运输", district="K市"))
    assert city.department == "K市交通运输局"
    alias = router.route_call(call("教育文体", district="C3区"))
    assert alias.department == "C3县教育局"


def test_a_district_row_takes_the_place_under_any_spelling_the_directory_knows(shipped: RuleBundle) -> None:
    """The tables see the directory's code: a row for C3县 also takes calls written C3区 (its alias)."""
    def c3_row(content: dict[str, Any]) -> None:
        default = rule(content, "hl.cx.default")
        row = copy.deepcopy(default) | {"_id": "hl.cx.c3"}
        row[column(content, "district")] = '"C3县"'
        row[column(content, "role", "outputs")] = '"城管"'
        row[column(content, "rule_id", "outputs")] = '"hl.cx.c3"'
        content["rules"].insert(content["rules"].index(default), row)

    router = DecisionTableRouter(compile_rules(edit_table(shipped, "department.json", c3_row)))
    for spelling in ("C3县", "C3区"):
        decision = router.route_call(call(district=spelling))
        assert (decision.department, decision.rule_id) == ("C3县城市管理局", "hl.cx.c3")
        assert decision.district == spelling and decision.explanation["inputs"]["district"] == spelling
    assert router.route_call(call(district="C3区")).explanation["district_read_as"] == "C3县"


def test_camera_events(rules: CompiledRules) -> None:
    router = DecisionTableRouter(rules)
    fire = router.route_event(event(EventKind.FIRE_SMOKE))
    assert fire.source_event_id == "camera-event:e1" and fire.rule_id == "cam.fire_smoke"
    assert fire.department == "A市消防救援支队" and fire.co_handlers == ["A市应急管理局"]
    assert fire.priority == Priority.URGENT and fire.deadline_hours == 1
    garbage = router.route_event(event(EventKind.OVERFLOWING_BIN))
    assert garbage.department == "A3区城市管理局" and garbage.deadline_hours == 24
    unsure = router.route_event(event(EventKind.STREET_VENDOR, confidence=0.4))
    assert unsure.department is None and unsure.rule_id == "cam.street_vendor.unsure"
    faint = router.route_event(event(EventKind.ILLEGAL_PARKING, confidence=0.2))
    assert faint.department is None and "detector confidence 0.20" in (faint.manual_reason or "")


def test_the_explanation_is_stored_with_the_ticket(rules: CompiledRules, database_url: str) -> None:
    store = TicketStore(database_url, migrate=False)
    decision = DecisionTableRouter(rules).route_call(call("城乡建设", "小区垃圾无人清运。"))
    ticket = store.create_from_decision(decision).ticket
    stored = store.get(ticket.id)
    assert stored is not None and stored.rule_id == "hl.cx.sanitation" and stored.rules_version == "test-default"
    assert stored.decision["explanation"]["steps"][0]["rule_id"] == "hl.cx.sanitation"
    assert stored.decision["explanation"]["inputs"]["district"] == "A3区"
    manual = DecisionTableRouter(rules).route_call(call("城乡建设", confidence=0.1, call_id="c2"))
    manual_ticket = store.create_from_decision(manual).ticket
    assert manual_ticket.status == "pending_manual" and manual_ticket.department is None
    assert "below the rules' threshold" in manual_ticket.decision["explanation"]["manual_reason"]
