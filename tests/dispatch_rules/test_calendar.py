"""Deadlines in working days (工作日): weekends, statutory holidays and 调休 working weekends, from the rule set's
calendar; a broken calendar is refused like a broken table."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from contracts import DispatchDecision, Priority, Source
from dispatch_rules.bundle import RuleBundle
from dispatch_rules.calendar import WorkCalendar
from dispatch_rules.compiler import CompiledRules, RulesValidationError, compile_rules
from dispatch_rules.router import working_day_deadline
from tickets.store import TicketStore

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def test_working_days_skip_weekends_holidays_and_count_makeup_saturdays(rules: CompiledRules) -> None:
    calendar = rules.calendar
    assert calendar.covers_year(2026) and not calendar.covers_year(2027)
    # an ordinary week: Friday 10:00 + 3 working days = Wednesday 10:00
    assert calendar.add_working_days(at("2026-11-20T10:00"), 3) == at("2026-11-25T10:00")
    # a case on Saturday counts from Monday
    assert calendar.add_working_days(at("2026-11-21T16:30"), 1) == at("2026-11-23T16:30")
    # 国庆: Wednesday 30 September + 3 → 8 Oct (Thu), 9 Oct (Fri), 10 Oct (Saturday, a 调休 working day)
    assert calendar.add_working_days(at("2026-09-30T09:00"), 3) == at("2026-10-10T09:00")
    # 春节: Friday 13 February + 1 → Saturday 14 February is a working day (调休)
    assert calendar.add_working_days(at("2026-02-13T11:00"), 1) == at("2026-02-14T11:00")
    assert calendar.add_working_days(at("2026-02-14T11:00"), 1) == at("2026-02-24T11:00")


def test_the_decision_carries_the_due_time_and_says_which_calendar(rules: CompiledRules) -> None:
    explanation: dict[str, object] = {}
    decided = at("2026-09-30T09:00").astimezone(ZoneInfo("UTC"))
    due, hours = working_day_deadline(rules, decided, 3, explanation)
    assert due == at("2026-10-10T09:00") and hours == 10 * 24
    assert explanation["deadline"] == {"working_days": 3, "due_local": "2026-10-10T09:00:00+08:00",
                                       "calendar": "calendar.yaml"}
    late: dict[str, object] = {}
    working_day_deadline(rules, at("2027-03-01T09:00"), 1, late)
    assert "does not cover 2027" in str(late["deadline"])


def test_the_store_takes_the_decisions_due_time(tmp_path: Path) -> None:
    store = TicketStore(f"sqlite:///{tmp_path / 't.sqlite3'}")
    decided = at("2026-09-30T09:00")
    decision = DispatchDecision(
        decision_id="d1", source=Source.HOTLINE, source_event_id="call:wd", decided_at=decided, title="t",
        description="d", department="A3区城市管理局", priority=Priority.NORMAL, deadline_hours=240,
        deadline_working_days=3, deadline_at=at("2026-10-10T09:00"), rule_id="dl", rules_version="test")
    ticket = store.get(store.create_from_decision(decision).ticket.id)
    assert ticket is not None and ticket.deadline_at.replace(tzinfo=ZoneInfo("UTC")) == at("2026-10-10T09:00")
    plain = store.create_from_decision(decision.model_copy(update={
        "source_event_id": "call:h", "decision_id": "d2", "deadline_at": None, "deadline_working_days": None,
        "deadline_hours": 24}))
    stored = store.get(plain.ticket.id)
    assert stored is not None and stored.deadline_at.replace(tzinfo=ZoneInfo("UTC")) == decided + timedelta(hours=24)


def test_a_broken_calendar_is_refused_naming_the_file(shipped: RuleBundle) -> None:
    calendar = yaml.safe_load(shipped.files["calendar.yaml"])
    calendar["workdays"].append("2026-10-01")  # also a holiday
    with pytest.raises(RulesValidationError) as caught:
        compile_rules(shipped.replace("calendar.yaml", yaml.safe_dump(calendar)))
    assert any(e.table == "calendar.yaml" and "2026-10-01" in e.message for e in caught.value.errors)
    with pytest.raises(RulesValidationError) as missing:
        compile_rules(RuleBundle({k: v for k, v in shipped.files.items() if k != "calendar.yaml"}))
    assert any(e.table == "calendar.yaml" and "missing" in e.message for e in missing.value.errors)
    with pytest.raises(ValidationError, match="not in covers"):
        WorkCalendar.model_validate({"holidays": ["2027-01-01"], "covers": [2026]})
    with pytest.raises(ValueError, match=r"working days must be 1\.\.60"):
        WorkCalendar().add_working_days(at("2026-01-05T09:00"), 0)
