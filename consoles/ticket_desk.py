"""The manager's ticket desk: one ticket with its trail, and the dispatcher's actions on it.

派单 (assign a pending_manual ticket), 改派 (reassign, e.g. after a 退单), 督办 (escalate), merge a duplicate,
回访 (record the callback: satisfied → verified, not satisfied → reopened) and 结案 (close). The forms post
to `act`, which runs the same `Lifecycle` the API runs, so the audit trail and the ticket events are the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from api.queries import ticket_detail
from api.schemas import TicketDetail
from dispatch_rules.directory import Directory
from tickets.lifecycle import OPEN_STATUSES, Action, Lifecycle, TransitionResult, allowed_actions
from tickets.models import Ticket, TicketStatus
from tickets.store import TicketStore

DESK_ACTIONS = (Action.ASSIGN, Action.REASSIGN, Action.ESCALATE, Action.MERGE, Action.VERIFY, Action.CLOSE)
ACTION_LABELS = {
    Action.ASSIGN: "派单 Dispatch", Action.REASSIGN: "改派 Reassign", Action.ESCALATE: "督办 Escalate",
    Action.MERGE: "合并 Merge as duplicate", Action.VERIFY: "回访 Callback", Action.CLOSE: "结案 Close",
}
MERGE_CANDIDATES = 8


class DeskFormError(ValueError):
    """The form lacks what the action needs; the message names the field."""


@dataclass(frozen=True)
class DeskView:
    ticket: TicketDetail
    actions: list[Action]
    departments: list[str]  # directory bodies of the ticket's place and its city, for the department field
    merge_candidates: list[Ticket]  # open tickets of the same district and category: likely parents


def desk_view(store: TicketStore, ticket_id: str, now: datetime, directory: Directory | None) -> DeskView | None:
    ticket = ticket_detail(store, ticket_id, now)
    if ticket is None:
        return None
    permitted = set(allowed_actions(ticket.status))
    if TicketStatus.RESOLVED.value == ticket.status:
        permitted.add(Action.VERIFY)  # verify and reopen are one callback form
    return DeskView(ticket=ticket, actions=[a for a in DESK_ACTIONS if a in permitted],
                    departments=department_choices(directory, ticket.district),
                    merge_candidates=_merge_candidates(store, ticket))


def department_choices(directory: Directory | None, district: str | None) -> list[str]:
    if directory is None:
        return []
    city = directory.city_of(district)
    places = [p for p in (directory.place(district), directory.place(city)) if p is not None]
    codes = {p.code for p in places}
    local = [d.name for d in directory.departments.values() if d.place in codes]
    return sorted(local) or sorted(directory.by_name)


def _merge_candidates(store: TicketStore, ticket: TicketDetail) -> list[Ticket]:
    if ticket.district is None:
        return []
    with store.session() as session:
        return list(session.scalars(
            select(Ticket).where(Ticket.id != ticket.id, Ticket.district == ticket.district,
                                 Ticket.category == ticket.category,
                                 Ticket.status.in_([s.value for s in OPEN_STATUSES]))
            .order_by(Ticket.created_at.desc()).limit(MERGE_CANDIDATES)))


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


RUNNERS: dict[Action, Callable[[Lifecycle, str, str, dict[str, str]], TransitionResult]] = {
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


def act(lifecycle: Lifecycle, ticket_id: str, action: str, actor: str, form: dict[str, str]) -> TransitionResult:
    """Run one desk action; raises DeskFormError for a bad form and the lifecycle's errors for the rest."""
    try:
        chosen = Action(action)
    except ValueError:
        chosen = None
    if chosen not in RUNNERS or chosen is None:
        raise DeskFormError(f"unknown action '{action}' (one of: {', '.join(a.value for a in DESK_ACTIONS)})")
    return RUNNERS[chosen](lifecycle, ticket_id, actor, form)
