"""The ticket-event outbox: a transition and its event commit together, and a broker outage or a crash after the
commit delays the event but never loses it."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from contracts import TicketEvent, Topic
from streams import EmbeddedBus
from streams.transport import Transport
from tickets.lifecycle import Lifecycle
from tickets.outbox import OutboxRelay

from .conftest import A3, Loop


class FlakyTransport(Transport):
    """Passes publishes to the bus until told to fail (a broker outage), counting them."""

    def __init__(self, bus: EmbeddedBus, fail_after: int | None = None) -> None:
        self.bus = bus
        self.fail_after = fail_after
        self.published = 0

    def publish_raw(self, topic: Topic, raw: bytes, key: str | None = None) -> None:
        if self.fail_after is not None and self.published >= self.fail_after:
            raise ConnectionError("broker unreachable")
        self.bus.publish_raw(topic, raw, key)
        self.published += 1

    def close(self) -> None:
        pass


def _sequence(loop: Loop, ticket_id: str) -> list[tuple[str, int]]:
    return [(e.transition, e.transition_seq or 0) for e in loop.events(ticket_id)]


def test_each_transition_is_published_once_through_the_outbox(loop: Loop) -> None:
    ticket_id = loop.ticket()
    loop.lifecycle.accept(ticket_id, "department:wang@" + A3)
    loop.lifecycle.start(ticket_id, "department:wang@" + A3)
    assert [t for t, _ in _sequence(loop, ticket_id)] == ["accept", "start"]
    assert loop.lifecycle.relay is not None and loop.lifecycle.relay.pending() == 0
    assert loop.lifecycle.relay.relay() == 0  # nothing twice


def test_a_broker_outage_keeps_the_transition_and_its_event_until_the_next_relay(loop: Loop) -> None:
    flaky = FlakyTransport(loop.bus, fail_after=0)
    lifecycle = Lifecycle(loop.store, flaky, clock=loop.clock)
    ticket_id = loop.ticket()
    accepted = lifecycle.accept(ticket_id, "department:wang@" + A3)  # the broker is down: the action still stands
    lifecycle.start(ticket_id, "department:wang@" + A3)
    lifecycle.escalate(ticket_id, "manager:zhao", "群众催办")
    assert loop.status(ticket_id) == "in_progress" and accepted.events[0].transition == "accept"
    assert loop.events(ticket_id) == []
    relay = OutboxRelay(loop.store, flaky)
    assert relay.pending() == 3

    flaky.fail_after = 1  # back for one publish, then down again: the one that went out is marked
    with pytest.raises(ConnectionError, match="broker unreachable"):
        relay.relay()
    assert relay.pending() == 2 and [t for t, _ in _sequence(loop, ticket_id)] == ["accept"]

    flaky.fail_after = None
    assert relay.relay() == 2 and relay.pending() == 0
    events = loop.events(ticket_id)
    assert [e.transition for e in events] == ["accept", "start", "escalate"]
    sequence = [e.transition_seq or 0 for e in events]
    assert sequence == sorted(sequence) and 0 not in sequence
    assert all(isinstance(e, TicketEvent) and e.ticket_id == ticket_id for e in events)


def test_a_slow_broker_holds_up_no_ticket_write_on_sqlite(loop: Loop) -> None:
    """The relay publishes outside SQLite's write lock: a ticket is created while a publish hangs."""
    import threading

    order: list[str] = []
    wrote = threading.Event()

    class SlowTransport(FlakyTransport):
        def publish_raw(self, topic: Topic, value: bytes, key: str | None = None) -> None:
            wrote.wait(timeout=10)  # the broker takes its time, until the write went through (or 10 s)
            order.append("published")
            super().publish_raw(topic, value, key)

    Lifecycle(loop.store, FlakyTransport(loop.bus, fail_after=0), clock=loop.clock).accept(
        loop.ticket(), "department:wang@" + A3)  # one event pending in the outbox
    relay = OutboxRelay(loop.store, SlowTransport(loop.bus))
    relaying = threading.Thread(target=relay.relay)
    relaying.start()
    loop.ticket()  # a write while the publish hangs
    order.append("written")
    wrote.set()
    relaying.join()
    assert order == ["written", "published"] and relay.pending() == 0


def test_published_events_are_pruned_after_a_week_and_pending_ones_never(loop: Loop) -> None:
    dying = Lifecycle(loop.store, None, clock=loop.clock)
    first, second = loop.ticket(), loop.ticket()
    dying.accept(first, "department:wang@" + A3)
    relay = OutboxRelay(loop.store, loop.bus, clock=lambda: loop.clock.now)
    assert relay.relay() == 1
    dying.accept(second, "department:wang@" + A3)  # still pending
    loop.clock.advance(days=6)
    assert relay.prune() == 0
    loop.clock.advance(days=2)
    assert relay.prune() == 1 and relay.pending() == 1
    assert relay.relay() == 1 and [e.transition for e in loop.events(second)] == ["accept"]


def test_a_crash_after_the_commit_leaves_the_event_for_the_relay(loop: Loop) -> None:
    """A lifecycle without a transport stands for a process that died right after committing."""
    dying = Lifecycle(loop.store, None, clock=loop.clock)
    child, parent = loop.ticket(), loop.ticket()
    dying.merge(child, parent, "manager:zhao", "同一处垃圾")
    assert loop.events(child) == [] and loop.events(parent) == []
    relay = OutboxRelay(loop.store, loop.bus)
    assert relay.relay() == 2
    assert [e.transition for e in loop.events(child)] == ["merge"]
    assert [e.transition for e in loop.events(parent)] == ["merge_child"]


def test_relaying_quietly_stays_quiet_when_the_database_is_away(loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    relay = OutboxRelay(loop.store, loop.bus)

    def database_away(*_args: object) -> int:
        raise OperationalError("SELECT ... FROM ticket_outbox", {}, Exception("database is locked"))

    monkeypatch.setattr(relay, "_relay_batch", database_away)
    monkeypatch.setattr(relay, "pending", database_away)  # what the warning would have counted
    assert relay.relay_quietly() == 0
