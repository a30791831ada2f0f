"""Ticket store on SQLite (default) and on a real PostgreSQL server: migrations and idempotent creation."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from contracts import DispatchDecision, Priority, Source
from tickets import TicketStatus, TicketStore
from tickets.migrate import alembic_config
from tickets.stage import make_ticketing_stage

from ..postgres_server import postgres_server


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def _head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def _decision(n: int, department: str | None = "A3区城市管理局") -> DispatchDecision:
    return DispatchDecision(
        decision_id=f"d{n}", source=Source.HOTLINE, source_event_id=f"call:{n}", decided_at=datetime.now(UTC),
        title="垃圾堆积", description="小区门口垃圾堆积", category="城乡建设", district="A3区",
        department=department, priority=Priority.NORMAL, deadline_hours=72,
        rule_id="hotline.城乡建设" if department else None, rules_version="test",
        manual_reason=None if department else "classifier confidence 0.30 below threshold",
    )


def _check_idempotent_creation(store: TicketStore) -> None:
    first = store.create_from_decision(_decision(1))
    again = store.create_from_decision(_decision(1))
    assert first.created and not again.created
    assert again.ticket.id == first.ticket.id
    assert first.ticket.status == TicketStatus.DISPATCHED
    assert (first.ticket.deadline_at - first.ticket.created_at).total_seconds() == pytest.approx(72 * 3600, abs=5)
    with ThreadPoolExecutor(max_workers=8) as pool:  # concurrent redeliveries race on the unique key
        results = list(pool.map(lambda _: store.create_from_decision(_decision(2)), range(16)))
    assert sum(r.created for r in results) == 1
    assert store.source_event_counts() == {"call:1": 1, "call:2": 1}
    manual = store.create_from_decision(_decision(3, department=None))
    assert manual.ticket.status == TicketStatus.PENDING_MANUAL
    stored = store.get(manual.ticket.id)
    assert stored is not None and stored.transitions[0].reason == "classifier confidence 0.30 below threshold"


def test_sqlite_store_creates_each_ticket_once(tmp_path: Path) -> None:
    _check_idempotent_creation(TicketStore(f"sqlite:///{tmp_path / 't.sqlite3'}"))


@pytest.mark.slow
def test_postgresql_store_creates_each_ticket_once(postgres_url: str) -> None:
    store = TicketStore(postgres_url)
    with store.engine.connect() as connection:
        assert connection.execute(text("select version()")).scalar_one().startswith("PostgreSQL")
        revision = connection.execute(text("select version_num from alembic_version")).scalar_one()
        assert revision == _head_revision(postgres_url)
    assert {"tickets", "ticket_transitions"} <= set(inspect(store.engine).get_table_names())
    _check_idempotent_creation(store)


def test_ticketing_stage_announces_only_new_tickets(tmp_path: Path) -> None:
    stage = make_ticketing_stage(TicketStore(f"sqlite:///{tmp_path / 't.sqlite3'}"))
    first = stage.handle(_decision(5))
    assert [o.value.transition for o in first] == ["create"]  # type: ignore[attr-defined]
    again = stage.handle(_decision(5))
    assert [o.value.transition_seq for o in again] == [o.value.transition_seq for o in first]  # type: ignore[attr-defined]


def test_a_camera_ticket_keeps_the_event_snapshot_as_an_attachment(tmp_path: Path) -> None:
    from sqlalchemy import select

    from tickets.models import TicketAttachment

    store = TicketStore(f"sqlite:///{tmp_path / 't.sqlite3'}")
    jpeg = b"\xff\xd8\xff\xe0 not a real frame but bytes"
    camera = _decision(9).model_copy(update={"source": Source.CAMERA, "snapshot_jpeg": jpeg})
    ticket = store.create_from_decision(camera).ticket
    assert "snapshot_jpeg" not in ticket.decision
    with store.session() as session:
        attachment = session.scalars(select(TicketAttachment).where(TicketAttachment.ticket_id == ticket.id)).one()
    assert attachment.kind == "snapshot" and attachment.data == jpeg
