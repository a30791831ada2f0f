"""What the manager console shows: counts, overdue and escalated tickets, rates, hot spots and hot issues (one
problem reported again and again), camera cases."""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, case, func, select

from classifiers.data import message_text
from classifiers.lexical import LexicalSimilarity, repeat_groups, ticket_key
from consoles.direct_answers import DirectAnswerRate, direct_answer_rate
from tickets.lifecycle import OPEN_STATUSES, Rates, rates, sniff_image
from tickets.models import Ticket, TicketAttachment, TicketStatus
from tickets.store import TicketStore

STATUS_ORDER = [s.value for s in TicketStatus]
OPEN = [s.value for s in OPEN_STATUSES]
RATES_WINDOW = timedelta(days=30)
HOTSPOT_WINDOW = timedelta(days=7)
HOT_ISSUE_POOL = 2000  # newest tickets of the window grouped into issues
SNAPSHOT_KEYS = ("snapshot_jpeg", "snapshot")  # where a camera decision's explanation may carry the frame
AnySelect = TypeVar("AnySelect", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class Count:
    label: str
    count: int
    share: float  # of the largest count in its list, for bar widths

    @property
    def percent(self) -> int:
        return round(self.share * 100)


@dataclass(frozen=True)
class DepartmentLoad:
    department: str
    open: int
    overdue: int
    escalated: int
    share: float

    @property
    def percent(self) -> int:
        return round(self.share * 100)


@dataclass(frozen=True)
class HotSpot:
    category: str
    district: str
    count: int
    share: float

    @property
    def percent(self) -> int:
        return round(self.share * 100)


@dataclass(frozen=True)
class HotIssue:
    """Tickets of the window that report one problem (linked by the repeat-report score)."""

    ticket: Ticket  # the first report: its title names the issue, its page has the trail
    reports: int
    open: int
    district: str | None
    latest_at: datetime


@dataclass(frozen=True)
class CameraCase:
    ticket: Ticket
    kind: str | None
    camera_id: str | None
    has_snapshot: bool


@dataclass
class Dashboard:
    now: datetime
    district: str | None
    districts: list[str]
    total: int
    open: int
    overdue_count: int
    escalated_count: int
    manual_count: int
    dispatch_queue: list[Ticket]  # pending_manual and returned (退单): the dispatcher's work, oldest first
    queue_count: int
    by_status: list[Count]
    by_department: list[DepartmentLoad]
    overdue: list[Ticket]
    escalated: list[Ticket]
    latest: list[Ticket]
    hot_spots: list[HotSpot]
    hot_issues: list[HotIssue]
    cameras: list[CameraCase]
    rates: Rates
    direct: DirectAnswerRate
    department_rates: list[tuple[str, Any]] = field(default_factory=list)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _scoped(query: AnySelect, district: str | None) -> AnySelect:
    return query.where(Ticket.district == district) if district else query


def _bars(pairs: list[tuple[str, int]]) -> list[Count]:
    top = max((n for _, n in pairs), default=0) or 1
    return [Count(label, n, n / top) for label, n in pairs]


def build_dashboard(store: TicketStore, now: datetime, lexical: LexicalSimilarity, issue_at: float,
                    district: str | None = None, limit: int = 15) -> Dashboard:
    now = _utc(now)
    late = Ticket.status.in_(OPEN) & (Ticket.deadline_at < now)
    with store.session() as session:
        by_status_q = _scoped(select(Ticket.status, func.count()).group_by(Ticket.status), district)
        status_rows: dict[str, int] = {s: int(n) for s, n in session.execute(by_status_q).all()}
        department_rows = session.execute(_scoped(
            select(Ticket.department, func.count(), func.sum(case((late, 1), else_=0)),
                   func.sum(case((Ticket.escalation_level > 0, 1), else_=0)))
            .where(Ticket.status.in_(OPEN)).group_by(Ticket.department), district)).all()
        overdue = list(session.scalars(_scoped(select(Ticket).where(late), district)
                                       .order_by(Ticket.deadline_at).limit(limit)))
        overdue_count = int(session.scalar(_scoped(select(func.count()).select_from(Ticket).where(late),
                                                   district)) or 0)
        escalated_q = select(Ticket).where(Ticket.escalation_level > 0, Ticket.status.in_(OPEN))
        escalated = list(session.scalars(_scoped(escalated_q, district)
                                         .order_by(Ticket.escalation_level.desc(), Ticket.deadline_at).limit(limit)))
        escalated_count = int(session.scalar(_scoped(
            select(func.count()).select_from(Ticket).where(Ticket.escalation_level > 0, Ticket.status.in_(OPEN)),
            district)) or 0)
        waiting = Ticket.status.in_([TicketStatus.PENDING_MANUAL.value, TicketStatus.RETURNED.value])
        dispatch_queue = list(session.scalars(_scoped(select(Ticket).where(waiting), district)
                                              .order_by(Ticket.updated_at, Ticket.id).limit(limit)))
        latest = list(session.scalars(_scoped(select(Ticket), district)
                                      .order_by(Ticket.created_at.desc(), Ticket.id).limit(limit)))
        hot_rows = session.execute(_scoped(
            select(Ticket.category, Ticket.district, func.count().label("n"))
            .where(Ticket.created_at >= now - HOTSPOT_WINDOW, Ticket.status != TicketStatus.MERGED.value)
            .group_by(Ticket.category, Ticket.district).order_by(func.count().desc()).limit(10),
            district)).all()
        recent_reports = list(session.scalars(_scoped(
            select(Ticket).where(Ticket.created_at >= now - HOTSPOT_WINDOW, Ticket.source != "camera"), district)
            .order_by(Ticket.created_at.desc()).limit(HOT_ISSUE_POOL)))
        camera_tickets = list(session.scalars(_scoped(select(Ticket).where(Ticket.source == "camera"), district)
                                              .order_by(Ticket.created_at.desc()).limit(8)))
        snapshot_ids = set(session.scalars(select(TicketAttachment.ticket_id).where(
            TicketAttachment.ticket_id.in_([t.id for t in camera_tickets]), TicketAttachment.kind == "snapshot")))
        districts = sorted(d for d in session.scalars(select(Ticket.district).distinct()) if d)
    by_status = _bars([(s, int(status_rows.get(s, 0))) for s in STATUS_ORDER if status_rows.get(s)])
    loads = sorted(((d or "（待人工派单）", int(n), int(o or 0), int(e or 0)) for d, n, o, e in department_rows),
                   key=lambda r: (-r[1], r[0]))[:limit]
    top = max((n for _, n, _, _ in loads), default=0) or 1
    hot_top = max((int(n) for _, _, n in hot_rows), default=0) or 1
    figures = rates(store, now - RATES_WINDOW, until=now)
    return Dashboard(
        now=now, district=district, districts=districts, total=sum(int(n) for n in status_rows.values()),
        open=sum(int(status_rows.get(s, 0)) for s in OPEN), overdue_count=overdue_count,
        escalated_count=escalated_count, manual_count=int(status_rows.get(TicketStatus.PENDING_MANUAL.value, 0)),
        dispatch_queue=dispatch_queue, queue_count=sum(int(status_rows.get(s.value, 0)) for s in (
            TicketStatus.PENDING_MANUAL, TicketStatus.RETURNED)),
        by_status=by_status,
        by_department=[DepartmentLoad(d, n, o, e, n / top) for d, n, o, e in loads],
        overdue=overdue, escalated=escalated, latest=latest,
        hot_spots=[HotSpot(c or "（未分类）", d or "（未知）", int(n), int(n) / hot_top) for c, d, n in hot_rows],
        hot_issues=hot_issues(recent_reports, lexical, issue_at)[:10],
        cameras=[CameraCase(t, _explained(t, "kind") or t.category, _explained(t, "camera_id"),
                            t.id in snapshot_ids or snapshot_in_decision(t) is not None) for t in camera_tickets],
        rates=figures, direct=direct_answer_rate(store, now - RATES_WINDOW, now, district),
        department_rates=sorted(figures.by_department.items(),
                                key=lambda kv: -(kv[1].resolution.denominator + kv[1].response.denominator))[:limit],
    )


def hot_issues(tickets: list[Ticket], lexical: LexicalSimilarity, threshold: float) -> list[HotIssue]:
    """Problems reported more than once among the tickets, most reported first. Camera events are left out:
    the camera path already keeps one event, so one ticket, per camera, zone and kind."""
    groups = repeat_groups(lexical, [message_text(t.title, t.description) for t in tickets],
                           [t.district for t in tickets], threshold, keys=[ticket_key(t.id) for t in tickets])
    issues = []
    for members in groups:
        if len(members) < 2:
            break
        reports = sorted((tickets[i] for i in members), key=lambda t: (_utc(t.created_at), t.id))
        places = [t.district for t in reports if t.district]
        issues.append(HotIssue(
            ticket=reports[0], reports=len(reports), open=sum(t.status in OPEN for t in reports),
            district=Counter(places).most_common(1)[0][0] if places else None,
            latest_at=_utc(reports[-1].created_at)))
    return issues


def _explained(ticket: Ticket, key: str) -> str | None:
    explanation = (ticket.decision or {}).get("explanation") or {}
    value = explanation.get(key) or (explanation.get("inputs") or {}).get(key)
    return str(value) if value else None


def snapshot_in_decision(ticket: Ticket) -> bytes | None:
    """A JPEG/PNG frame carried in the camera decision's explanation (base64), if the router put one there."""
    explanation = (ticket.decision or {}).get("explanation") or {}
    for key in SNAPSHOT_KEYS:
        value = explanation.get(key)
        if isinstance(value, str) and value:
            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                continue
            if sniff_image(data):
                return data
    return None


def snapshot(store: TicketStore, ticket_id: str) -> tuple[bytes, str] | None:
    """The camera frame of a ticket: a 'snapshot' attachment, else one in the decision's explanation."""
    with store.session() as session:
        ticket = session.get(Ticket, ticket_id)
        if ticket is None or ticket.source != "camera":
            return None
        found = session.scalars(select(TicketAttachment).where(
            TicketAttachment.ticket_id == ticket_id, TicketAttachment.kind == "snapshot")
            .order_by(TicketAttachment.id.desc())).first()
        if found is not None:
            return found.data, found.content_type
        data = snapshot_in_decision(ticket)
    if data is None:
        return None
    return data, sniff_image(data) or "application/octet-stream"
