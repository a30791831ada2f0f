"""The ticket tests' loop: a migrated SQLite store, an embedded bus for the ticket events, a clock, a lifecycle."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from contracts import DispatchDecision, Priority, Source, TicketEvent, Topic
from streams import EmbeddedBus
from tickets import TicketStatus, TicketStore
from tickets.lifecycle import Lifecycle

from ..postgres_server import postgres_server
from ..support import Clock

A3 = "A3区城市管理局"
A5 = "A5区住房和城乡建设局"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
S = TicketStatus


@dataclass
class Loop:
    store: TicketStore
    bus: EmbeddedBus
    clock: Clock
    lifecycle: Lifecycle
    _n: int = 0

    def ticket(self, department: str | None = A3, deadline_hours: int = 72, decided_at: datetime | None = None) -> str:
        self._n += 1
        decision = DispatchDecision(
            decision_id=f"d{self._n}", source=Source.HOTLINE, source_event_id=f"call:c{self._n}",
            decided_at=decided_at or self.clock.now, title=f"垃圾堆积 {self._n}", description="小区门口垃圾堆积多日",
            category="城乡建设", district="A3区", department=department, priority=Priority.NORMAL,
            deadline_hours=deadline_hours, rule_id="hotline.城乡建设" if department else None, rules_version="test",
            manual_reason=None if department else "classifier confidence 0.30 below threshold",
        )
        return self.store.create_from_decision(decision).ticket.id

    def events(self, ticket_id: str | None = None) -> list[TicketEvent]:
        found = [TicketEvent.model_validate_json(r.value) for r in self.bus.records(Topic.TICKETS)]
        return [e for e in found if ticket_id is None or e.ticket_id == ticket_id]

    def trail(self, ticket_id: str) -> list[tuple[str, str | None, str]]:
        ticket = self.store.get(ticket_id)
        assert ticket is not None
        return [(t.transition, t.from_status, t.to_status) for t in ticket.transitions]

    def status(self, ticket_id: str) -> str:
        ticket = self.store.get(ticket_id)
        assert ticket is not None
        return ticket.status


def _loop(database_url: str, journal: Path, migrate: bool = True) -> Loop:
    store = TicketStore(database_url, migrate=migrate)
    bus = EmbeddedBus(journal, max_bytes=lambda _topic: 10**7)
    clock = Clock()
    return Loop(store, bus, clock, Lifecycle(store, bus, clock=clock))


@pytest.fixture
def loop(tmp_path: Path, migrated_db: Path) -> Iterator[Loop]:
    shutil.copy(migrated_db, tmp_path / "tickets.sqlite3")
    made = _loop(f"sqlite:///{tmp_path / 'tickets.sqlite3'}", tmp_path / "journal.sqlite3", migrate=False)
    yield made
    made.bus.close()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_db(postgres_url: str) -> str:
    """A new, empty database on the module's PostgreSQL server: each test's tickets start from c1."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    server = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    server.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"
