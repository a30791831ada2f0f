"""The closed loop of 接诉即办 as an explicit state machine.

    pending_manual --assign--> dispatched --accept--> accepted --start--> in_progress --resolve--> resolved
    dispatched|accepted --return (退单, reason)--> returned --reassign--> dispatched
    resolved --verify (citizen satisfied)--> verified --close--> closed
    resolved --reopen (citizen not satisfied, reason)--> in_progress | dispatched
    any open status --escalate (督办)--> same status, escalation level + 1
    any status but closed/merged --merge--> merged (child of a parent ticket; the parent records merge_child)
    merged --reparent--> merged (a duplicate follows its parent when that parent is merged in turn)

Every transition is written to ticket_transitions (who, when, why) in the same database transaction as the
change, together with its TicketEvent in the outbox (tickets/outbox.py); once committed, the outbox is relayed
to the tickets topic through the Transport the Lifecycle was given (a failed publish leaves the event pending
for the next relay, the transition stands). The events are in the returned TransitionResult in any case.
A transition the machine does not allow raises IllegalTransition naming the ticket, its status and the
attempted action.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts import TicketEvent
from streams.transport import Transport
from tickets import outbox
from tickets.models import OPEN_STATUSES as OPEN_STATUSES  # re-exported: the consoles and API import it here
from tickets.models import Ticket, TicketAttachment, TicketStatus, TicketTransition
from tickets.stage import ticket_event
from tickets.store import TicketStore

SWEEP_ACTOR = "system:overdue-sweep"
MAX_PHOTO_BYTES = 10 * 1024 * 1024


class Action(StrEnum):
    ASSIGN = "assign"  # manual dispatch of a pending_manual ticket
    ACCEPT = "accept"
    RETURN = "return"  # 退单
    REASSIGN = "reassign"  # 改派
    START = "start"
    RESOLVE = "resolve"
    VERIFY = "verify"  # callback: citizen satisfied
    REOPEN = "reopen"  # callback: citizen not satisfied
    CLOSE = "close"  # 结案
    ESCALATE = "escalate"  # 督办
    MERGE = "merge"  # this ticket is a duplicate of another
    MERGE_CHILD = "merge_child"  # recorded on the parent a duplicate was merged into
    REPARENT = "reparent"  # recorded on a duplicate moved to the ticket its parent was merged into


S = TicketStatus
FINAL_STATUSES: frozenset[TicketStatus] = frozenset({S.CLOSED, S.MERGED})
DONE_STATUSES: frozenset[TicketStatus] = frozenset({S.RESOLVED, S.VERIFIED, S.CLOSED})

# action -> {from status: the statuses it may lead to}
TRANSITIONS: dict[Action, dict[TicketStatus, frozenset[TicketStatus]]] = {
    Action.ASSIGN: {S.PENDING_MANUAL: frozenset({S.DISPATCHED})},
    Action.ACCEPT: {S.DISPATCHED: frozenset({S.ACCEPTED})},
    Action.RETURN: {s: frozenset({S.RETURNED}) for s in (S.DISPATCHED, S.ACCEPTED)},
    Action.REASSIGN: {s: frozenset({S.DISPATCHED}) for s in (S.RETURNED, S.DISPATCHED, S.ACCEPTED, S.IN_PROGRESS)},
    Action.START: {S.ACCEPTED: frozenset({S.IN_PROGRESS})},
    Action.RESOLVE: {S.IN_PROGRESS: frozenset({S.RESOLVED})},
    Action.VERIFY: {S.RESOLVED: frozenset({S.VERIFIED})},
    Action.REOPEN: {S.RESOLVED: frozenset({S.IN_PROGRESS, S.DISPATCHED})},
    Action.CLOSE: {S.VERIFIED: frozenset({S.CLOSED})},
    Action.ESCALATE: {s: frozenset({s}) for s in OPEN_STATUSES},
    Action.MERGE: {s: frozenset({S.MERGED}) for s in OPEN_STATUSES | {S.RESOLVED, S.VERIFIED}},
    Action.MERGE_CHILD: {s: frozenset({s}) for s in TicketStatus if s not in FINAL_STATUSES},
    Action.REPARENT: {S.MERGED: frozenset({S.MERGED})},
}
_DONE_BY_MERGES = frozenset({Action.MERGE_CHILD, Action.REPARENT})  # never asked for on the ticket itself


def allowed_actions(status: TicketStatus | str) -> list[Action]:
    """What can be done to a ticket in this status (merge_child and reparent are done by a merge)."""
    current = TicketStatus(status)
    return [a for a, table in TRANSITIONS.items() if current in table and a not in _DONE_BY_MERGES]


class LifecycleError(Exception):
    """Base of the errors a lifecycle operation raises; the message says what was wrong."""


class TicketNotFound(LifecycleError, LookupError):
    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"ticket {ticket_id} not found")
        self.ticket_id = ticket_id


class IllegalTransition(LifecycleError):
    def __init__(self, ticket_id: str, status: str, action: Action, detail: str | None = None) -> None:
        from_text = ", ".join(sorted(TRANSITIONS[action])) or "no status"
        message = f"ticket {ticket_id} is {status}: cannot {action} it"
        message += f" ({detail})" if detail else f" ({action} is allowed from: {from_text})"
        super().__init__(message)
        self.ticket_id, self.status, self.action = ticket_id, status, action


class InvalidTransitionRequest(LifecycleError, ValueError):
    """The transition is allowed but the request lacks what it needs (a reason, a department, a note ...)."""

    def __init__(self, ticket_id: str, action: str, problem: str) -> None:
        super().__init__(f"cannot {action} ticket {ticket_id}: {problem}")
        self.ticket_id, self.action = ticket_id, action


@dataclass(frozen=True)
class Photo:
    data: bytes
    content_type: str

    def problem(self) -> str | None:
        if not self.data:
            return "the photo is empty"
        if len(self.data) > MAX_PHOTO_BYTES:
            return f"the photo is {len(self.data)} bytes, more than {MAX_PHOTO_BYTES}"
        kind = sniff_image(self.data)
        if kind is None:
            return "the photo is neither JPEG nor PNG"
        if kind != self.content_type:
            return f"the photo is {kind}, not {self.content_type}"
        return None


def sniff_image(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return None


@dataclass(frozen=True)
class TransitionResult:
    ticket: Ticket
    transitions: list[TicketTransition]
    events: list[TicketEvent]
    attachment_id: int | None = None


@dataclass(frozen=True)
class EscalationPolicy:
    """督办: level 1 once the deadline passes, one level more every `step_hours` after, up to `max_level`."""

    step_hours: float = 24.0
    max_level: int = 3

    def level_due(self, deadline_at: datetime, now: datetime) -> int:
        overdue = (now - deadline_at).total_seconds()
        if overdue <= 0:
            return 0
        return min(self.max_level, 1 + math.floor(overdue / (self.step_hours * 3600)))


def _utc(moment: datetime) -> datetime:
    """Aware and in UTC (SQLite hands datetimes back naive; they were stored in UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _required(text: str | None, ticket_id: str, action: Action, what: str) -> str:
    if text is None or not text.strip():
        raise InvalidTransitionRequest(ticket_id, action, f"{what} is required")
    return text.strip()


@dataclass
class _Change:
    """What one transition does besides moving the status."""

    reason: str | None = None
    target: TicketStatus | None = None
    department: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    apply: Callable[[Ticket, datetime], None] | None = None
    photo: Photo | None = None


class Lifecycle:
    """Moves tickets through the loop; publishes each transition's TicketEvent on `transport` when given.

    `as_department` on department actions makes the ticket invisible (TicketNotFound) unless it is with
    that department, checked inside the same transaction as the change.
    """

    def __init__(
        self,
        store: TicketStore,
        transport: Transport | None = None,
        *,
        policy: EscalationPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.transport = transport
        self.policy = policy or EscalationPolicy()
        self._clock = clock or (lambda: datetime.now(UTC))
        self.relay = outbox.OutboxRelay(store, transport) if transport is not None else None

    # ---- dispatcher / manager ---------------------------------------------------------------------------
    def assign(self, ticket_id: str, department: str, actor: str, reason: str | None = None) -> TransitionResult:
        """Manual dispatch of a ticket from the pending_manual queue."""
        department = _required(department, ticket_id, Action.ASSIGN, "a department")
        return self._run(ticket_id, Action.ASSIGN, actor, _Change(
            reason=reason or f"manual dispatch to {department}", department=department))

    def reassign(self, ticket_id: str, department: str, actor: str, reason: str) -> TransitionResult:
        """改派: a returned (or still unfinished) ticket goes to a department again."""
        department = _required(department, ticket_id, Action.REASSIGN, "a department")
        reason = _required(reason, ticket_id, Action.REASSIGN, "a reason")
        return self._run(ticket_id, Action.REASSIGN, actor, _Change(reason=reason, department=department))

    def escalate(self, ticket_id: str, actor: str, reason: str) -> TransitionResult:
        """督办 by a manager: one escalation level more."""
        reason = _required(reason, ticket_id, Action.ESCALATE, "a reason")
        return self._run(ticket_id, Action.ESCALATE, actor, self._escalation(None, reason))

    def escalate_overdue(self, now: datetime | None = None, actor: str = SWEEP_ACTOR) -> list[TransitionResult]:
        """Raise every open overdue ticket to the level the policy says it is due; idempotent for a given now."""
        now = _utc(now or self._clock())
        with self.store.session() as session:
            rows = session.execute(
                select(Ticket.id, Ticket.deadline_at, Ticket.escalation_level)
                .where(Ticket.status.in_([s.value for s in OPEN_STATUSES]), Ticket.deadline_at < now)
                .order_by(Ticket.deadline_at)
            ).all()
        results = []
        for ticket_id, deadline_at, level in rows:
            due = self.policy.level_due(_utc(deadline_at), now)
            if due <= level:
                continue
            overdue_hours = (now - _utc(deadline_at)).total_seconds() / 3600
            reason = f"overdue by {overdue_hours:.1f} h (deadline {_utc(deadline_at):%Y-%m-%d %H:%M} UTC)"
            try:
                results.append(self._run(ticket_id, Action.ESCALATE, actor, self._escalation(due, reason), at=now))
            except (IllegalTransition, _AlreadyAtLevel):  # handled or escalated meanwhile
                continue
        return results

    def merge(self, child_id: str, parent_id: str, actor: str, reason: str) -> TransitionResult:
        """A duplicate goes under its parent: the child becomes merged, both record it. Duplicates already
        merged into the child move to the parent with it, each recording the move (reparent)."""
        reason = _required(reason, child_id, Action.MERGE, "a reason")
        if child_id == parent_id:
            raise InvalidTransitionRequest(child_id, Action.MERGE, "a ticket cannot be merged into itself")
        now = _utc(self._clock())
        with self.store.session() as session, session.begin():
            child, parent, duplicates = self._lock_for_merge(session, child_id, parent_id)
            if parent.parent_ticket_id is not None or parent.status == S.MERGED:
                raise IllegalTransition(parent.id, parent.status, Action.MERGE_CHILD,
                                        f"it is itself merged into {parent.parent_ticket_id}")
            child_to = self._target(child, Action.MERGE, None)
            parent_to = self._target(parent, Action.MERGE_CHILD, None)
            child.parent_ticket_id = parent.id
            child_t = self._record(session, child, Action.MERGE, child_to, actor, now,
                                   f"duplicate of {parent.id}: {reason}", {"parent_ticket_id": parent.id})
            absorbed: dict[str, Any] = {"child_ticket_id": child.id}
            if duplicates:
                absorbed["moved_children"] = [d.id for d in duplicates]
            parent_t = self._record(session, parent, Action.MERGE_CHILD, parent_to, actor, now,
                                    f"absorbed duplicate {child.id}: {reason}", absorbed)
            moves = [self._reparent(session, d, child, parent, actor, now) for d in duplicates]
            changed = [(child, child_t), (parent, parent_t), *zip(duplicates, moves, strict=True)]
            events = [ticket_event(ticket, transition) for ticket, transition in changed]
            outbox.stage(session, events, now)
        self._relay_outbox()
        return TransitionResult(child, [child_t, parent_t, *moves], events)

    # ---- department ---------------------------------------------------------------------------------------
    def accept(self, ticket_id: str, actor: str, *, as_department: str | None = None,
               reason: str | None = None) -> TransitionResult:
        return self._run(ticket_id, Action.ACCEPT, actor, _Change(reason=reason), as_department=as_department)

    def return_ticket(self, ticket_id: str, actor: str, reason: str, *,
                      as_department: str | None = None) -> TransitionResult:
        """退单: the department says the case is not theirs; it goes back to the dispatcher."""
        reason = _required(reason, ticket_id, Action.RETURN, "a reason")
        return self._run(ticket_id, Action.RETURN, actor, _Change(reason=reason), as_department=as_department)

    def start(self, ticket_id: str, actor: str, *, as_department: str | None = None,
              reason: str | None = None) -> TransitionResult:
        return self._run(ticket_id, Action.START, actor, _Change(reason=reason), as_department=as_department)

    def resolve(self, ticket_id: str, actor: str, note: str, *, photo: Photo | None = None,
                as_department: str | None = None) -> TransitionResult:
        note = _required(note, ticket_id, Action.RESOLVE, "a handling note")
        if photo is not None and (problem := photo.problem()):
            raise InvalidTransitionRequest(ticket_id, Action.RESOLVE, problem)

        def write_note(ticket: Ticket, _now: datetime) -> None:
            ticket.resolution_note = note

        return self._run(ticket_id, Action.RESOLVE, actor, _Change(reason=note, apply=write_note, photo=photo),
                         as_department=as_department)

    # ---- call centre: the citizen's callback, and closing -------------------------------------------------
    def verify(self, ticket_id: str, actor: str, *, satisfied: bool, reason: str | None = None,
               reopen_to: TicketStatus = TicketStatus.IN_PROGRESS, department: str | None = None) -> TransitionResult:
        """Record the callback: satisfied -> verified; not satisfied -> reopened (in_progress or dispatched)."""
        if satisfied:
            def mark_satisfied(ticket: Ticket, _now: datetime) -> None:
                ticket.satisfaction = "satisfied"

            return self._run(ticket_id, Action.VERIFY, actor, _Change(
                reason=reason or "citizen satisfied", apply=mark_satisfied, details={"satisfied": True}))
        reason = _required(reason, ticket_id, Action.REOPEN, "a reason (why the citizen is not satisfied)")
        if reopen_to not in (S.IN_PROGRESS, S.DISPATCHED):
            raise InvalidTransitionRequest(ticket_id, Action.REOPEN, "reopen goes to in_progress or dispatched")
        if department is not None and reopen_to is not S.DISPATCHED:
            raise InvalidTransitionRequest(ticket_id, Action.REOPEN, "a new department needs reopen_to dispatched")
        if department is not None:
            department = _required(department, ticket_id, Action.REOPEN, "a department")

        def mark_unsatisfied(ticket: Ticket, _now: datetime) -> None:
            ticket.satisfaction = "unsatisfied"

        return self._run(ticket_id, Action.REOPEN, actor, _Change(
            reason=f"citizen not satisfied: {reason}", target=reopen_to, department=department,
            apply=mark_unsatisfied, details={"satisfied": False}))

    def close(self, ticket_id: str, actor: str, reason: str | None = None) -> TransitionResult:
        return self._run(ticket_id, Action.CLOSE, actor, _Change(reason=reason or "closed after callback"))

    # ---- machinery ------------------------------------------------------------------------------------------
    def _escalation(self, level: int | None, reason: str) -> _Change:
        change = _Change(reason=reason)

        def raise_level(ticket: Ticket, now: datetime) -> None:
            new_level = (ticket.escalation_level or 0) + 1 if level is None else level
            if new_level <= (ticket.escalation_level or 0):
                raise _AlreadyAtLevel()
            ticket.escalation_level = new_level
            ticket.escalated_at = now
            change.details["escalation_level"] = new_level
            change.reason = f"督办 level {new_level}: {reason}"

        change.apply = raise_level
        return change

    def _run(self, ticket_id: str, action: Action, actor: str, change: _Change, *,
             as_department: str | None = None, at: datetime | None = None) -> TransitionResult:
        if not actor.strip():
            raise InvalidTransitionRequest(ticket_id, action, "the actor is required")
        now = _utc(at or self._clock())
        attachment_id = None
        with self.store.session() as session, session.begin():
            ticket = self._load(session, ticket_id, as_department)
            to_status = self._target(ticket, action, change.target)
            if change.department is not None:
                ticket.department = change.department
            if change.apply is not None:
                change.apply(ticket, now)
            transition = self._record(session, ticket, action, to_status, actor, now, change.reason, change.details)
            if change.photo is not None:
                attachment = _attachment(ticket.id, transition.id, change.photo, actor, now)
                session.add(attachment)
                session.flush()
                attachment_id = attachment.id
                transition.details = {**(transition.details or {}), "photo_attachment_id": attachment_id}
            events = [ticket_event(ticket, transition)]
            outbox.stage(session, events, now)
        self._relay_outbox()
        return TransitionResult(ticket, [transition], events, attachment_id)

    def _lock_for_merge(self, session: Session, child_id: str, parent_id: str) -> tuple[Ticket, Ticket, list[Ticket]]:
        """The child, the parent and the child's own duplicates, locked in one statement in id order, so that
        crossed merges (A into B, B into A) queue on PostgreSQL instead of deadlocking."""
        family = Ticket.id.in_([child_id, parent_id]) | (Ticket.parent_ticket_id == child_id)
        locked = {t.id: t for t in session.scalars(
            select(Ticket).where(family).order_by(Ticket.id).with_for_update()
            .execution_options(populate_existing=True))}
        for ticket_id in (child_id, parent_id):
            if ticket_id not in locked:
                raise TicketNotFound(ticket_id)
        # asked again now the child is locked: a merge into it that committed meanwhile is seen by a new statement
        duplicates = list(session.scalars(
            select(Ticket).where(Ticket.parent_ticket_id == child_id).order_by(Ticket.id).with_for_update()
            .execution_options(populate_existing=True)))
        return locked[child_id], locked[parent_id], duplicates

    def _reparent(self, session: Session, duplicate: Ticket, old_parent: Ticket, new_parent: Ticket, actor: str,
                  now: datetime) -> TicketTransition:
        to_status = self._target(duplicate, Action.REPARENT, None)
        duplicate.parent_ticket_id = new_parent.id
        return self._record(session, duplicate, Action.REPARENT, to_status, actor, now,
                            f"duplicate of {new_parent.id}: its parent {old_parent.id} was merged into it",
                            {"parent_ticket_id": new_parent.id, "previous_parent_ticket_id": old_parent.id})

    def _load(self, session: Session, ticket_id: str, as_department: str | None = None) -> Ticket:
        ticket = session.scalars(select(Ticket).where(Ticket.id == ticket_id).with_for_update()).first()
        if ticket is None or (as_department is not None and ticket.department != as_department):
            raise TicketNotFound(ticket_id)
        return ticket

    @staticmethod
    def _target(ticket: Ticket, action: Action, wanted: TicketStatus | None) -> TicketStatus:
        targets = TRANSITIONS[action].get(TicketStatus(ticket.status))
        if targets is None:
            raise IllegalTransition(ticket.id, ticket.status, action)
        if wanted is None:
            if len(targets) != 1:
                raise InvalidTransitionRequest(ticket.id, action, f"say which status: {', '.join(sorted(targets))}")
            return next(iter(targets))
        if wanted not in targets:
            raise IllegalTransition(ticket.id, ticket.status, action,
                                    f"{action} leads to {', '.join(sorted(targets))}, not {wanted}")
        return wanted

    @staticmethod
    def _record(session: Session, ticket: Ticket, action: Action, to_status: TicketStatus, actor: str,
                now: datetime, reason: str | None, details: dict[str, Any] | None) -> TicketTransition:
        transition = TicketTransition(
            ticket_id=ticket.id, transition=action.value, from_status=ticket.status, to_status=to_status.value,
            actor=actor, reason=reason, at=now, department=ticket.department, details=dict(details or {}) or None,
        )
        ticket.status = to_status.value
        ticket.updated_at = now
        session.add(transition)
        session.flush()
        return transition

    def _relay_outbox(self) -> None:
        if self.relay is not None:
            self.relay.relay_quietly()


class _AlreadyAtLevel(Exception):
    """The sweep found the ticket escalated meanwhile; nothing to record."""


def _attachment(ticket_id: str, transition_id: int, photo: Photo, actor: str, now: datetime) -> TicketAttachment:
    return TicketAttachment(
        ticket_id=ticket_id, transition_id=transition_id, kind="photo", content_type=photo.content_type,
        size=len(photo.data), sha256=hashlib.sha256(photo.data).hexdigest(), data=photo.data,
        created_by=actor, created_at=now,
    )


def attachment(store: TicketStore, ticket_id: str, attachment_id: int) -> TicketAttachment | None:
    with store.session() as session:
        return session.scalars(select(TicketAttachment).where(
            TicketAttachment.id == attachment_id, TicketAttachment.ticket_id == ticket_id)).first()


# ---- 响应率 / 解决率 / 满意率 --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rate:
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None

    def as_dict(self) -> dict[str, Any]:
        return {"numerator": self.numerator, "denominator": self.denominator, "value": self.value}


@dataclass(frozen=True)
class RateSet:
    response: Rate  # 响应率: dispatches accepted within response_hours of the dispatch
    resolution: Rate  # 解决率: dispatched tickets now resolved (or verified, closed)
    satisfaction: Rate  # 满意率: tickets whose latest callback found the citizen satisfied

    def as_dict(self) -> dict[str, Any]:
        return {"response": self.response.as_dict(), "resolution": self.resolution.as_dict(),
                "satisfaction": self.satisfaction.as_dict()}


@dataclass(frozen=True)
class Rates:
    since: datetime
    until: datetime
    response_hours: float
    overall: RateSet
    by_department: dict[str, RateSet]

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat(),
                "response_hours": self.response_hours, **self.overall.as_dict(),
                "by_department": {d: r.as_dict() for d, r in sorted(self.by_department.items())}}


_DISPATCHES = frozenset({"create", Action.ASSIGN, Action.REASSIGN, Action.REOPEN})
_STATUS_KEEPING = frozenset({Action.ESCALATE, Action.MERGE_CHILD})


class _Tally:
    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    def add(self, department: str | None, hit: bool) -> None:
        for key in ("", department or "(none)"):
            self.counts[key][1] += 1
            self.counts[key][0] += int(hit)

    def rate(self, key: str) -> Rate:
        numerator, denominator = self.counts.get(key, [0, 0])
        return Rate(numerator, denominator)


def rates(store: TicketStore, since: datetime, *, until: datetime | None = None,
          response_hours: float = 24.0) -> Rates:
    """响应率, 解决率 and 满意率 over the dispatches and callbacks made since `since`, overall and per department.

    - response: each dispatch (auto, manual assign, reassign, reopen to dispatched) since `since` counts once; it
      is responded when the next status change is `accept` within `response_hours`. Dispatches whose window
      is still open and not yet accepted are left out; dispatches ended by a merge are left out.
    - resolution: tickets dispatched since `since` (merged duplicates left out) whose status is now resolved,
      verified or closed, over all of them; per department by the ticket's department now.
    - satisfaction: tickets given a callback since `since`, satisfied when the latest callback was; per
      department by the department that resolved the ticket before that callback.
    """
    since, until = _utc(since), _utc(until or datetime.now(UTC))
    window = timedelta(hours=response_hours)
    with store.session() as session:
        transitions = list(session.scalars(
            select(TicketTransition).where(TicketTransition.at >= since, TicketTransition.at <= until)
            .order_by(TicketTransition.ticket_id, TicketTransition.id)))
        ticket_ids = {t.ticket_id for t in transitions}
        tickets = {t.id: t for t in _in_chunks(session, ticket_ids)}
    by_ticket: dict[str, list[TicketTransition]] = defaultdict(list)
    for transition in transitions:
        by_ticket[transition.ticket_id].append(transition)

    response, resolution, satisfaction = _Tally(), _Tally(), _Tally()
    for ticket_id, trail in by_ticket.items():
        ticket = tickets[ticket_id]
        dispatched = False
        for i, transition in enumerate(trail):
            if transition.to_status != S.DISPATCHED or transition.transition not in _DISPATCHES:
                continue
            dispatched = True
            department = transition.department or _decided_department(ticket)
            at = _utc(transition.at)
            following = next((t for t in trail[i + 1:] if t.transition not in _STATUS_KEEPING), None)
            if following is None:
                if until - at > window:
                    response.add(department, False)
            elif following.transition == Action.MERGE:
                continue
            else:
                response.add(department, following.transition == Action.ACCEPT and _utc(following.at) - at <= window)
        if dispatched and ticket.status != S.MERGED:
            resolution.add(ticket.department, ticket.status in DONE_STATUSES)
        callbacks = [i for i, t in enumerate(trail) if t.transition in (Action.VERIFY, Action.REOPEN)]
        if callbacks:
            latest = trail[callbacks[-1]]
            resolver = next((t.department for t in reversed(trail[:callbacks[-1]]) if t.transition == Action.RESOLVE),
                            None)  # the department whose work the citizen judged
            satisfaction.add(resolver or latest.department or ticket.department, latest.transition == Action.VERIFY)

    departments = {k for tally in (response, resolution, satisfaction) for k in tally.counts if k}

    def rate_set(key: str) -> RateSet:
        return RateSet(response.rate(key), resolution.rate(key), satisfaction.rate(key))

    return Rates(since=since, until=until, response_hours=response_hours, overall=rate_set(""),
                 by_department={d: rate_set(d) for d in departments})


def _decided_department(ticket: Ticket) -> str | None:
    department = (ticket.decision or {}).get("department")
    return str(department) if department else ticket.department


def _in_chunks(session: Session, ids: Iterable[str], size: int = 500) -> list[Ticket]:
    ids = list(ids)
    found: list[Ticket] = []
    for start in range(0, len(ids), size):
        found.extend(session.scalars(select(Ticket).where(Ticket.id.in_(ids[start:start + size]))))
    return found
