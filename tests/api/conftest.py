"""An API on a temporary SQLite database and embedded bus, with one user per role and a clock to move."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import create_app
from api.users import add_user
from contracts import DispatchDecision, Priority, Source, TicketEvent, Topic
from hotline.settings import REPO_ROOT, Settings
from streams import EmbeddedBus
from tickets import TicketStore

from ..support import Clock

A3 = "A3区城市管理局"
A5 = "A5区住房和城乡建设局"
USERS = {"agent": ("agent", None), "manager": ("manager", None), "analyst": ("analyst", None),
         "a3": ("department", A3), "a5": ("department", A5)}


@dataclass
class Api:
    client: TestClient
    store: TicketStore
    bus: EmbeddedBus
    clock: Clock
    settings: Settings
    tokens: dict[str, str] = field(default_factory=dict)
    _n: int = 0

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def ticket(self, department: str | None = A3, deadline_hours: int = 72, title: str = "垃圾堆积",
               district: str = "A3区", category: str = "城乡建设") -> str:
        self._n += 1
        decision = DispatchDecision(
            decision_id=f"d{self._n}", source=Source.HOTLINE, source_event_id=f"call:c{self._n}",
            decided_at=self.clock.now, title=f"{title} {self._n}", description=f"{title}：小区门口，第{self._n}件",
            category=category, district=district, department=department, priority=Priority.NORMAL,
            deadline_hours=deadline_hours, rule_id="t" if department else None, rules_version="test",
            manual_reason=None if department else "classifier confidence 0.30 below threshold",
        )
        return self.store.create_from_decision(decision).ticket.id

    def events(self, ticket_id: str | None = None) -> list[TicketEvent]:
        found = [TicketEvent.model_validate_json(r.value) for r in self.bus.records(Topic.TICKETS)]
        return [e for e in found if ticket_id is None or e.ticket_id == ticket_id]


@pytest.fixture
def make_api(tmp_path: Path, migrated_db: Path) -> Iterator[Callable[..., Api]]:
    made: list[Api] = []

    def factory(settings: Settings | None = None) -> Api:
        settings = settings or Settings(data_dir=tmp_path / "data", shared_dir=REPO_ROOT.parent / "shared")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(migrated_db, settings.data_dir / "tickets.sqlite3")
        store = TicketStore(settings.resolved_database_url, migrate=False)
        bus = EmbeddedBus(settings.journal_path, max_bytes=lambda _topic: 10**7)
        clock = Clock()
        client = TestClient(create_app(settings, store=store, transport=bus, clock=clock))
        client.__enter__()
        api = Api(client, store, bus, clock, settings)
        for name, (role, department) in USERS.items():
            api.tokens[name] = add_user(store, name, role, department)[1]
        made.append(api)
        return api

    yield factory
    for api in made:
        api.client.__exit__(None, None, None)
        api.bus.close()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()
