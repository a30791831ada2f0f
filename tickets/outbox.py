"""The transactional outbox of ticket events.

A transition and its TicketEvent are committed together (`stage`), so a crash after the commit cannot lose
the event: `OutboxRelay.relay` publishes what is pending, oldest first, and marks it published. The lifecycle
relays right after each commit; the API relays on a timer and `hotline tickets relay-events` on demand,
which picks up whatever a crash or a broker outage left behind.

Delivery is at least once: a crash between a publish and its mark publishes that event again. Consumers
tell repeats apart by the event's `transition_seq` (the audit row's id).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from contracts import TicketEvent, Topic
from streams.codec import encode
from streams.transport import Transport
from tickets.models import OutboxEvent
from tickets.store import TicketStore

log = structlog.get_logger(__name__)
RELAY_BATCH = 500
KEEP_PUBLISHED = timedelta(days=7)  # published events stay a while for inspection, then go


def stage(session: Session, events: Iterable[TicketEvent], now: datetime) -> None:
    """Add the events to the outbox inside the caller's transaction."""
    for event in events:
        session.add(OutboxEvent(topic=Topic.TICKETS.value, key=event.key(), payload=encode(event), created_at=now))


def _pending(batch: int) -> Select[OutboxEvent]:
    return select(OutboxEvent).where(OutboxEvent.published_at.is_(None)).order_by(OutboxEvent.id).limit(batch)


class OutboxRelay:
    def __init__(self, store: TicketStore, transport: Transport,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.transport = transport
        self._clock = clock
        self._lock = threading.Lock()  # one relay at a time per process keeps each ticket's events in order

    def relay(self, batch: int = RELAY_BATCH) -> int:
        """Publish every pending event, oldest first; returns how many. A publish error stops the run: the
        events published before it are marked, the rest stay pending, and the error is raised."""
        total = 0
        with self._lock:
            while True:
                published = self._relay_batch(batch)
                total += published
                if published < batch:
                    return total

    def _relay_batch(self, batch: int) -> int:
        if self.store.engine.dialect.name == "sqlite":
            return self._relay_batch_unlocked(batch)
        return self._relay_batch_locked(batch)

    def _relay_batch_unlocked(self, batch: int) -> int:
        """SQLite has one write lock for the whole file: held while a slow broker takes a publish, it would stall
        every ticket write. So the events are read, published, then marked in a short write of their own (two
        relaying processes may both publish an event: delivery is at least once anyway)."""
        with self.store.session() as session:
            rows = list(session.scalars(_pending(batch)))
        published, failure = self._publish(rows)
        if published:
            with self.store.session() as session, session.begin():
                session.execute(update(OutboxEvent).where(OutboxEvent.id.in_([row.id for row in published]),
                                                          OutboxEvent.published_at.is_(None))
                                .values(published_at=self._clock()))
        if failure is not None:
            raise failure
        return len(published)

    def _relay_batch_locked(self, batch: int) -> int:
        """PostgreSQL: the rows stay locked while they are published, so relays of several processes keep each
        ticket's events in order (row locks hold up no other writer)."""
        with self.store.session() as session, session.begin():
            published, failure = self._publish(list(session.scalars(_pending(batch).with_for_update())))
            for row in published:  # the marks of what went out are committed before raising
                row.published_at = self._clock()
        if failure is not None:
            raise failure
        return len(published)

    def _publish(self, rows: list[OutboxEvent]) -> tuple[list[OutboxEvent], Exception | None]:
        """Publish in order until one fails: what went out, and the error that stopped it."""
        for done, row in enumerate(rows):
            try:
                self.transport.publish_raw(Topic(row.topic), row.payload, row.key)
            except Exception as error:
                return rows[:done], error
        return rows, None

    def prune(self, keep: timedelta = KEEP_PUBLISHED) -> int:
        """Delete events published more than `keep` ago; returns how many."""
        with self.store.session() as session, session.begin():
            result = session.execute(delete(OutboxEvent).where(OutboxEvent.published_at < self._clock() - keep))
            return int(getattr(result, "rowcount", 0) or 0)

    def relay_quietly(self) -> int:
        """`relay`, logging instead of raising: for callers whose own work is already committed."""
        try:
            return self.relay()
        except Exception:  # the broker is down, say: the events wait in the outbox for the next relay
            log.warning("ticket_events_kept_in_outbox", reason="relaying failed", pending=self._pending_or_none(),
                        exc_info=True)
            return 0

    def _pending_or_none(self) -> int | None:
        """`pending` for a log line, None when even that fails (the database being what is down)."""
        try:
            return self.pending()
        except Exception:
            return None

    def pending(self) -> int:
        with self.store.session() as session:
            return int(session.scalar(select(func.count()).select_from(OutboxEvent)
                                      .where(OutboxEvent.published_at.is_(None))) or 0)
