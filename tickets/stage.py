"""The ticketing stage: dispatch decisions in, tickets in the store and ticket events out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from contracts import DispatchDecision, Message, Priority, TicketEvent, Topic
from streams.stage import Output, Stage
from tickets.models import Ticket, TicketTransition
from tickets.store import TicketStore


def make_ticketing_stage(store: TicketStore) -> Stage:
    def handle(message: Message) -> Sequence[Output]:
        assert isinstance(message, DispatchDecision)
        result = store.create_from_decision(message)
        # a redelivered decision announces the existing ticket's creation again (same transition_seq), so
        # the tickets topic is at-least-once even when a worker died between the insert and the send
        return [Output(Topic.TICKETS, ticket_event(result.ticket, t)) for t in result.transitions] + [
            Output(Topic.TICKETS, ticket_event(ticket, t)) for ticket, t in result.related]

    return Stage(name="ticketing", input_topic=Topic.DISPATCH_DECISIONS, handle=handle)


def ticket_event(ticket: Ticket, transition: TicketTransition) -> TicketEvent:
    return TicketEvent(
        ticket_id=ticket.id,
        source_event_id=ticket.source_event_id,
        transition=transition.transition,
        status=transition.to_status,
        department=ticket.department,
        priority=Priority(ticket.priority),
        deadline_at=_aware(ticket.deadline_at),
        at=_aware(transition.at),
        actor=transition.actor,
        reason=transition.reason,
        title=ticket.title,
        district=ticket.district,
        transition_seq=transition.id,
    )


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
