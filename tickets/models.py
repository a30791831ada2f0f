"""Ticket tables (SQLAlchemy 2). Schema changes go through Alembic migrations in tickets/migrations."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
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

    ticket: Mapped[Ticket] = relationship(back_populates="transitions")
