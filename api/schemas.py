"""Request and response bodies of the ticket API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Base64Bytes, BaseModel, ConfigDict, Field

from api.users import Principal
from tickets.lifecycle import OPEN_STATUSES, allowed_actions
from tickets.models import Ticket, TicketAttachment, TicketTransition

CITY_TIME = "A time without a zone is the city's time (Asia/Shanghai)."


def aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class Me(BaseModel):
    name: str
    role: str
    department: str | None
    actor: str = Field(description="How the audit trail names you.")

    @classmethod
    def of(cls, principal: Principal) -> Me:
        return cls(name=principal.name, role=principal.role.value, department=principal.department,
                   actor=principal.actor)


class TransitionOut(BaseModel):
    id: int
    transition: str
    from_status: str | None
    to_status: str
    actor: str
    reason: str | None
    at: datetime
    department: str | None
    details: dict[str, Any] | None

    @classmethod
    def of(cls, t: TicketTransition) -> TransitionOut:
        return cls(id=t.id, transition=t.transition, from_status=t.from_status, to_status=t.to_status,
                   actor=t.actor, reason=t.reason, at=aware(t.at) or t.at, department=t.department,
                   details=t.details)


class TicketOut(BaseModel):
    id: str
    source_event_id: str
    source: str
    title: str
    description: str
    category: str | None
    district: str | None
    address: str | None
    department: str | None
    co_handlers: list[str]
    priority: str
    status: str
    deadline_at: datetime
    overdue: bool = Field(description="Open and past its deadline.")
    escalation_level: int = Field(description="督办 level; 0 = not escalated.")
    escalated_at: datetime | None
    resolution_note: str | None
    satisfaction: str | None = Field(description="The latest callback: satisfied, unsatisfied or none yet.")
    parent_ticket_id: str | None
    created_at: datetime
    updated_at: datetime
    rule_id: str | None
    rules_version: str
    allowed_actions: list[str] = Field(description="Transitions the ticket's status allows (roles aside).")

    @classmethod
    def of(cls, t: Ticket, now: datetime) -> TicketOut:
        deadline = aware(t.deadline_at) or t.deadline_at
        return cls(
            id=t.id, source_event_id=t.source_event_id, source=t.source, title=t.title, description=t.description,
            category=t.category, district=t.district, address=t.address, department=t.department,
            co_handlers=list(t.co_handlers or []), priority=t.priority, status=t.status, deadline_at=deadline,
            overdue=t.status in OPEN_STATUSES and deadline < now, escalation_level=t.escalation_level or 0,
            escalated_at=aware(t.escalated_at), resolution_note=t.resolution_note, satisfaction=t.satisfaction,
            parent_ticket_id=t.parent_ticket_id, created_at=aware(t.created_at) or t.created_at,
            updated_at=aware(t.updated_at) or t.updated_at, rule_id=t.rule_id, rules_version=t.rules_version,
            allowed_actions=[a.value for a in allowed_actions(t.status)],
        )


class AttachmentOut(BaseModel):
    id: int
    kind: str
    content_type: str
    size: int
    sha256: str
    created_by: str
    created_at: datetime
    url: str

    @classmethod
    def of(cls, a: TicketAttachment) -> AttachmentOut:
        return cls(id=a.id, kind=a.kind, content_type=a.content_type, size=a.size, sha256=a.sha256,
                   created_by=a.created_by, created_at=aware(a.created_at) or a.created_at,
                   url=f"/api/tickets/{a.ticket_id}/attachments/{a.id}")


class TicketDetail(TicketOut):
    transitions: list[TransitionOut] = Field(description="The audit trail, oldest first.")
    attachments: list[AttachmentOut]
    merged_children: list[str] = Field(description="Duplicates merged under this ticket.")


class TicketPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[TicketOut]


class ActionResult(BaseModel):
    ticket: TicketOut
    transitions: list[TransitionOut] = Field(description="What this action recorded.")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OptionalReason(Body):
    reason: str | None = Field(None, max_length=2000)


class Reason(Body):
    reason: str = Field(max_length=2000, description="Why; required.")


class Assign(Body):
    department: str = Field(max_length=120)
    reason: str | None = Field(None, max_length=2000)


class Reassign(Body):
    department: str = Field(max_length=120)
    reason: str = Field(max_length=2000)


class Resolve(Body):
    note: str = Field(max_length=20_000, description="What was done (办理情况); required.")
    photo_base64: Base64Bytes | None = Field(None, description="Optional photo of the result, base64.")
    photo_content_type: Literal["image/jpeg", "image/png"] = "image/jpeg"


class Verify(Body):
    satisfied: bool = Field(description="The citizen's answer on the callback (回访).")
    reason: str | None = Field(None, max_length=2000, description="Required when not satisfied.")
    reopen_to: Literal["in_progress", "dispatched"] = Field(
        "in_progress", description="Not satisfied: back to the same department's work, or to dispatch.")
    department: str | None = Field(None, max_length=120, description="With reopen_to dispatched: a new department.")


class Merge(Body):
    parent_ticket_id: str = Field(max_length=40)
    reason: str = Field(max_length=2000)


class Escalated(BaseModel):
    ticket_id: str
    escalation_level: int
    department: str | None


class SweepResult(BaseModel):
    at: datetime
    escalated: list[Escalated]


class RateOut(BaseModel):
    numerator: int
    denominator: int
    value: float | None


class RateSetOut(BaseModel):
    response: RateOut = Field(description="响应率: dispatches accepted within response_hours.")
    resolution: RateOut = Field(description="解决率: dispatched tickets now resolved, verified or closed.")
    satisfaction: RateOut = Field(description="满意率: callbacks whose latest answer was satisfied.")


class RatesOut(RateSetOut):
    since: datetime
    until: datetime
    response_hours: float
    by_department: dict[str, RateSetOut]
