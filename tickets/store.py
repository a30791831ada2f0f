"""The ticket store. Creating a ticket is idempotent on the source event id."""

from __future__ import annotations

import hashlib
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction, selectinload, sessionmaker

from contracts import CITY_TZ, DispatchDecision, Source
from tickets.migrate import upgrade_database
from tickets.models import OPEN_STATUSES, Ticket, TicketAttachment, TicketStatus, TicketTransition

SYSTEM_ACTOR = "system:auto-dispatch"
# execution option: on SQLite, a transaction that only reads BEGINs deferred instead of taking the write lock
SQLITE_READ_ONLY = "hotline_sqlite_read_only"


@dataclass(frozen=True)
class CreatedTicket:
    ticket: Ticket
    created: bool
    transitions: Sequence[TicketTransition]
    # changes the creation made to other tickets: the open ticket a repeat camera event was merged into
    related: Sequence[tuple[Ticket, TicketTransition]] = ()


def make_engine(database_url: str) -> Engine:
    """On SQLite every transaction BEGINs IMMEDIATE, taking the write lock (writers wait up to the busy timeout):
    SQLite ignores SELECT ... FOR UPDATE, and pysqlite would only BEGIN at the first write, after the reads a
    status check rests on. Transactions run with SQLITE_READ_ONLY set BEGIN deferred."""
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(database_url, pool_pre_ping=True)


def _sqlite_begin(connection: Connection) -> None:
    read_only = connection.get_execution_options().get(SQLITE_READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _switch_to_wal(cursor: Any, attempts: int = 300) -> None:
    """SQLite answers 'database is locked' at once, busy timeout or not, to a connection switching a file to WAL
    while others open it (processes starting together on a new file): try again for a while."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's recipe: the driver emits no BEGIN, _sqlite_begin does
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class StoreSession(Session):
    """Writes go in `with session.begin():` (every write of this project does), which begins the transaction at
    once, IMMEDIATE on SQLite. An autobegun transaction is taken for a read and, with make_sessions, BEGINs
    deferred: a read neither waits for SQLite's write lock nor holds it."""

    def begin(self, nested: bool = False) -> SessionTransaction:
        transaction = super().begin(nested)
        if not nested:
            self.connection(execution_options={SQLITE_READ_ONLY: False})
        return transaction


def make_sessions(engine: Engine) -> sessionmaker[StoreSession]:
    """StoreSessions on `engine`: their reads BEGIN deferred on SQLite, their `session.begin()` IMMEDIATE."""
    return sessionmaker(engine.execution_options(**{SQLITE_READ_ONLY: True}), class_=StoreSession,
                        expire_on_commit=False)


class TicketStore:
    def __init__(self, database_url: str, migrate: bool = True,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if migrate:
            upgrade_database(database_url)
        self._clock = clock
        self.engine = make_engine(database_url)
        self._sessions = make_sessions(self.engine)

    def session(self) -> Session:
        return self._sessions()

    def create_from_decision(self, decision: DispatchDecision) -> CreatedTicket:
        """Create the ticket for a decision, or return the one already made for its source event."""
        existing = self.by_source_event(decision.source_event_id)
        if existing is not None:
            return self._creation(existing)
        now = self._clock().astimezone(UTC)
        ticket, transitions = _new_ticket(decision, now)
        snapshot = _snapshot(ticket.id, decision, now)
        related: list[tuple[Ticket, TicketTransition]] = []
        try:
            with self.session() as session, session.begin():
                session.add(ticket)
                session.add_all(transitions)
                if snapshot is not None:
                    session.add(snapshot)
                repeated = _open_ticket_of_camera_problem(session, decision)
                if repeated is not None:
                    related = [(repeated, _merge_repeat(session, ticket, repeated, transitions, now))]
        except IntegrityError:  # a concurrent worker created it first
            raced = self.by_source_event(decision.source_event_id)
            if raced is None:
                raise
            return self._creation(raced)
        return CreatedTicket(ticket, created=True, transitions=transitions, related=related)

    def _creation(self, ticket: Ticket) -> CreatedTicket:
        """What the creation of an existing ticket recorded, to announce again on a redelivery: if the worker
        that created it died before the announcement was sent, this is what repairs it. A repeat camera event
        recorded its merge at creation too, on itself and on the ticket it joined."""
        with self.session() as session:
            created = list(session.scalars(
                select(TicketTransition).where(TicketTransition.ticket_id == ticket.id).order_by(TicketTransition.id)
                .where(TicketTransition.at == select(TicketTransition.at).where(
                    TicketTransition.ticket_id == ticket.id, TicketTransition.transition == "create")
                    .scalar_subquery())))
            related: list[tuple[Ticket, TicketTransition]] = []
            merged = next((t for t in created if t.transition == "merge"), None)
            if merged is not None and ticket.parent_ticket_id is not None:
                parent = session.get(Ticket, ticket.parent_ticket_id)
                absorbed = session.scalars(select(TicketTransition).where(
                    TicketTransition.ticket_id == ticket.parent_ticket_id, TicketTransition.transition == "merge_child",
                    TicketTransition.at == merged.at)).all()
                related = [(parent, t) for t in absorbed if parent is not None
                           and (t.details or {}).get("child_ticket_id") == ticket.id]
        return CreatedTicket(ticket, created=False, transitions=created, related=related)

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


def _snapshot(ticket_id: str, decision: DispatchDecision, now: datetime) -> TicketAttachment | None:
    """A camera ticket keeps the event's annotated frame as its 'snapshot' attachment."""
    if not decision.snapshot_jpeg:
        return None
    data = decision.snapshot_jpeg
    return TicketAttachment(ticket_id=ticket_id, kind="snapshot", content_type="image/jpeg", size=len(data),
                            sha256=hashlib.sha256(data).hexdigest(), data=data, created_by=SYSTEM_ACTOR,
                            created_at=now)


def _camera_problem(decision: dict[str, Any]) -> tuple[Any, Any, Any] | None:
    explanation = decision.get("explanation") or {}
    camera = explanation.get("camera_id")
    return (camera, explanation.get("zone_id"), (explanation.get("inputs") or {}).get("kind")) if camera else None


def _open_ticket_of_camera_problem(session: Session, decision: DispatchDecision) -> Ticket | None:
    """The open ticket of the same camera, zone and kind, if this camera event is a repeat of its problem: the
    problem cleared for a few frames (a bus stood in front of the pile) or the detector restarted and lost
    its tracks. One problem, one ticket."""
    problem = _camera_problem(decision.model_dump(mode="json", include={"explanation"}))
    if decision.source != Source.CAMERA or problem is None:
        return None
    open_now = (Ticket.status.in_([s.value for s in OPEN_STATUSES]), Ticket.parent_ticket_id.is_(None))
    candidates = session.scalars(
        select(Ticket).where(Ticket.source == Source.CAMERA.value, Ticket.category == decision.category,
                             Ticket.source_event_id != decision.source_event_id, *open_now)
        .order_by(Ticket.created_at))
    found = next((t for t in candidates if _camera_problem(t.decision) == problem), None)
    if found is None:
        return None
    # only the chosen ticket is locked (a merge locks in id order; locking all candidates could deadlock with it),
    # and it must still be open once locked
    return session.scalars(select(Ticket).where(Ticket.id == found.id, *open_now)
                           .with_for_update().execution_options(populate_existing=True)).first()


def _merge_repeat(session: Session, ticket: Ticket, parent: Ticket, transitions: list[TicketTransition],
                  now: datetime) -> TicketTransition:
    """The new ticket goes under the open one at once (its department never sees it); both record it."""
    reason = f"repeat camera event of open ticket {parent.id} (same camera, zone and kind)"
    transitions.append(TicketTransition(
        ticket_id=ticket.id, transition="merge", from_status=ticket.status, to_status=TicketStatus.MERGED.value,
        actor=SYSTEM_ACTOR, reason=f"duplicate of {parent.id}: {reason}", at=now,
        department=ticket.department, details={"parent_ticket_id": parent.id}))
    ticket.status, ticket.parent_ticket_id = TicketStatus.MERGED.value, parent.id
    absorbed = TicketTransition(
        ticket_id=parent.id, transition="merge_child", from_status=parent.status, to_status=parent.status,
        actor=SYSTEM_ACTOR, reason=f"absorbed duplicate {ticket.id}: {reason}", at=now,
        department=parent.department, details={"child_ticket_id": ticket.id})
    parent.updated_at = now
    session.add_all([transitions[-1], absorbed])
    return absorbed


def _new_ticket(decision: DispatchDecision, now: datetime) -> tuple[Ticket, list[TicketTransition]]:
    ticket_id = f"GD{now.astimezone(CITY_TZ):%Y%m%d}-{uuid.uuid4().hex[:10]}"
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
