"""The ticket API under /api: departments work their queue, managers steer, agents record callbacks.

A department user sees and touches only tickets that are with its department: any other ticket answers
404 as if it did not exist. Acting outside one's role answers 403.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from sqlalchemy import Select, func, or_, select

from api.deps import AnyUser, CallCentre, Context, Department, Manager, Reader, Routing
from api.queries import ticket_detail
from api.schemas import (
    CITY_TIME,
    ActionResult,
    Assign,
    Escalated,
    Me,
    Merge,
    OptionalReason,
    RatesOut,
    Reason,
    Reassign,
    Resolve,
    SweepResult,
    TicketDetail,
    TicketOut,
    TicketPage,
    TransitionOut,
    Verify,
)
from api.users import Principal, Role
from consoles.ticket_desk import DeskFormError, check_department
from contracts import city_time
from dispatch_rules.router import DecisionTableRouter
from tickets.lifecycle import (
    OPEN_STATUSES,
    Action,
    InvalidTransitionRequest,
    Photo,
    TransitionResult,
    attachment,
    rates,
)
from tickets.models import Ticket, TicketStatus

router = APIRouter(prefix="/api")

QUEUE_STATUSES = (TicketStatus.DISPATCHED, TicketStatus.ACCEPTED, TicketStatus.IN_PROGRESS)
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such ticket (or not one of your department's)."}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "The ticket's status does not allow this action."},
            422: {"description": "The request lacks something the action needs (a reason, a note ...)."}}
SENDS: dict[int | str, dict[str, Any]] = {**NOT_FOUND, **CONFLICT, 422: {"description": (
    "The request lacks something the action needs (a reason ...), or names a department that is not in the "
    "active rules' directory (the closest names are given).")}}


@router.get("/me", tags=["users"], summary="Who the token belongs to")
def me(principal: AnyUser) -> Me:
    return Me.of(principal)


# ---- reading ------------------------------------------------------------------------------------------------
@router.get("/tickets", tags=["tickets"], summary="Search and filter tickets")
def search_tickets(
    context: Context,
    principal: AnyUser,
    status_: Annotated[list[TicketStatus] | None, Query(alias="status", description="Repeatable.")] = None,
    department: str | None = None,
    district: str | None = None,
    category: str | None = None,
    priority: str | None = None,
    source: str | None = None,
    q: Annotated[str | None, Query(description="Text in the title or description.", max_length=200)] = None,
    overdue: Annotated[bool | None, Query(description="Open and past the deadline.")] = None,
    min_escalation: Annotated[int | None, Query(ge=0, description="督办 level at least.")] = None,
    parent_ticket_id: str | None = None,
    created_from: Annotated[datetime | None, Query(description=f"Created at or after. {CITY_TIME}")] = None,
    created_to: Annotated[datetime | None, Query(description=f"Created before. {CITY_TIME}")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> TicketPage:
    """Managers, agents and analysts search every ticket; a department user only its own department's."""
    if principal.role is Role.DEPARTMENT:
        if department is not None and department != principal.department:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"department users see only {principal.department}'s tickets")
        department = principal.department
    now = context.clock()
    query = select(Ticket)
    if status_:
        query = query.where(Ticket.status.in_([s.value for s in status_]))
    for column, value in ((Ticket.department, department), (Ticket.district, district),
                          (Ticket.category, category), (Ticket.priority, priority), (Ticket.source, source),
                          (Ticket.parent_ticket_id, parent_ticket_id)):
        if value is not None:
            query = query.where(column == value)
    if q:
        query = query.where(or_(Ticket.title.contains(q, autoescape=True),
                                Ticket.description.contains(q, autoescape=True)))
    if overdue is not None:
        late = Ticket.status.in_([s.value for s in OPEN_STATUSES]) & (Ticket.deadline_at < now)
        query = query.where(late if overdue else ~late)
    if min_escalation is not None:
        query = query.where(Ticket.escalation_level >= min_escalation)
    if created_from is not None:
        query = query.where(Ticket.created_at >= city_time(created_from))
    if created_to is not None:
        query = query.where(Ticket.created_at < city_time(created_to))
    return _page(context, query.order_by(Ticket.created_at.desc(), Ticket.id), limit, offset, now)


@router.get("/queue", tags=["department"], summary="My department's open tickets, soonest deadline first")
def department_queue(
    context: Context,
    principal: Department,
    status_: Annotated[list[TicketStatus] | None, Query(alias="status", description="Default: dispatched, "
                                                       "accepted, in_progress.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> TicketPage:
    statuses = status_ or list(QUEUE_STATUSES)
    query = (select(Ticket).where(Ticket.department == principal.department,
                                  Ticket.status.in_([s.value for s in statuses]))
             .order_by(Ticket.escalation_level.desc(), Ticket.deadline_at, Ticket.id))
    return _page(context, query, limit, offset, context.clock())


@router.get("/tickets/{ticket_id}", tags=["tickets"], summary="One ticket with its audit trail",
            responses=NOT_FOUND)
def get_ticket(context: Context, principal: AnyUser, ticket_id: str) -> TicketDetail:
    scope = principal.department if principal.role is Role.DEPARTMENT else None
    found = ticket_detail(context.store, ticket_id, context.clock(), department=scope)
    if found is None:
        raise _not_found(ticket_id)
    return found


@router.get("/tickets/{ticket_id}/attachments/{attachment_id}", tags=["tickets"], summary="A photo",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}, **NOT_FOUND})
def get_attachment(context: Context, principal: AnyUser, ticket_id: str, attachment_id: int) -> Response:
    ticket = context.store.get(ticket_id)
    if ticket is None or not _may_see(principal, ticket):
        raise _not_found(ticket_id)
    found = attachment(context.store, ticket_id, attachment_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"ticket {ticket_id} has no attachment {attachment_id}")
    return Response(found.data, media_type=found.content_type,
                    headers={"ETag": f'"{found.sha256}"', "Cache-Control": "private, max-age=3600"})


# ---- department ---------------------------------------------------------------------------------------------
@router.post("/tickets/{ticket_id}/accept", tags=["department"], summary="签收: take the ticket on",
             responses={**NOT_FOUND, **CONFLICT})
def accept(context: Context, principal: Department, ticket_id: str, body: OptionalReason | None = None) -> ActionResult:
    return _result(context, context.lifecycle.accept(ticket_id, principal.actor, as_department=principal.department,
                                                     reason=body.reason if body else None))


@router.post("/tickets/{ticket_id}/return", tags=["department"], summary="退单: not ours, back to dispatch",
             responses={**NOT_FOUND, **CONFLICT})
def return_ticket(context: Context, principal: Department, ticket_id: str, body: Reason) -> ActionResult:
    return _result(context, context.lifecycle.return_ticket(ticket_id, principal.actor, body.reason,
                                                            as_department=principal.department))


@router.post("/tickets/{ticket_id}/start", tags=["department"], summary="Start handling",
             responses={**NOT_FOUND, **CONFLICT})
def start(context: Context, principal: Department, ticket_id: str, body: OptionalReason | None = None) -> ActionResult:
    return _result(context, context.lifecycle.start(ticket_id, principal.actor, as_department=principal.department,
                                                    reason=body.reason if body else None))


@router.post("/tickets/{ticket_id}/resolve", tags=["department"], summary="办结: handled, with a note (and photo)",
             responses={**NOT_FOUND, **CONFLICT})
def resolve(context: Context, principal: Department, ticket_id: str, body: Resolve) -> ActionResult:
    photo = Photo(body.photo_base64, body.photo_content_type) if body.photo_base64 is not None else None
    return _result(context, context.lifecycle.resolve(ticket_id, principal.actor, body.note, photo=photo,
                                                      as_department=principal.department))


# ---- manager ------------------------------------------------------------------------------------------------
@router.post("/tickets/{ticket_id}/assign", tags=["manager"], summary="Manual dispatch of a pending_manual ticket",
             responses=SENDS)
def assign(context: Context, principal: Manager, routing: Routing, ticket_id: str, body: Assign) -> ActionResult:
    _check_department(routing, ticket_id, Action.ASSIGN, body.department)
    return _result(context, context.lifecycle.assign(ticket_id, body.department, principal.actor, body.reason))


@router.post("/tickets/{ticket_id}/reassign", tags=["manager"], summary="改派: send to a department again",
             responses=SENDS)
def reassign(context: Context, principal: Manager, routing: Routing, ticket_id: str,
             body: Reassign) -> ActionResult:
    _check_department(routing, ticket_id, Action.REASSIGN, body.department)
    return _result(context, context.lifecycle.reassign(ticket_id, body.department, principal.actor, body.reason))


@router.post("/tickets/{ticket_id}/escalate", tags=["manager"], summary="督办: one escalation level more",
             responses={**NOT_FOUND, **CONFLICT})
def escalate(context: Context, principal: Manager, ticket_id: str, body: Reason) -> ActionResult:
    return _result(context, context.lifecycle.escalate(ticket_id, principal.actor, body.reason))


@router.post("/tickets/{ticket_id}/merge", tags=["manager"], summary="Merge this duplicate under a parent ticket",
             responses={**NOT_FOUND, **CONFLICT})
def merge(context: Context, principal: Manager, ticket_id: str, body: Merge) -> ActionResult:
    return _result(context, context.lifecycle.merge(ticket_id, body.parent_ticket_id, principal.actor, body.reason))


@router.post("/escalations/sweep", tags=["manager"], summary="Escalate every overdue open ticket now")
def sweep(context: Context, principal: Manager) -> SweepResult:
    now = context.clock()
    results = context.lifecycle.escalate_overdue(now)
    return SweepResult(at=now, escalated=[
        Escalated(ticket_id=r.ticket.id, escalation_level=r.ticket.escalation_level, department=r.ticket.department)
        for r in results])


# ---- call centre ------------------------------------------------------------------------------------------------
@router.post("/tickets/{ticket_id}/verify", tags=["call centre"], summary="回访: record the citizen's callback",
             responses=SENDS)
def verify(context: Context, principal: CallCentre, routing: Routing, ticket_id: str, body: Verify) -> ActionResult:
    if not body.satisfied and body.reopen_to == TicketStatus.DISPATCHED.value:
        _check_department(routing, ticket_id, Action.REOPEN, body.department)
    return _result(context, context.lifecycle.verify(
        ticket_id, principal.actor, satisfied=body.satisfied, reason=body.reason,
        reopen_to=TicketStatus(body.reopen_to), department=body.department))


@router.post("/tickets/{ticket_id}/close", tags=["call centre"], summary="结案: close a verified ticket",
             responses={**NOT_FOUND, **CONFLICT})
def close(context: Context, principal: CallCentre, ticket_id: str, body: OptionalReason | None = None) -> ActionResult:
    return _result(context, context.lifecycle.close(ticket_id, principal.actor, body.reason if body else None))


# ---- figures ----------------------------------------------------------------------------------------------------
@router.get("/rates", tags=["figures"], summary="响应率, 解决率, 满意率 overall and per department")
def get_rates(
    context: Context,
    principal: Reader,
    since: Annotated[datetime | None, Query(description=f"Default: 30 days ago. {CITY_TIME}")] = None,
    until: Annotated[datetime | None, Query(description=f"Default: now. {CITY_TIME}")] = None,
    response_hours: Annotated[float, Query(gt=0, le=24 * 30)] = 24.0,
) -> RatesOut:
    now = context.clock()
    figures = rates(context.store, city_time(since) if since else now - timedelta(days=30),
                    until=city_time(until) if until else now,
                    response_hours=response_hours)
    return RatesOut.model_validate(figures.as_dict())


# ---- helpers ----------------------------------------------------------------------------------------------------
def _may_see(principal: Principal, ticket: Ticket) -> bool:
    return principal.role is not Role.DEPARTMENT or ticket.department == principal.department


def _check_department(routing: DecisionTableRouter, ticket_id: str, action: Action, name: str | None) -> None:
    """A department outside the active rules' directory is on no department's queue: 422 naming the closest."""
    if name is None or not name.strip():
        return  # the lifecycle says a department is required
    try:
        check_department(routing.rules.current().directory, name.strip())
    except DeskFormError as error:
        raise InvalidTransitionRequest(ticket_id, action, str(error)) from None


def _not_found(ticket_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"ticket {ticket_id} not found")


def _page(context: Context, query: Select[Ticket], limit: int, offset: int, now: datetime) -> TicketPage:
    with context.store.session() as session:
        total = int(session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0)
        items = list(session.scalars(query.limit(limit).offset(offset)))
    return TicketPage(total=total, limit=limit, offset=offset, items=[TicketOut.of(t, now) for t in items])


def _result(context: Context, result: TransitionResult) -> ActionResult:
    return ActionResult(ticket=TicketOut.of(result.ticket, context.clock()),
                        transitions=[TransitionOut.of(t) for t in result.transitions])
