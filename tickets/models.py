"""Ticket tables (SQLAlchemy 2). Schema changes go through Alembic migrations in tickets/migrations."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ColumnElement, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class TicketStatus(StrEnum):
    """The closed loop of 接诉即办 / 数字化城管."""

    PENDING_MANUAL = "pending_manual"  # no rule or too little confidence: a dispatcher decides
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    RETURNED = "returned"  # 退单: back to the dispatcher
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    VERIFIED = "verified"
    CLOSED = "closed"
    MERGED = "merged"


OPEN_STATUSES: frozenset[TicketStatus] = frozenset({
    TicketStatus.PENDING_MANUAL, TicketStatus.DISPATCHED, TicketStatus.ACCEPTED, TicketStatus.RETURNED,
    TicketStatus.IN_PROGRESS})


def column_length(column: ColumnElement[Any]) -> int:
    """The length of a String column: what a field stored there may hold (PostgreSQL enforces it)."""
    kind = column.type
    if not isinstance(kind, String) or kind.length is None:
        raise TypeError(f"{column} is not a String column with a length")
    return kind.length


class Base(DeclarativeBase):
    pass


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    source_event_id: Mapped[str] = mapped_column(String(160), unique=True, index=True)
    source: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(64))
    district: Mapped[str | None] = mapped_column(String(64), index=True)
    address: Mapped[str | None] = mapped_column(String(300))
    department: Mapped[str | None] = mapped_column(String(120), index=True)
    co_handlers: Mapped[list[str]] = mapped_column(JSON, default=list)
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24), index=True)
    deadline_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rule_id: Mapped[str | None] = mapped_column(String(120))
    rules_version: Mapped[str] = mapped_column(String(64))
    decision: Mapped[dict[str, Any]] = mapped_column(JSON)
    parent_ticket_id: Mapped[str | None] = mapped_column(ForeignKey("tickets.id"))
    # lifecycle (migration 0003): 督办 level, the handling note, the citizen's latest callback answer
    escalation_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    satisfaction: Mapped[str | None] = mapped_column(String(16))  # satisfied | unsatisfied | None (no callback)

    transitions: Mapped[list[TicketTransition]] = relationship(
        back_populates="ticket", order_by="TicketTransition.id"
    )


class TicketTransition(Base):
    """Audit trail: who moved the ticket, when and why."""

    __tablename__ = "ticket_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), index=True)
    transition: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # migration 0003: the department holding the ticket after the transition, and what else it recorded
    department: Mapped[str | None] = mapped_column(String(120))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    ticket: Mapped[Ticket] = relationship(back_populates="transitions")


class TicketAttachment(Base):
    """A photo a department attached when resolving (kept in the database, so every API server sees it)."""

    __tablename__ = "ticket_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), index=True)
    transition_id: Mapped[int | None] = mapped_column(ForeignKey("ticket_transitions.id"))
    kind: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OutboxEvent(Base):
    """A ticket event written in the transaction of its transition, published by tickets.outbox afterwards."""

    __tablename__ = "ticket_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(64))
    key: Mapped[str | None] = mapped_column(String(160))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)


class ApiUser(Base):
    """Who may use the API, in which role; only a SHA-256 of the bearer token is kept."""

    __tablename__ = "api_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    department: Mapped[str | None] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Open311Request(Base):
    """An Open311 service request as filed, before and after the pipeline turns it into a ticket."""

    __tablename__ = "open311_requests"

    service_request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_code: Mapped[str] = mapped_column(String(64), index=True)
    description: Mapped[str] = mapped_column(Text)
    address_string: Mapped[str | None] = mapped_column(String(300))
    lat: Mapped[float | None] = mapped_column(Float)
    long: Mapped[float | None] = mapped_column(Float)
    media_url: Mapped[str | None] = mapped_column(String(500))
    submitted_by: Mapped[str] = mapped_column(String(120))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


# migration 0003: the overdue sweep scans by deadline, the rates by transition time
Index("ix_tickets_deadline_at", Ticket.deadline_at)
Index("ix_ticket_transitions_at", TicketTransition.at)
