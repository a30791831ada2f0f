"""Reads shared by the API and the consoles: one ticket with its audit trail, attachments and merged duplicates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from api.schemas import AttachmentOut, TicketDetail, TicketOut, TransitionOut
from tickets.models import Ticket, TicketAttachment
from tickets.store import TicketStore


def ticket_detail(store: TicketStore, ticket_id: str, now: datetime,
                  department: str | None = None) -> TicketDetail | None:
    """The ticket, or None when there is none (or, given `department`, when it is with another department)."""
    with store.session() as session:
        ticket = session.scalars(select(Ticket).options(selectinload(Ticket.transitions))
                                 .where(Ticket.id == ticket_id)).first()
        if ticket is None or (department is not None and ticket.department != department):
            return None
        attachments = list(session.scalars(
            select(TicketAttachment).where(TicketAttachment.ticket_id == ticket_id).order_by(TicketAttachment.id)))
        children = list(session.scalars(select(Ticket.id).where(Ticket.parent_ticket_id == ticket_id)
                                        .order_by(Ticket.id)))
        base = TicketOut.of(ticket, now)
        return TicketDetail(**base.model_dump(), transitions=[TransitionOut.of(t) for t in ticket.transitions],
                            attachments=[AttachmentOut.of(a) for a in attachments], merged_children=children)
