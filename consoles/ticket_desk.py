"""The ticket desks: one ticket with its trail, and the actions of whoever sits at the desk.

The manager's desk (MANAGER_DESK): 派单 (assign a pending_manual ticket), 改派 (reassign, e.g. after a 退单),
督办 (escalate), merge a duplicate, 回访 (record the callback: satisfied → verified, not satisfied → reopened)
and 结案 (close). The department's desk (DEPARTMENT_DESK): 签收 (accept), 退单 (return, with the reason),
start, 办结 (resolve, with the handling note and a photo); it sees only its own department's tickets.
The forms post to `act`, which runs the same `Lifecycle` the API runs, so the audit trail and the ticket
events are the same.
"""

from __future__ import annotations

import base64
import binascii
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select

from api.queries import ticket_detail
from api.schemas import TicketDetail
from classifiers.data import message_text
from classifiers.extract import is_city_wide
from classifiers.lexical import LexicalSimilarity, ticket_key
from dispatch_rules.directory import Directory
from tickets.lifecycle import OPEN_STATUSES, Action, Lifecycle, Photo, TransitionResult, allowed_actions
from tickets.models import Ticket, TicketAttachment, TicketStatus, column_length
from tickets.store import TicketStore

ACTION_LABELS = {
    Action.ASSIGN: "派单 Dispatch", Action.REASSIGN: "改派 Reassign", Action.ESCALATE: "督办 Escalate",
    Action.MERGE: "合并 Merge as duplicate", Action.VERIFY: "回访 Callback", Action.CLOSE: "结案 Close",
    Action.ACCEPT: "签收 Accept", Action.RETURN: "退单 Return", Action.START: "开始办理 Start",
    Action.RESOLVE: "办结 Resolve",
}
MERGE_CANDIDATES = 8
MERGE_POOL = 1000  # newest open tickets of the place that are scored for the merge list
CLOSE_MATCHES = 3



FIELD_LENGTHS = {  # form fields stored in a length-limited column
    "department": column_length(Ticket.__table__.c.department),
    "parent_ticket_id": column_length(Ticket.__table__.c.id),
    "photo_content_type": column_length(TicketAttachment.__table__.c.content_type),
}


@dataclass(frozen=True)
class Desk:
    base: str  # the console's path: its ticket pages are base + "/tickets/{id}"
    actions: tuple[Action, ...]
    for_department: bool  # sees and acts on its own department's tickets only


MANAGER_DESK = Desk("/console/manager", (Action.ASSIGN, Action.REASSIGN, Action.ESCALATE, Action.MERGE,
                                         Action.VERIFY, Action.CLOSE), for_department=False)
DEPARTMENT_DESK = Desk("/console/department", (Action.ACCEPT, Action.RETURN, Action.START, Action.RESOLVE),
                       for_department=True)


class DeskFormError(ValueError):
    """The form lacks what the action needs; the message names the field."""


@dataclass(frozen=True)
class DeskView:
    desk: Desk
    ticket: TicketDetail
    actions: list[Action]
    departments: list[str]  # directory bodies of the ticket's place and its city, for the department field
    merge_candidates: list[MergeCandidate]  # open tickets of the place, most alike first: likely parents


@dataclass(frozen=True)
class MergeCandidate:
    ticket: Ticket
    score: float  # LexicalSimilarity of the two tickets' title and description
    likely_duplicate: bool


def desk_view(desk: Desk, store: TicketStore, ticket_id: str, now: datetime, directory: Directory | None,
              lexical: LexicalSimilarity, merge_at: float, department: str | None = None) -> DeskView | None:
    """The ticket as `desk` shows it; None when there is none (or, at a department's desk, not theirs)."""
    ticket = ticket_detail(store, ticket_id, now, department=department if desk.for_department else None)
    if ticket is None:
        return None
    permitted = set(allowed_actions(ticket.status))
    if TicketStatus.RESOLVED.value == ticket.status:
        permitted.add(Action.VERIFY)  # verify and reopen are one callback form
    manager = not desk.for_department
    return DeskView(desk=desk, ticket=ticket, actions=[a for a in desk.actions if a in permitted],
                    departments=department_choices(directory, ticket.district) if manager else [],
                    merge_candidates=_merge_candidates(store, ticket, lexical, merge_at) if manager else [])


def department_choices(directory: Directory | None, district: str | None) -> list[str]:
    if directory is None:
        return []
    city = directory.city_of(district)
    places = [p for p in (directory.place(district), directory.place(city)) if p is not None]
    codes = {p.code for p in places}
    local = [d.name for d in directory.departments.values() if d.place in codes]
    return sorted(local) or sorted(directory.by_name)


def _merge_candidates(store: TicketStore, ticket: TicketDetail, lexical: LexicalSimilarity,
                      merge_at: float) -> list[MergeCandidate]:
    """Open tickets of the same district (or placed only in the city), ranked by how alike their text is: the
    score the agent's merge suggestion uses, so a category the classifier got wrong hides no duplicate."""
    with store.session() as session:
        query = (select(Ticket).where(Ticket.id != ticket.id, Ticket.status.in_([s.value for s in OPEN_STATUSES]))
                 .order_by(Ticket.created_at.desc()).limit(MERGE_POOL))
        if not is_city_wide(ticket.district):
            districts = session.scalars(select(Ticket.district).distinct())
            alike = [d for d in districts if d == ticket.district or is_city_wide(d)]
            query = query.where(or_(Ticket.district.in_(alike), Ticket.district.is_(None)))
        pool = list(session.scalars(query))
    if not pool:
        return []
    scores = lexical.scores_by_key(message_text(ticket.title, ticket.description), [ticket_key(t.id) for t in pool],
                                   [message_text(t.title, t.description) for t in pool])
    ranked = sorted(zip(pool, scores, strict=True), key=lambda pair: -pair[1])[:MERGE_CANDIDATES]
    return [MergeCandidate(t, float(score), float(score) >= merge_at) for t, score in ranked]


def _field(form: dict[str, str], name: str, what: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise DeskFormError(f"{what} is required (form field '{name}')")
    return value


def _optional(form: dict[str, str], name: str) -> str | None:
    return form.get(name, "").strip() or None


def _callback(lifecycle: Lifecycle, ticket_id: str, actor: str, form: dict[str, str]) -> TransitionResult:
    verdict = form.get("satisfied", "")
    if verdict not in ("yes", "no"):
        raise DeskFormError("the citizen's answer is required (form field 'satisfied': yes or no)")
    if verdict == "yes":
        return lifecycle.verify(ticket_id, actor, satisfied=True, reason=_optional(form, "reason"))
    department = _optional(form, "department")
    reopen_to = TicketStatus.DISPATCHED if department else TicketStatus.IN_PROGRESS
    return lifecycle.verify(ticket_id, actor, satisfied=False, reason=_field(form, "reason", "why not satisfied"),
                            reopen_to=reopen_to, department=department)


def _photo(form: dict[str, str]) -> Photo | None:
    encoded = form.get("photo_base64", "").strip()
    if not encoded:
        return None
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise DeskFormError("the photo is not valid base64 (form field 'photo_base64')") from None
    return Photo(data, form.get("photo_content_type", "").strip() or "image/jpeg")


Runner = Callable[[Lifecycle, str, str, dict[str, str]], TransitionResult]
DepartmentRunner = Callable[[Lifecycle, str, str, dict[str, str], str], TransitionResult]

DEPARTMENT_RUNNERS: dict[Action, DepartmentRunner] = {
    Action.ACCEPT: lambda lc, tid, actor, form, dept: lc.accept(
        tid, actor, as_department=dept, reason=_optional(form, "reason")),
    Action.RETURN: lambda lc, tid, actor, form, dept: lc.return_ticket(
        tid, actor, _field(form, "reason", "why it is not your department's (退单理由)"), as_department=dept),
    Action.START: lambda lc, tid, actor, form, dept: lc.start(
        tid, actor, as_department=dept, reason=_optional(form, "reason")),
    Action.RESOLVE: lambda lc, tid, actor, form, dept: lc.resolve(
        tid, actor, _field(form, "note", "the handling note (办理情况)"), photo=_photo(form), as_department=dept),
}
RUNNERS: dict[Action, Runner] = {
    Action.ASSIGN: lambda lc, tid, actor, form: lc.assign(
        tid, _field(form, "department", "a department"), actor, _optional(form, "reason")),
    Action.REASSIGN: lambda lc, tid, actor, form: lc.reassign(
        tid, _field(form, "department", "a department"), actor, _field(form, "reason", "a reason")),
    Action.ESCALATE: lambda lc, tid, actor, form: lc.escalate(tid, actor, _field(form, "reason", "a reason")),
    Action.MERGE: lambda lc, tid, actor, form: lc.merge(
        tid, _field(form, "parent_ticket_id", "the ticket to merge into"), actor, _field(form, "reason", "a reason")),
    Action.VERIFY: _callback,
    Action.CLOSE: lambda lc, tid, actor, form: lc.close(tid, actor, _optional(form, "reason")),
}


def act(desk: Desk, lifecycle: Lifecycle, ticket_id: str, action: str, actor: str, form: dict[str, str],
        department: str | None = None, directory: Directory | None = None) -> TransitionResult:
    """Run one of the desk's actions; raises DeskFormError for a bad form and the lifecycle's errors for the rest.
    At the manager's desk a department the ticket is sent to must be one of `directory`'s."""
    chosen = next((a for a in desk.actions if a.value == action), None)
    if chosen is None:
        raise DeskFormError(f"unknown action '{action}' (one of: {', '.join(a.value for a in desk.actions)})")
    _check_lengths(form)
    if desk.for_department:
        if not department:
            raise DeskFormError("this user belongs to no department")
        return DEPARTMENT_RUNNERS[chosen](lifecycle, ticket_id, actor, form, department)
    target = _sent_to(chosen, form)
    if target is not None and directory is not None:
        check_department(directory, target)
    return RUNNERS[chosen](lifecycle, ticket_id, actor, form)


def _check_lengths(form: dict[str, str]) -> None:
    for name, length in FIELD_LENGTHS.items():
        if len(form.get(name, "").strip()) > length:
            raise DeskFormError(f"form field '{name}' is longer than {length} characters")


def _sent_to(action: Action, form: dict[str, str]) -> str | None:
    """The department the action sends the ticket to, if it sends it anywhere."""
    sends = action in (Action.ASSIGN, Action.REASSIGN) or (action is Action.VERIFY and form.get("satisfied") == "no")
    return _optional(form, "department") if sends else None


def check_department(directory: Directory, name: str) -> None:
    """A department no body of the directory bears would never show on any department's console."""
    if name in directory.by_name:
        return
    close = difflib.get_close_matches(name, list(directory.by_name), n=CLOSE_MATCHES, cutoff=0.5)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise DeskFormError(f"'{name}' is not a department of the active rules' directory (field 'department')"
                        f"{hint}")


def department_queue(store: TicketStore, department: str, limit: int = 100) -> tuple[list[Ticket], list[Ticket]]:
    """The department's open work (escalated first, then soonest deadline) and its latest handled tickets."""
    working = [TicketStatus.DISPATCHED.value, TicketStatus.ACCEPTED.value, TicketStatus.IN_PROGRESS.value]
    handled = [TicketStatus.RESOLVED.value, TicketStatus.VERIFIED.value, TicketStatus.CLOSED.value]
    with store.session() as session:
        queue = list(session.scalars(
            select(Ticket).where(Ticket.department == department, Ticket.status.in_(working))
            .order_by(Ticket.escalation_level.desc(), Ticket.deadline_at, Ticket.id).limit(limit)))
        done = list(session.scalars(
            select(Ticket).where(Ticket.department == department, Ticket.status.in_(handled))
            .order_by(Ticket.updated_at.desc(), Ticket.id).limit(10)))
    return queue, done
