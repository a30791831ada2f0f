"""The ticket store. Creating a ticket is idempotent on the source event id."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from contracts import DispatchDecision
from tickets.migrate import upgrade_database
from tickets.models import Ticket, TicketAttachment, TicketStatus, TicketTransition

SYSTEM_ACTOR = "system:auto-dispatch"


@dataclass(frozen=True)
class CreatedTicket:
    ticket: Ticket
    created: bool
    transitions: Sequence[TicketTransition]


def make_engine(database_url: str) -> Engine:
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(database_url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class TicketStore:
    def __init__(self, database_url: str, migrate: bool = True) -> None:
        if migrate:
            upgrade_database(database_url)
        self.engine = make_engine(database_url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._sessions()

    def create_from_decision(self, decision: DispatchDecision) -> CreatedTicket:
        """Create the ticket for a decision, or return the one already made for its source event."""
        existing = self.by_source_event(decision.source_event_id)
        if existing is not None:
            return CreatedTicket(existing, created=False, transitions=self._creation(existing.id))
        ticket, transitions = _new_ticket(decision)
        snapshot = _snapshot(ticket.id, decision)
        try:
            with self.session() as session, session.begin():
                session.add(ticket)
                session.add_all(transitions)
                if snapshot is not None:
                    session.add(snapshot)
        except IntegrityError:  # a concurrent worker created it first
            raced = self.by_source_event(decision.source_event_id)
            if raced is None:
                raise
            return CreatedTicket(raced, created=False, transitions=self._creation(raced.id))
        return CreatedTicket(ticket, created=True, transitions=transitions)

    def _creation(self, ticket_id: str) -> list[TicketTransition]:
        """The creation record of an existing ticket, to announce again on a redelivery: if the worker that
        created the ticket died before its announcement was sent, this is what repairs it."""
        with self.session() as session:
            return list(session.scalars(select(TicketTransition).where(
                TicketTransition.ticket_id == ticket_id, TicketTransition.transition == "create")))

    def by_source_event(self, source_event_id: str) -> Ticket | None:
        with self.session() as session:
            return session.scalars(select(Ticket).where(Ticket.source_event_id == source_event_id)).first()

    def get(self, ticket_id: str) -> Ticket | None:
        with self.session() as session:
            return session.scalars(
                select(Ticket).options(selectinload(Ticket.transitions)).where(Ticket.id == ticket_id)
            ).first()

    def list(self, limit: int = 50, status: str | None = None, source: str | None = None) -> list[Ticket]:
        query = select(Ticket).order_by(Ticket.created_at.desc(), Ticket.id).limit(limit)
        if status:
            query = query.where(Ticket.status == status)
        if source:
            query = query.where(Ticket.source == source)
        with self.session() as session:
            return list(session.scalars(query))

    def count(self) -> int:
        with self.session() as session:
            return int(session.scalar(select(func.count()).select_from(Ticket)) or 0)

    def counts_by(self, column: str) -> dict[str, int]:
        field = getattr(Ticket, column)
        with self.session() as session:
            rows = session.execute(select(field, func.count()).group_by(field)).all()
        return {str(value): int(n) for value, n in rows}

    def source_event_counts(self) -> dict[str, int]:
        return self.counts_by("source_event_id")


def _snapshot(ticket_id: str, decision: DispatchDecision) -> TicketAttachment | None:
    """A camera ticket keeps the event's annotated frame as its 'snapshot' attachment."""
    if not decision.snapshot_jpeg:
        return None
    data = decision.snapshot_jpeg
    return TicketAttachment(ticket_id=ticket_id, kind="snapshot", content_type="image/jpeg", size=len(data),
                            sha256=hashlib.sha256(data).hexdigest(), data=data, created_by=SYSTEM_ACTOR,
                            created_at=datetime.now(UTC))


def _new_ticket(decision: DispatchDecision) -> tuple[Ticket, list[TicketTransition]]:
    now = datetime.now(UTC)
    ticket_id = f"GD{now:%Y%m%d}-{uuid.uuid4().hex[:10]}"
    status = TicketStatus.DISPATCHED if decision.department else TicketStatus.PENDING_MANUAL
    ticket = Ticket(
        id=ticket_id,
        source_event_id=decision.source_event_id,
        source=decision.source.value,
        title=decision.title,
        description=decision.description,
        category=decision.category,
        district=decision.district,
        address=decision.address,
        department=decision.department,
        co_handlers=list(decision.co_handlers),
        priority=decision.priority.value,
        status=status.value,
        deadline_at=decision.due_at.astimezone(UTC),  # SQLite keeps no zone: store UTC
        created_at=now,
        updated_at=now,
        rule_id=decision.rule_id,
        rules_version=decision.rules_version,
        decision=decision.model_dump(mode="json", exclude={"snapshot_jpeg"}),
    )
    reason = (
        f"rule {decision.rule_id} ({decision.rules_version})" if decision.department else decision.manual_reason
    )
    transitions = [
        TicketTransition(ticket_id=ticket_id, transition="create", from_status=None,
                         to_status=status.value, actor=SYSTEM_ACTOR, reason=reason, at=now),
    ]
    return ticket, transitions
