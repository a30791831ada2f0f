"""The ticket store (SQLAlchemy 2 + Alembic; SQLite by default, PostgreSQL by URL) and the ticketing stage."""

from tickets.models import Ticket, TicketStatus, TicketTransition
from tickets.stage import make_ticketing_stage
from tickets.store import TicketStore

__all__ = ["Ticket", "TicketStatus", "TicketStore", "TicketTransition", "make_ticketing_stage"]
