"""The assist stage's own state: recent calls (text and place, to find repeat reports), its view of tickets
(kept from the tickets topic, not read from the ticket store), and agents' feedback on suggestions."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text, delete, or_, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from classifiers.extract import is_city_wide, same_area
from contracts import mask_pii
from tickets.migrate import upgrade_database
from tickets.store import make_engine, make_sessions

MAX_TEXT_CHARS = 2000
OPEN_TICKET_STATUSES = ("pending_manual", "dispatched", "accepted", "returned", "in_progress")


class AssistBase(DeclarativeBase):
    pass


class AssistCall(AssistBase):
    __tablename__ = "assist_calls"
    call_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    district: Mapped[str | None] = mapped_column(String(64), index=True)
    # placed only in the whole city (A市) or nowhere: may be about any district, so compared with all of them
    city_wide: Mapped[bool] = mapped_column(Boolean, index=True)
    title: Mapped[str] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class AssistTicketView(AssistBase):
    __tablename__ = "assist_ticket_view"
    source_event_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(24))
    department: Mapped[str | None] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # migration 0008: the event shown; a repeated announcement (same or older transition_seq) changes nothing
    transition_seq: Mapped[int | None] = mapped_column(Integer)


class SuggestionFeedback(AssistBase):
    __tablename__ = "suggestion_feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(128), index=True)
    case_id: Mapped[str] = mapped_column(String(64), index=True)
    verdict: Mapped[str] = mapped_column(String(16))  # used | wrong
    agent: Mapped[str] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AssistStore:
    def __init__(self, database_url: str, migrate: bool = True) -> None:
        if migrate:
            upgrade_database(database_url)
        self.engine = make_engine(database_url)
        self._sessions = make_sessions(self.engine)

    def remember_call(self, call_id: str, district: str | None, title: str, text: str,
                      received_at: datetime) -> None:
        with self._sessions() as session, session.begin():
            session.merge(AssistCall(call_id=call_id, district=district, city_wide=is_city_wide(district),
                                     title=title, text=text[:MAX_TEXT_CHARS], received_at=received_at))

    def recent_calls(self, district: str | None, since: datetime, exclude: str,
                     limit: int = 2000) -> list[AssistCall]:
        """Calls since a moment that may be about the same place (extract.same_area): the same district, placed
        nowhere, or placed only in the city the other lies in (A市 and A3区, K市 and K8县, never K市 and A3区)."""
        query = (select(AssistCall).where(AssistCall.received_at >= since, AssistCall.call_id != exclude)
                 .order_by(AssistCall.received_at.desc()).limit(limit))
        with self._sessions() as session:
            if district:
                districts = session.scalars(select(AssistCall.district).distinct().where(
                    AssistCall.received_at >= since, AssistCall.district.is_not(None)))
                alike = [d for d in districts if d is not None and same_area(district, d)]
                query = query.where(or_(AssistCall.district.in_(alike), AssistCall.district.is_(None)))
            return list(session.scalars(query))

    def tickets_for(self, source_event_ids: list[str]) -> dict[str, AssistTicketView]:
        if not source_event_ids:
            return {}
        with self._sessions() as session:
            rows = session.scalars(select(AssistTicketView).where(
                AssistTicketView.source_event_id.in_(source_event_ids)))
            return {row.source_event_id: row for row in rows}

    def note_ticket(self, source_event_id: str, ticket_id: str, status: str, department: str | None,
                    title: str, at: datetime, transition_seq: int | None = None) -> None:
        """Show the ticket as a ticket event has it, unless the view shows that event or a later one already
        (an event without a transition_seq is shown in any case)."""
        with self._sessions() as session, session.begin():
            shown = session.get(AssistTicketView, source_event_id, with_for_update=True)
            seen = shown.transition_seq if shown is not None else None
            if transition_seq is not None and seen is not None and transition_seq <= seen:
                return
            session.merge(AssistTicketView(source_event_id=source_event_id, ticket_id=ticket_id, status=status,
                                           department=department, title=title, updated_at=at,
                                           transition_seq=seen if transition_seq is None else transition_seq))

    def record_feedback(self, call_id: str, case_id: str, verdict: str, agent: str, note: str | None = None) -> None:
        if verdict not in ("used", "wrong"):
            raise ValueError(f"verdict must be 'used' or 'wrong', not {verdict!r}")
        with self._sessions() as session, session.begin():
            session.add(SuggestionFeedback(call_id=call_id, case_id=case_id, verdict=verdict, agent=agent,
                                           note=None if note is None else mask_pii(note), at=datetime.now(UTC)))

    def feedback(self, call_id: str | None = None) -> list[SuggestionFeedback]:
        query = select(SuggestionFeedback).order_by(SuggestionFeedback.id)
        if call_id:
            query = query.where(SuggestionFeedback.call_id == call_id)
        with self._sessions() as session:
            return list(session.scalars(query))

    def forget_calls_before(self, moment: datetime) -> int:
        with self._sessions() as session, session.begin():
            result = session.execute(delete(AssistCall).where(AssistCall.received_at < moment))
            return int(getattr(result, "rowcount", 0) or 0)
