"""Backtest figures on small constructed sets: changes, loads, deadlines, accuracy where the truth is known."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from classifiers.stage import classify
from contracts import ClassifiedCall, EventKind, HotlineTranscript
from dispatch_rules.backtest import (
    BacktestResult,
    Case,
    backtest,
    cases_from_csv,
    cases_from_tickets,
    department_from_reply,
    print_backtest,
)
from dispatch_rules.bundle import RuleBundle
from dispatch_rules.compiler import CompiledRules, compile_rules
from dispatch_rules.router import DecisionTableRouter, RuleInputs
from tickets.models import Ticket, TicketTransition
from tickets.store import TicketStore

from .conftest import call, edit_table, event, set_output


def proposed_rules(shipped: RuleBundle) -> CompiledRules:
    """城乡建设 by default to 城管, and ordinary hotline cases due in 2 working days instead of 3."""
    bundle = edit_table(shipped, "department.json", lambda c: set_output(c, "hl.cx.default", "role", "城管"))
    bundle = edit_table(bundle, "deadline.json",
                        lambda c: set_output(c, "dl.hotline.normal", "deadline_working_days", 2))
    return compile_rules(bundle, "proposed")


def hotline(case_id: str, category: str | None, text: str, truth: str | None = None,
            district: str = "A3区", confidence: float = 0.9) -> Case:
    inputs = RuleInputs(source="hotline", category=category, district=district, confidence=confidence, hour=10,
                        text=text)
    return Case(case_id=case_id, inputs=inputs, classifier_abstained=category is None, true_department=truth,
                truth="given" if truth else None)


def test_backtest_counts_changes_loads_deadlines_and_accuracy(rules: CompiledRules, shipped: RuleBundle) -> None:
    cases = [
        hotline("1", "城乡建设", "小区道路破损。", truth="A3区城市管理局"),
        hotline("2", "城乡建设", "物业费乱收。", truth="A3区住房和城乡建设局"),
        hotline("3", "城乡建设", "楼下有违建。", truth="A3区城市管理局"),  # keyword row: 城管 in both
        hotline("4", "环境保护", "化工厂排污。"),
        hotline("5", None, "听不清", confidence=0.2),
        Case(case_id="6", inputs=RuleInputs(source="camera", kind=EventKind.FIRE_SMOKE.value, district="A3区",
                                            confidence=0.9, hour=10)),
    ]
    result = backtest(rules, proposed_rules(shipped), cases, "constructed")
    assert result.cases == 6 and result.department_changed == 2
    assert result.manual_active == result.manual_proposed == 1
    loads = {load.department: (load.active, load.proposed, load.delta) for load in result.loads}
    assert loads["A3区住房和城乡建设局"] == (2, 0, -2)
    assert loads["A3区城市管理局"] == (1, 3, 2)
    assert loads["(manual queue)"] == (1, 1, 0)
    # the four routed hotline cases and the manual one are normal priority: 3 -> 2 working days; the fire stays
    assert [(c.active, c.proposed, c.cases) for c in result.deadline_changes] == [
        ("3 个工作日 working days", "2 个工作日 working days", 5)]
    assert result.deadline_changed == 5 and result.priority_changed == 0
    assert (result.accuracy_active.known, result.accuracy_active.correct) == (3, 2)
    assert (result.accuracy_proposed.known, result.accuracy_proposed.correct) == (3, 2)
    assert result.accuracy_active.accuracy == 2 / 3
    assert {e.case_id for e in result.examples} == {"1", "2"}
    console = Console(record=True, width=160)
    print_backtest(result, console)
    text = console.export_text()
    assert "department changes" in text and "A3区城市管理局" in text and "66.7%" in text
    assert round_trips(result.model_dump_json())


def round_trips(payload: str) -> bool:
    return BacktestResult.model_validate_json(payload).model_dump_json() == payload


def test_stored_tickets_replay_and_reassignments_give_the_truth(rules: CompiledRules, shipped: RuleBundle,
                                                               database_url: str) -> None:
    store = TicketStore(database_url, migrate=False)
    router = DecisionTableRouter(rules)
    tickets = [store.create_from_decision(router.route_call(call("城乡建设", "小区道路破损。", call_id=f"c{i}"))).ticket
               for i in range(3)]
    store.create_from_decision(router.route_event(event(EventKind.OVERFLOWING_BIN)))
    now = datetime.now(UTC)
    with store.session() as session, session.begin():  # a dispatcher reassigns the first ticket to 城管
        ticket = session.get(Ticket, tickets[0].id)
        assert ticket is not None
        ticket.department = "A3区城市管理局"
        session.add(TicketTransition(ticket_id=ticket.id, transition="reassign", from_status="dispatched",
                                     to_status="dispatched", actor="dispatcher-zhao", reason="城管 handles roads",
                                     at=now))
    cases = cases_from_tickets(store)
    assert len(cases) == 4
    known = [c for c in cases if c.true_department]
    assert [c.case_id for c in known] == [tickets[0].id] and known[0].truth == "returned/reassigned ticket"
    replayed = next(c for c in cases if c.case_id == tickets[1].id)
    assert replayed.inputs.text == "小区道路破损。" and replayed.inputs.hour == 10
    result = backtest(rules, proposed_rules(shipped), cases, "tickets")
    assert result.department_changed == 3
    assert (result.accuracy_active.correct, result.accuracy_proposed.correct) == (0, 1)
    assert result.accuracy_proposed.accuracy == 1.0


class FixedModel:
    """An intent model stand-in: 教育文体 for texts mentioning 学校, else 城乡建设 at low confidence."""

    def __init__(self) -> None:
        self.name = "fixed@1"
        self.labels = ["城乡建设", "教育文体"]

    def predict_proba(self, texts: list[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
        return np.array([[0.1, 0.9] if "学校" in t else [0.45, 0.55 - 0.1] for t in texts], dtype=np.float64)


def test_csv_calls_are_classified_and_replies_name_the_handler(rules: CompiledRules, shipped: RuleBundle,
                                                               tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["留言编号", "留言用户", "留言主题", "留言时间", "留言详情", "答复意见", "答复时间"])
        writer.writerow(["1", "u", "A7县某学校乱收费", "2019/4/25 9:32:09", "A7县某学校乱收费，请查处。",
                         "网友您好！您反映的问题已转A7县教育局调查处理。", "2019/5/1 10:00:00"])
        writer.writerow(["2", "u", "A3区学校门口积水", "2019/4/25 23:10:00", "学校门口积水。",
                         "经区教育局核实，已整改。", "2019/5/1 10:00:00"])
        writer.writerow(["3", "u", "道路问题", "2019/4/25 9:00:00", "路面坑洼", "", ""])
        writer.writerow(["4", "u", "A7县学校招生", "2019/4/26 9:00:00", "A7县某学校招生不公开。",
                         "网友您好！经A市教育局核实，已责成学校公开招生信息。", "2019/5/2 10:00:00"])
        writer.writerow(["5", "u", "只有标题", "2019/4/26 9:00:00", "", "", ""])  # no text: named, not routed
    seen: list[HotlineTranscript] = []

    def classify_call(transcript: HotlineTranscript) -> ClassifiedCall:
        seen.append(transcript)
        return classify(FixedModel(), transcript, min_confidence=0.5, top_k=2)

    cases, problems = cases_from_csv(path, classify_call, rules.directory, "Asia/Shanghai")
    assert problems == ["calls.csv row 6: text: String should have at least 1 character"]
    assert [t.title for t in seen] == ["A7县某学校乱收费", "A3区学校门口积水", "道路问题", "A7县学校招生"]
    assert seen[1].received_at.isoformat() == "2019-04-25T23:10:00+08:00"
    assert [c.inputs.category for c in cases] == ["教育文体", "教育文体", None, "教育文体"]
    assert [c.true_department for c in cases] == ["A7县教育局", "A3区教育局", None, "A市教育局"]
    assert cases[1].inputs.hour == 23 and cases[1].inputs.urgency == "elevated"  # 积水
    result = backtest(rules, proposed_rules(shipped), cases, "calls.csv")
    accuracy = result.accuracy_active  # the county's bureau was chosen where the city's answered: right role only
    assert (accuracy.known, accuracy.correct, accuracy.correct_role) == (3, 2, 3)
    assert result.manual_active == 1 and result.truth_sources == {"official reply": 3}


def test_reading_the_handler_from_an_official_reply(rules: CompiledRules) -> None:
    directory = rules.directory
    forwarded = department_from_reply("经县环保局会审，已转市房产局调查核处。", "A7县", directory)
    assert forwarded is not None and forwarded.name == "A市住房和城乡建设局"
    first = department_from_reply("A2区景蓉华苑：区住房和城乡建设局也参加了会议。", "A2区", directory)
    assert first is not None and first.name == "A2区住房和城乡建设局"
    assert department_from_reply("感谢您的关心与支持！", "A2区", directory) is None
    assert department_from_reply("县教育局已核实。", None, directory) is None  # cannot be placed
