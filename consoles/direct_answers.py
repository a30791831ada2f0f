"""Recording directly answered calls, and counting them for 直接答复率."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from consoles.models import DirectAnswer
from contracts import HotlineTranscript
from tickets.models import Ticket
from tickets.store import TicketStore


class DuplicateCall(Exception):
    """A direct answer was already recorded under this call id."""


def record_direct_answer(store: TicketStore, transcript: HotlineTranscript, agent: str, answer: str,
                         case_id: str | None, at: datetime, district: str | None = None) -> DirectAnswer:
    """Keep the call as answered; `transcript` is the validated (PII-masked) call, `district` where it is about
    (default: the caller's district hint)."""
    row = DirectAnswer(call_id=transcript.call_id, answered_at=at, agent=agent, title=transcript.title,
                       text=transcript.text, district=district or transcript.district_hint, answer=answer,
                       case_id=case_id)
    try:
        with store.session() as session, session.begin():
            session.add(row)
    except IntegrityError:
        raise DuplicateCall(transcript.call_id) from None
    return row


@dataclass(frozen=True)
class DirectAnswerRate:
    """直接答复率: calls answered on the phone over all calls (answered + those that became hotline tickets)."""

    direct: int
    ticketed: int

    @property
    def calls(self) -> int:
        return self.direct + self.ticketed

    @property
    def value(self) -> float | None:
        return self.direct / self.calls if self.calls else None


def direct_answer_rate(store: TicketStore, since: datetime, until: datetime,
                       district: str | None = None) -> DirectAnswerRate:
    answered = select(func.count()).select_from(DirectAnswer).where(
        DirectAnswer.answered_at >= since, DirectAnswer.answered_at <= until)
    ticketed = select(func.count()).select_from(Ticket).where(
        Ticket.source == "hotline", Ticket.created_at >= since, Ticket.created_at <= until)
    if district:
        answered = answered.where(DirectAnswer.district == district)
        ticketed = ticketed.where(Ticket.district == district)
    with store.session() as session:
        return DirectAnswerRate(direct=int(session.scalar(answered) or 0), ticketed=int(session.scalar(ticketed) or 0))


def recent_direct_answers(store: TicketStore, limit: int = 10) -> list[DirectAnswer]:
    with store.session() as session:
        return list(session.scalars(select(DirectAnswer).order_by(DirectAnswer.answered_at.desc()).limit(limit)))
