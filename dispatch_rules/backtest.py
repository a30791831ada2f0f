"""Backtest: replay cases through the active and a proposed rule set and compare what they would have done.

Cases come from stored tickets (the inputs each decision recorded, the text from the ticket) or from a CSV of
calls put through the text stage's own classify function (the configured model, sub-categories, place and
urgency), so a replayed call meets the rules exactly as a live one would. Where the true
handler is known, each version's routing accuracy is reported:
  * a ticket a department returned or a dispatcher reassigned (transition 'return' / 'reassign'), or one a
    dispatcher took out of the manual queue: its current department;
  * a CSV row with a `true_department` (or `department`) column: that name;
  * a CSV row with an official reply (答复意见, kb_replies.csv): the department the reply names, read with the
    directory's names and aliases ("A7县教育局", "区住建局", "市城管局" …); one the case was forwarded to
    (转/交由 …) wins, otherwise the first named.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, ValidationError, computed_field
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from classifiers.data import despace
from contracts import Channel, ClassifiedCall, HotlineTranscript
from dispatch_rules.compiler import CompiledRules
from dispatch_rules.directory import Department, Directory
from dispatch_rules.router import Outcome, RuleInputs, call_inputs, decide, local_time
from streams.codec import summarise
from tickets.models import Ticket, TicketStatus
from tickets.store import TicketStore

MANUAL = "(manual queue)"
TRUTH_TRANSITIONS = {"return", "reassign"}


class Case(BaseModel):
    case_id: str
    inputs: RuleInputs
    classifier_abstained: bool = False
    true_department: str | None = None
    truth: str | None = Field(None, description="Where the true department comes from.")


class DepartmentLoad(BaseModel):
    department: str
    active: int
    proposed: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def delta(self) -> int:
        return self.proposed - self.active


class DeadlineChange(BaseModel):
    active: str  # "72 h" or "3 个工作日 working days"
    proposed: str
    cases: int


class ChangedCase(BaseModel):
    case_id: str
    category: str | None
    district: str | None
    active_department: str | None
    active_rule: str | None
    proposed_department: str | None
    proposed_rule: str | None
    true_department: str | None = None


class Accuracy(BaseModel):
    rules_version: str
    known: int = Field(description="Cases whose true handler is known.")
    correct: int
    correct_role: int = Field(0, description=(
        "Known cases sent to a body of the right role (城管, 教育 …), at whatever level or place."))
    manual: int = Field(description="Known cases this version sent to the manual queue (counted as not correct).")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def accuracy(self) -> float | None:
        return self.correct / self.known if self.known else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def role_accuracy(self) -> float | None:
        return self.correct_role / self.known if self.known else None


class BacktestResult(BaseModel):
    source: str
    active_version: str
    proposed_version: str
    cases: int
    department_changed: int
    priority_changed: int
    deadline_changed: int
    direct_answer_changed: int
    manual_active: int
    manual_proposed: int
    loads: list[DepartmentLoad]
    deadline_changes: list[DeadlineChange]
    accuracy_active: Accuracy
    accuracy_proposed: Accuracy
    truth_sources: dict[str, int]
    examples: list[ChangedCase]


def _name(outcome: Outcome) -> str:
    return outcome.department or MANUAL


def backtest(active: CompiledRules, proposed: CompiledRules, source: Iterable[Case], source_label: str = "",
             max_examples: int = 15) -> BacktestResult:
    """Route every case with both rule sets and compare."""
    load_a: Counter[str] = Counter()
    load_p: Counter[str] = Counter()
    deadlines: Counter[tuple[str, str]] = Counter()
    truth_sources: Counter[str] = Counter()
    examples: list[ChangedCase] = []
    n = dept_changed = prio_changed = dl_changed = direct_changed = 0
    known = correct_a = correct_p = role_a = role_p = manual_known_a = manual_known_p = 0
    role_of = _role_lookup(active, proposed)
    for case in source:
        n += 1
        a = decide(active, case.inputs, case.classifier_abstained)
        p = decide(proposed, case.inputs, case.classifier_abstained)
        load_a[_name(a)] += 1
        load_p[_name(p)] += 1
        if a.department != p.department:
            dept_changed += 1
            if len(examples) < max_examples:
                examples.append(ChangedCase(
                    case_id=case.case_id, category=case.inputs.category or case.inputs.kind,
                    district=case.inputs.district, active_department=a.department or a.manual_reason,
                    active_rule=a.rule_id, proposed_department=p.department or p.manual_reason,
                    proposed_rule=p.rule_id, true_department=case.true_department))
        prio_changed += a.priority != p.priority
        direct_changed += a.direct_answer_allowed != p.direct_answer_allowed
        if a.deadline_label != p.deadline_label:
            dl_changed += 1
            deadlines[(a.deadline_label, p.deadline_label)] += 1
        if case.true_department:
            known += 1
            truth_sources[case.truth or "given"] += 1
            correct_a += a.department == case.true_department
            correct_p += p.department == case.true_department
            true_role = role_of(case.true_department)
            role_a += true_role is not None and role_of(a.department) == true_role
            role_p += true_role is not None and role_of(p.department) == true_role
            manual_known_a += a.department is None
            manual_known_p += p.department is None
    departments = sorted(set(load_a) | set(load_p), key=lambda d: (-(load_a[d] + load_p[d]), d))
    return BacktestResult(
        source=source_label, active_version=active.label, proposed_version=proposed.label, cases=n,
        department_changed=dept_changed, priority_changed=prio_changed, deadline_changed=dl_changed,
        direct_answer_changed=direct_changed, manual_active=load_a[MANUAL], manual_proposed=load_p[MANUAL],
        loads=[DepartmentLoad(department=d, active=load_a[d], proposed=load_p[d]) for d in departments],
        deadline_changes=[DeadlineChange(active=f, proposed=t, cases=c)
                          for (f, t), c in sorted(deadlines.items())],
        accuracy_active=Accuracy(rules_version=active.label, known=known, correct=correct_a, correct_role=role_a,
                                 manual=manual_known_a),
        accuracy_proposed=Accuracy(rules_version=proposed.label, known=known, correct=correct_p, correct_role=role_p,
                                   manual=manual_known_p),
        truth_sources=dict(truth_sources), examples=examples,
    )


def _role_lookup(*rule_sets: CompiledRules) -> Callable[[str | None], str | None]:
    """A department name's role (城管, 教育 …) in any of the rule sets' directories; None for an unknown name."""
    roles = {name: department.role for rules in rule_sets for name, department in rules.directory.by_name.items()}
    return lambda name: roles.get(name) if name else None


# --- cases from stored tickets -----------------------------------------------------------------------------


def ticket_truth(ticket: Ticket) -> str | None:
    """The department that really handled a ticket, when a person said so (returned / reassigned / manual)."""
    if not ticket.department or ticket.status in (TicketStatus.RETURNED, TicketStatus.PENDING_MANUAL):
        return None
    for transition in ticket.transitions:
        if transition.transition in TRUTH_TRANSITIONS:
            return ticket.department
        from_manual = transition.from_status == TicketStatus.PENDING_MANUAL
        if from_manual and transition.to_status != TicketStatus.PENDING_MANUAL:
            return ticket.department
    return None


def case_from_ticket(ticket: Ticket, timezone: str) -> Case:
    decision: dict[str, Any] = ticket.decision or {}
    stored: dict[str, Any] = dict((decision.get("explanation") or {}).get("inputs") or {})
    stored.setdefault("source", ticket.source)
    stored.setdefault("district", ticket.district)
    if ticket.source == "hotline":
        stored.setdefault("category", ticket.category)
        title, text = ticket.title.strip(), ticket.description
        stored["text"] = text if not title or text.startswith(title) else f"{title}。{text}"
    if stored.get("hour") is None:
        created = ticket.created_at if ticket.created_at.tzinfo else ticket.created_at.replace(tzinfo=UTC)
        local = local_time(created, timezone)
        stored["hour"], stored["weekday"] = local.hour, local.isoweekday()
    inputs = RuleInputs.model_validate(stored)
    truth = ticket_truth(ticket)
    return Case(case_id=ticket.id, inputs=inputs,
                classifier_abstained=ticket.source == "hotline" and inputs.category is None,
                true_department=truth, truth="returned/reassigned ticket" if truth else None)


def cases_from_tickets(store: TicketStore, limit: int | None = None, timezone: str = "Asia/Shanghai") -> list[Case]:
    query = select(Ticket).options(selectinload(Ticket.transitions)).order_by(Ticket.created_at.desc(), Ticket.id)
    if limit:
        query = query.limit(limit)
    with store.session() as session:
        return [case_from_ticket(t, timezone) for t in session.scalars(query)]


# --- cases from a CSV of calls -------------------------------------------------------------------------------

_FORWARDED = re.compile(r"(?:转|转交|交由|交|由|责成|移交)[^，。；：]{0,3}$")


def department_from_reply(reply: str, place: str | None, directory: Directory) -> Department | None:
    """The department an official reply (答复意见) names as the handler; None when it names none."""
    mentions = directory.find_mentions(reply, place)
    if not mentions:
        return None
    for start, department in mentions:
        if _FORWARDED.search(reply[max(0, start - 6):start]):
            return department
    return mentions[0][1]


_COLUMNS = {  # our columns first, then the 问政 export's
    "id": ("id", "call_id", "留言编号"),
    "title": ("title", "留言主题"),
    "text": ("text", "留言详情"),
    "time": ("received_at", "留言时间"),
    "reply": ("reply", "答复意见"),
    "truth": ("true_department", "department"),
}


def _pick(row: dict[str, str], key: str) -> str:
    for column in _COLUMNS[key]:
        if row.get(column):
            return row[column]
    return ""


def _parse_time(value: str) -> datetime | None:
    for fmt in ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S",
                "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
    return None


def cases_from_csv(path: Path, classify: Callable[[HotlineTranscript], ClassifiedCall], directory: Directory,
                   timezone: str = "Asia/Shanghai", limit: int | None = None,
                   progress: Callable[[int, int], None] | None = None) -> tuple[list[Case], list[str]]:
    """Read calls and route them as the pipeline would: each goes through `classify` (the text stage's own
    function: category, sub-categories, place, urgency) and becomes the rules' inputs as a live call does.
    Returns the cases and, for each row that makes no valid call (no text, an over-long title …), why.
    `progress(done, total)` is called after each row. A time without a zone is local time in `timezone`."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(itertools.islice(csv.DictReader(handle), limit or None))
    zone = ZoneInfo(timezone)
    cases: list[Case] = []
    problems: list[str] = []
    for number, row in enumerate(rows, start=1):
        if progress is not None:
            progress(number, len(rows))
        title, text = _pick(row, "title"), _pick(row, "text")
        if row.get("form") == "tokenized":
            title, text = despace(title), despace(text)
        moment = _parse_time(_pick(row, "time"))
        try:
            transcript = HotlineTranscript(
                call_id=_pick(row, "id") or str(number), channel=Channel.OTHER, title=title or None, text=text,
                received_at=(moment if moment.tzinfo else moment.replace(tzinfo=zone)) if moment
                else datetime.now(UTC))
        except ValidationError as error:
            problems.append(f"{path.name} row {number + 1}: {summarise(error)}")
            continue
        call = classify(transcript)
        inputs = call_inputs(call, timezone)
        if moment is None:
            inputs.hour = inputs.weekday = None
        truth, origin = _pick(row, "truth") or None, "given"
        if truth is None and _pick(row, "reply"):
            named = department_from_reply(_pick(row, "reply"), inputs.district, directory)
            truth, origin = (named.name, "official reply") if named else (None, "")
        cases.append(Case(case_id=call.call_id, inputs=inputs, classifier_abstained=call.category is None,
                          true_department=truth, truth=origin if truth else None))
    return cases, problems


# --- report --------------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def print_backtest(result: BacktestResult, console: Console, top: int = 20) -> None:
    console.print(f"[bold]backtest[/] {result.source}: {result.cases} cases, active [cyan]{result.active_version}"
                  f"[/] vs proposed [magenta]{result.proposed_version}[/]")
    summary = Table(title="what changes", show_header=True)
    summary.add_column("measure")
    summary.add_column("cases", justify="right")
    summary.add_column("share", justify="right")
    for label, value in (("department changes", result.department_changed),
                         ("priority changes", result.priority_changed),
                         ("deadline changes", result.deadline_changed),
                         ("direct-answer verdict changes", result.direct_answer_changed),
                         ("manual queue (active)", result.manual_active),
                         ("manual queue (proposed)", result.manual_proposed)):
        summary.add_row(label, str(value), _pct(value / result.cases if result.cases else None))
    console.print(summary)
    loads = Table(title=f"department load (top {top} by volume)")
    for column in ("department", "active", "proposed", "Δ"):
        loads.add_column(column, justify="left" if column == "department" else "right")
    for load in result.loads[:top]:
        style = "bold" if load.delta else ""
        loads.add_row(load.department, str(load.active), str(load.proposed), f"{load.delta:+d}", style=style)
    console.print(loads)
    if result.deadline_changes:
        deadlines = Table(title="deadline changes")
        for column in ("active", "proposed", "cases"):
            deadlines.add_column(column, justify="right")
        for change in result.deadline_changes:
            deadlines.add_row(change.active, change.proposed, str(change.cases))
        console.print(deadlines)
    accuracy = Table(title="routing accuracy where the true handler is known")
    for column in ("version", "known", "correct", "manual", "accuracy", "right role"):
        accuracy.add_column(column, justify="left" if column == "version" else "right")
    for acc in (result.accuracy_active, result.accuracy_proposed):
        accuracy.add_row(acc.rules_version, str(acc.known), str(acc.correct), str(acc.manual), _pct(acc.accuracy),
                         _pct(acc.role_accuracy))
    console.print(accuracy)
    if result.truth_sources:
        console.print("true handler from: " + ", ".join(f"{k} {v}" for k, v in sorted(result.truth_sources.items())))
    if result.examples:
        examples = Table(title="examples of department changes")
        for column in ("case", "category", "district", "active", "proposed", "true"):
            examples.add_column(column, overflow="fold")
        for ex in result.examples:
            examples.add_row(ex.case_id, ex.category or "-", ex.district or "-",
                             f"{ex.active_department or '-'} [{ex.active_rule or '-'}]",
                             f"{ex.proposed_department or '-'} [{ex.proposed_rule or '-'}]",
                             ex.true_department or "-")
        console.print(examples)

