"""Ticket store on SQLite (default) and on a real PostgreSQL server: migrations and idempotent creation."""

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from classifiers.assist_store import AssistStore
from contracts import DispatchDecision, Priority, Source, TicketEvent
from streams.stage import Output
from tickets import Ticket, TicketStatus, TicketStore
from tickets.lifecycle import Lifecycle
from tickets.migrate import alembic_config
from tickets.stage import make_ticketing_stage


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


def test_ticket_numbers_carry_the_city_date(tmp_path: Path) -> None:
    moment = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # 07:30 on 2 March in the city
    store = TicketStore(f"sqlite:///{tmp_path / 't.sqlite3'}", clock=lambda: moment)
    ticket = store.create_from_decision(_decision(1)).ticket
    assert ticket.id.startswith("GD20260302-")
    stored = store.get(ticket.id)
    assert stored is not None and stored.created_at.replace(tzinfo=UTC) == moment


def test_an_open_read_on_sqlite_holds_up_no_write(tmp_path: Path) -> None:
    """Reads BEGIN deferred (only writes take SQLite's write lock at BEGIN), so a read in progress, even in
    the same thread, does not make a write wait."""
    store = TicketStore(f"sqlite:///{tmp_path / 't.sqlite3'}")
    ticket = store.create_from_decision(_decision(1)).ticket
    with store.session() as reading:
        assert reading.get(Ticket, ticket.id) is not None
        Lifecycle(store, None).accept(ticket.id, "department:wang")
    assert store.get(ticket.id).status == TicketStatus.ACCEPTED  # type: ignore[union-attr]


def _events(outputs: Sequence[Output]) -> list[TicketEvent]:
    return [o.value for o in outputs if isinstance(o.value, TicketEvent)]


def test_a_repeated_creation_event_does_not_reopen_the_assist_view(tmp_path: Path) -> None:
    """A redelivered decision announces the ticket's creation again; the assist stage's view of the ticket
    keeps the later transition it has shown (by transition_seq)."""
    url = f"sqlite:///{tmp_path / 't.sqlite3'}"
    store, view = TicketStore(url), AssistStore(url, migrate=False)
    stage = make_ticketing_stage(store)

    def note(events: Sequence[TicketEvent]) -> None:
        for e in events:
            view.note_ticket(e.source_event_id, e.ticket_id, e.status, e.department, e.title, e.at,
                             transition_seq=e.transition_seq)

    [created] = _events(stage.handle(_decision(7)))
    note([created])
    parent = store.create_from_decision(_decision(8)).ticket.id
    merged = Lifecycle(store, None).merge(created.ticket_id, parent, "manager:zhao", "重复")
    note(merged.events)
    again = _events(stage.handle(_decision(7)))
    assert [e.transition_seq for e in again] == [created.transition_seq]
    note(again)
    shown = view.tickets_for(["call:7"])["call:7"]
    assert shown.status == "merged" and shown.transition_seq == merged.events[0].transition_seq
    view.note_ticket("call:7", created.ticket_id, "closed", None, created.title, created.at)  # no seq: shown
    assert view.tickets_for(["call:7"])["call:7"].status == "closed"


def test_processes_opening_a_new_file_together_wait_for_each_other(tmp_path: Path) -> None:
    """Switching a rollback-journal file to WAL needs the busy timeout set first, or an opener fails at once."""
    import sqlite3

    from tickets.store import make_engine

    for run in range(4):
        path = tmp_path / f"run{run}.sqlite3"
        with sqlite3.connect(path) as plain:  # a file made by another tool: rollback journal
            plain.execute("CREATE TABLE t (i INTEGER)")

        def insert(i: int, url: str = f"sqlite:///{path}") -> None:
            engine = make_engine(url)
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO t VALUES (:i)"), {"i": i})
            engine.dispose()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(insert, range(8)))  # raises if any opener failed
        with sqlite3.connect(path) as plain:
            assert plain.execute("SELECT count(*) FROM t").fetchone() == (8,)


def _camera_decision(event_id: str, zone: str = "garbage-point", kind: str = "exposed_garbage") -> DispatchDecision:
    return DispatchDecision(
        decision_id=event_id, source=Source.CAMERA, source_event_id=f"camera-event:{event_id}",
        decided_at=datetime(2026, 11, 29, 8, 0, tzinfo=UTC), title=f"{kind} @ cam-A3-0001", description="seen",
        category="200102", district="A3区", department="A3区城市管理局", priority=Priority.NORMAL, deadline_hours=24,
        rule_id="cam.garbage", rules_version="test",
        explanation={"camera_id": "cam-A3-0001", "zone_id": zone, "inputs": {"kind": kind}})


def test_a_repeat_camera_event_joins_the_open_ticket_of_its_problem_and_only_that(tmp_path: Path,
                                                                                 migrated_db: Path) -> None:
    import shutil

    shutil.copy(migrated_db, tmp_path / "t.sqlite3")
    store = TicketStore(f"sqlite:///{tmp_path / 't.sqlite3'}", migrate=False)
    first = store.create_from_decision(_camera_decision("e1")).ticket
    repeat = store.create_from_decision(_camera_decision("e2"))
    assert repeat.ticket.status == TicketStatus.MERGED and repeat.ticket.parent_ticket_id == first.id
    assert [(t.id, tr.transition) for t, tr in repeat.related] == [(first.id, "merge_child")]
    assert [tr.transition for tr in repeat.transitions] == ["create", "merge"]
    redelivered = store.create_from_decision(_camera_decision("e2"))  # the worker died before announcing it
    assert not redelivered.created and [tr.transition for tr in redelivered.transitions] == ["create", "merge"]
    assert [(t.id, tr.id) for t, tr in redelivered.related] == [(t.id, tr.id) for t, tr in repeat.related]
    other_zone = store.create_from_decision(_camera_decision("e3", zone="kerb")).ticket
    other_kind = store.create_from_decision(_camera_decision("e4", kind="overflowing_bin")).ticket
    assert other_zone.status == other_kind.status == TicketStatus.DISPATCHED
    with store.session() as session, session.begin():  # the first problem's ticket is closed
        closed = session.get(Ticket, first.id)
        assert closed is not None
        closed.status = TicketStatus.CLOSED.value
    again = store.create_from_decision(_camera_decision("e5")).ticket
    assert again.status == TicketStatus.DISPATCHED and again.parent_ticket_id is None
