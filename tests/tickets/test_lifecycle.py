"""The closed loop as a state machine: legal paths, refused ones, the audit trail, events, 督办, merges, rates."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, inspect, select, update
from sqlalchemy.orm import Session

from tickets import TicketStatus, TicketStore
from tickets.lifecycle import (
    TRANSITIONS,
    Action,
    EscalationPolicy,
    IllegalTransition,
    InvalidTransitionRequest,
    Lifecycle,
    Photo,
    TicketNotFound,
    allowed_actions,
    attachment,
    rates,
)
from tickets.migrate import alembic_config
from tickets.models import Ticket

from ..postgres_server import postgres_server
from .conftest import A3, A5, JPEG, Loop, S, _loop


def _full_loop(loop: Loop) -> str:
    """dispatched -> accepted -> in_progress -> resolved (note, photo) -> verified -> closed."""
    lc, clock = loop.lifecycle, loop.clock
    ticket_id = loop.ticket()
    clock.advance(minutes=30)
    lc.accept(ticket_id, "department:wang@" + A3, as_department=A3)
    clock.advance(hours=1)
    lc.start(ticket_id, "department:wang@" + A3, as_department=A3)
    clock.advance(hours=5)
    resolved = lc.resolve(ticket_id, "department:wang@" + A3, "已清运垃圾，并安排每日巡查",
                          photo=Photo(JPEG, "image/jpeg"), as_department=A3)
    clock.advance(hours=2)
    lc.verify(ticket_id, "agent:li", satisfied=True)
    lc.close(ticket_id, "agent:li")
    assert resolved.attachment_id is not None
    stored = attachment(loop.store, ticket_id, resolved.attachment_id)
    assert stored is not None and stored.data == JPEG and stored.sha256 == hashlib.sha256(JPEG).hexdigest()
    return ticket_id


def test_the_full_loop_is_audited_and_announced(loop: Loop) -> None:
    ticket_id = _full_loop(loop)
    assert loop.trail(ticket_id) == [
        ("create", None, "dispatched"), ("accept", "dispatched", "accepted"), ("start", "accepted", "in_progress"),
        ("resolve", "in_progress", "resolved"), ("verify", "resolved", "verified"), ("close", "verified", "closed"),
    ]
    ticket = loop.store.get(ticket_id)
    assert ticket is not None
    assert ticket.resolution_note == "已清运垃圾，并安排每日巡查" and ticket.satisfaction == "satisfied"
    resolve = ticket.transitions[3]
    assert resolve.actor == "department:wang@" + A3 and resolve.reason == "已清运垃圾，并安排每日巡查"
    assert resolve.department == A3 and resolve.details is not None and "photo_attachment_id" in resolve.details
    assert resolve.at.replace(tzinfo=UTC) == loop.clock.now - timedelta(hours=2)
    assert ticket.transitions[4].actor == "agent:li" and ticket.transitions[4].details == {"satisfied": True}
    events = loop.events(ticket_id)  # the create event is the ticketing stage's to publish, not the lifecycle's
    assert [(e.transition, e.status, e.actor) for e in events] == [
        ("accept", "accepted", "department:wang@" + A3), ("start", "in_progress", "department:wang@" + A3),
        ("resolve", "resolved", "department:wang@" + A3), ("verify", "verified", "agent:li"),
        ("close", "closed", "agent:li"),
    ]
    assert all(e.department == A3 and e.source_event_id == "call:c1" for e in events)


def test_manual_dispatch_return_and_reassign(loop: Loop) -> None:
    lc = loop.lifecycle
    ticket_id = loop.ticket(department=None)
    assert loop.status(ticket_id) == S.PENDING_MANUAL
    with pytest.raises(InvalidTransitionRequest, match="a department is required"):
        lc.assign(ticket_id, "  ", "manager:zhao")
    lc.assign(ticket_id, A3, "manager:zhao")
    with pytest.raises(InvalidTransitionRequest, match=f"cannot return ticket {ticket_id}: a reason is required"):
        lc.return_ticket(ticket_id, "department:wang", "   ", as_department=A3)
    lc.accept(ticket_id, "department:wang", as_department=A3)
    result = lc.return_ticket(ticket_id, "department:wang", "属住建部门职责", as_department=A3)
    assert result.ticket.status == S.RETURNED and result.events[0].reason == "属住建部门职责"
    with pytest.raises(InvalidTransitionRequest, match="a reason is required"):
        lc.reassign(ticket_id, A5, "manager:zhao", "")
    lc.reassign(ticket_id, A5, "manager:zhao", "退单审核通过，改派住建")
    with pytest.raises(TicketNotFound):  # no longer A3's
        lc.accept(ticket_id, "department:wang", as_department=A3)
    lc.accept(ticket_id, "department:liu", as_department=A5)
    assert loop.trail(ticket_id) == [
        ("create", None, "pending_manual"), ("assign", "pending_manual", "dispatched"),
        ("accept", "dispatched", "accepted"), ("return", "accepted", "returned"),
        ("reassign", "returned", "dispatched"), ("accept", "dispatched", "accepted"),
    ]
    ticket = loop.store.get(ticket_id)
    assert ticket is not None and ticket.department == A5
    assert [t.department for t in ticket.transitions[1:]] == [A3, A3, A3, A5, A5]
    assert ticket.transitions[1].reason == f"manual dispatch to {A3}"
    assert [e.department for e in loop.events(ticket_id)] == [A3, A3, A3, A5, A5]


def test_unsatisfied_callback_reopens_the_ticket(loop: Loop) -> None:
    lc = loop.lifecycle

    def resolved() -> str:
        ticket_id = loop.ticket()
        lc.accept(ticket_id, "d", as_department=A3)
        lc.start(ticket_id, "d", as_department=A3)
        lc.resolve(ticket_id, "d", "已处理", as_department=A3)
        return ticket_id

    first = resolved()
    with pytest.raises(InvalidTransitionRequest, match="not satisfied"):
        lc.verify(first, "agent:li", satisfied=False)
    back = lc.verify(first, "agent:li", satisfied=False, reason="垃圾仍未清运")
    assert back.ticket.status == S.IN_PROGRESS and back.ticket.satisfaction == "unsatisfied"
    assert back.transitions[0].transition == "reopen"
    assert back.transitions[0].reason == "citizen not satisfied: 垃圾仍未清运"
    lc.resolve(first, "d", "再次清运", as_department=A3)
    lc.verify(first, "agent:li", satisfied=True)
    assert loop.status(first) == S.VERIFIED

    second = resolved()
    with pytest.raises(InvalidTransitionRequest, match="reopen_to dispatched"):
        lc.verify(second, "agent:li", satisfied=False, reason="x", department=A5)
    moved = lc.verify(second, "agent:li", satisfied=False, reason="需住建部门处理", reopen_to=S.DISPATCHED,
                      department=A5)
    assert moved.ticket.status == S.DISPATCHED and moved.ticket.department == A5
    with pytest.raises(InvalidTransitionRequest, match="in_progress or dispatched"):
        lc.verify(resolved(), "agent:li", satisfied=False, reason="x", reopen_to=S.CLOSED)


def test_every_illegal_transition_is_refused_with_a_clear_error(loop: Loop) -> None:
    lc = loop.lifecycle
    parent = loop.ticket()
    attempts: dict[Action, Callable[[str], object]] = {
        Action.ASSIGN: lambda t: lc.assign(t, A3, "m"),
        Action.ACCEPT: lambda t: lc.accept(t, "d"),
        Action.RETURN: lambda t: lc.return_ticket(t, "d", "not ours"),
        Action.REASSIGN: lambda t: lc.reassign(t, A5, "m", "why"),
        Action.START: lambda t: lc.start(t, "d"),
        Action.RESOLVE: lambda t: lc.resolve(t, "d", "note"),
        Action.VERIFY: lambda t: lc.verify(t, "a", satisfied=True),
        Action.REOPEN: lambda t: lc.verify(t, "a", satisfied=False, reason="still dirty"),
        Action.CLOSE: lambda t: lc.close(t, "a"),
        Action.ESCALATE: lambda t: lc.escalate(t, "m", "too slow"),
        Action.MERGE: lambda t: lc.merge(t, parent, "m", "same place"),
    }
    refused = 0
    for status in TicketStatus:
        for action, attempt in attempts.items():
            if status in TRANSITIONS[action]:
                continue
            ticket_id = loop.ticket()
            with loop.store.session() as session, session.begin():
                session.execute(update(Ticket).where(Ticket.id == ticket_id).values(status=status.value))
            with pytest.raises(IllegalTransition) as raised:
                attempt(ticket_id)
            message = str(raised.value)
            assert f"ticket {ticket_id} is {status.value}: cannot {action.value} it" in message, message
            assert raised.value.status == status.value and raised.value.action == action
            assert loop.status(ticket_id) == status.value and loop.trail(ticket_id) == [("create", None, "dispatched")]
            refused += 1
    assert refused > 60
    assert loop.events() == []  # nothing refused was announced
    assert allowed_actions(S.DISPATCHED) == [Action.ACCEPT, Action.RETURN, Action.REASSIGN, Action.ESCALATE,
                                             Action.MERGE]
    assert allowed_actions(S.CLOSED) == []
    with pytest.raises(TicketNotFound, match="ticket GD-nope not found"):
        lc.accept("GD-nope", "d")
    with pytest.raises(InvalidTransitionRequest, match="actor is required"):
        lc.accept(parent, " ")


def test_resolve_needs_a_note_and_a_real_photo(loop: Loop) -> None:
    lc = loop.lifecycle
    ticket_id = loop.ticket()
    lc.accept(ticket_id, "d")
    lc.start(ticket_id, "d")
    with pytest.raises(InvalidTransitionRequest, match="a handling note is required"):
        lc.resolve(ticket_id, "d", "  ")
    with pytest.raises(InvalidTransitionRequest, match="neither JPEG nor PNG"):
        lc.resolve(ticket_id, "d", "done", photo=Photo(b"GIF89a....", "image/jpeg"))
    with pytest.raises(InvalidTransitionRequest, match="is image/jpeg, not image/png"):
        lc.resolve(ticket_id, "d", "done", photo=Photo(JPEG, "image/png"))
    assert loop.status(ticket_id) == S.IN_PROGRESS


def test_overdue_tickets_escalate_level_by_level(loop: Loop) -> None:
    lc, clock = loop.lifecycle, loop.clock
    start = clock.now
    late = loop.ticket(deadline_hours=24)
    on_time = loop.ticket(deadline_hours=72)
    done = loop.ticket(deadline_hours=24)
    pending = loop.ticket(department=None, deadline_hours=24)
    lc.accept(done, "d")
    lc.start(done, "d")
    lc.resolve(done, "d", "已处理")

    assert lc.escalate_overdue(start + timedelta(hours=23)) == []
    first = lc.escalate_overdue(start + timedelta(hours=25))
    assert {r.ticket.id: r.ticket.escalation_level for r in first} == {late: 1, pending: 1}
    assert lc.escalate_overdue(start + timedelta(hours=25)) == []  # idempotent
    assert lc.escalate_overdue(start + timedelta(hours=30)) == []
    second = lc.escalate_overdue(start + timedelta(hours=49))
    assert {r.ticket.id: r.ticket.escalation_level for r in second} == {late: 2, pending: 2}
    assert loop.events(on_time) == [] and loop.store.get(on_time).escalation_level == 0  # type: ignore[union-attr]
    lc.escalate(late, "manager:zhao", "市领导关注")
    swept = lc.escalate_overdue(start + timedelta(days=10))  # late is at 3 already (by hand); on_time skips to 3
    assert {r.ticket.id: r.ticket.escalation_level for r in swept} == {pending: 3, on_time: 3}
    assert lc.escalate_overdue(start + timedelta(days=20)) == []  # max level reached

    ticket = loop.store.get(late)
    assert ticket is not None and ticket.status == S.DISPATCHED and ticket.escalation_level == 3
    escalations = [t for t in ticket.transitions if t.transition == "escalate"]
    assert [(t.from_status, t.to_status, t.actor) for t in escalations] == [
        ("dispatched", "dispatched", "system:overdue-sweep"), ("dispatched", "dispatched", "system:overdue-sweep"),
        ("dispatched", "dispatched", "manager:zhao")]
    assert escalations[0].reason is not None and escalations[0].reason.startswith("督办 level 1: overdue by 1.0 h")
    assert escalations[2].reason == "督办 level 3: 市领导关注" and escalations[2].details == {"escalation_level": 3}
    assert [e.transition for e in loop.events(late)] == ["escalate"] * 3
    with pytest.raises(IllegalTransition, match=f"ticket {done} is resolved: cannot escalate"):
        lc.escalate(done, "manager:zhao", "?")
    with pytest.raises(InvalidTransitionRequest, match="a reason is required"):
        lc.escalate(late, "manager:zhao", "")


def test_custom_escalation_policy() -> None:
    policy = EscalationPolicy(step_hours=2, max_level=5)
    deadline = datetime(2026, 11, 22, 8, tzinfo=UTC)
    assert [policy.level_due(deadline, deadline + timedelta(hours=h)) for h in (0, 0.5, 2, 3.9, 4, 100)] == \
        [0, 1, 2, 2, 3, 5]


def test_duplicates_merge_under_a_parent(loop: Loop) -> None:
    lc = loop.lifecycle
    parent, child, other = loop.ticket(), loop.ticket(), loop.ticket()
    lc.accept(parent, "d")
    result = lc.merge(child, parent, "manager:zhao", "同一地点同一问题")
    assert result.ticket.status == S.MERGED and result.ticket.parent_ticket_id == parent
    assert [(t.ticket_id, t.transition, t.from_status, t.to_status) for t in result.transitions] == [
        (child, "merge", "dispatched", "merged"), (parent, "merge_child", "accepted", "accepted")]
    assert result.transitions[0].reason == f"duplicate of {parent}: 同一地点同一问题"
    assert result.transitions[1].reason == f"absorbed duplicate {child}: 同一地点同一问题"
    assert result.transitions[1].details == {"child_ticket_id": child}
    assert [(e.ticket_id, e.transition, e.status) for e in loop.events()][-2:] == [
        (child, "merge", "merged"), (parent, "merge_child", "accepted")]
    assert loop.status(parent) == S.ACCEPTED

    with pytest.raises(IllegalTransition, match=f"ticket {child} is merged: cannot merge_child it"):
        lc.merge(other, child, "manager:zhao", "dup")
    with pytest.raises(IllegalTransition, match=f"ticket {child} is merged: cannot merge it"):
        lc.merge(child, other, "manager:zhao", "dup")
    with pytest.raises(InvalidTransitionRequest, match="into itself"):
        lc.merge(other, other, "manager:zhao", "dup")
    with pytest.raises(TicketNotFound):
        lc.merge(other, "GD-missing", "manager:zhao", "dup")
    with pytest.raises(InvalidTransitionRequest, match="a reason is required"):
        lc.merge(other, parent, "manager:zhao", " ")
    assert loop.status(other) == S.DISPATCHED


def test_rates_count_response_resolution_and_satisfaction(loop: Loop) -> None:
    lc, clock = loop.lifecycle, loop.clock
    since = clock.now - timedelta(minutes=1)
    quick, slow, silent, _fresh, unhappy, dup = (loop.ticket() for _ in range(6))
    manual = loop.ticket(department=None)
    clock.advance(hours=1)
    for ticket_id in (quick, unhappy):
        lc.accept(ticket_id, "d")
        lc.start(ticket_id, "d")
        lc.resolve(ticket_id, "d", "处理完毕")
    lc.verify(quick, "agent", satisfied=True)
    lc.verify(unhappy, "agent", satisfied=False, reason="没解决")
    lc.merge(dup, quick, "manager", "重复")
    lc.assign(manual, A5, "manager")  # dispatched at +1h to A5, never accepted
    clock.advance(hours=29)
    lc.accept(slow, "d")  # 30 h after dispatch: late
    lc.escalate(silent, "manager", "no answer")
    loop.ticket()  # its create transition carries the real time (about `since`): its window is over too

    figures = rates(loop.store, since, until=clock.now, response_hours=24)
    # dispatches: quick and unhappy accepted in 1 h; slow accepted late; silent, fresh, manual (assigned to A5)
    # and the last one never accepted with their window over; unhappy's reopen went to in_progress (not a
    # dispatch); dup's dispatch ended in a merge and is left out
    assert figures.overall.response.as_dict() == {"numerator": 2, "denominator": 7, "value": 2 / 7}
    # dispatched tickets, merged dup left out: only quick is resolved-or-beyond (unhappy went back)
    assert (figures.overall.resolution.numerator, figures.overall.resolution.denominator) == (1, 7)
    assert (figures.overall.satisfaction.numerator, figures.overall.satisfaction.denominator) == (1, 2)
    assert figures.by_department[A5].response.as_dict() == {"numerator": 0, "denominator": 1, "value": 0.0}
    assert figures.by_department[A3].satisfaction.value == 0.5
    assert set(figures.as_dict()) == {"since", "until", "response_hours", "response", "resolution", "satisfaction",
                                      "by_department"}

    late_window = rates(loop.store, since, until=clock.now, response_hours=48)
    assert late_window.overall.response.numerator == 3  # slow now counts as responded
    assert rates(loop.store, clock.now + timedelta(hours=1)).overall.response.denominator == 0
    assert rates(loop.store, clock.now + timedelta(hours=1)).overall.response.value is None


def test_migration_0003_goes_down_and_up(tmp_path: Path) -> None:
    from alembic import command

    url = f"sqlite:///{tmp_path / 't.sqlite3'}"
    store = TicketStore(url)
    tables = set(inspect(store.engine).get_table_names())
    assert {"ticket_attachments", "api_users", "open311_requests"} <= tables
    command.downgrade(alembic_config(url), "0002")
    store.engine.dispose()
    assert not {"ticket_attachments", "api_users", "open311_requests"} & set(inspect(store.engine).get_table_names())
    command.upgrade(alembic_config(url), "head")
    store.engine.dispose()
    columns = {c["name"] for c in inspect(store.engine).get_columns("tickets")}
    assert {"escalation_level", "escalated_at", "resolution_note", "satisfaction"} <= columns


@pytest.mark.slow
def test_the_loop_on_postgresql(tmp_path: Path) -> None:
    with postgres_server() as url:
        loop = _loop(url, tmp_path / "journal.sqlite3")
        assert {"ticket_attachments", "api_users", "open311_requests"} <= set(
            inspect(loop.store.engine).get_table_names())
        ticket_id = _full_loop(loop)
        assert loop.status(ticket_id) == S.CLOSED
        parent, child = loop.ticket(), loop.ticket()
        loop.lifecycle.merge(child, parent, "manager", "dup")
        results = loop.lifecycle.escalate_overdue(loop.clock.now + timedelta(days=4))
        assert {r.ticket.id for r in results} == {parent}
        loop.bus.close()


def test_concurrent_escalations_on_sqlite_each_see_the_one_before(loop: Loop) -> None:
    """Two threads escalate one ticket (a manager's clicks, the sweep): no level is given twice."""
    lifecycle = Lifecycle(loop.store, None, clock=loop.clock)  # the ticket database only
    ticket_id = loop.ticket()
    errors: list[Exception] = []

    def escalate_often() -> None:
        for _ in range(20):
            try:
                lifecycle.escalate(ticket_id, "manager:zhao", "群众催办")
            except Exception as error:
                errors.append(error)

    threads = [threading.Thread(target=escalate_often) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ticket = loop.store.get(ticket_id)
    assert errors == [] and ticket is not None and ticket.escalation_level == 40
    levels = [(t.details or {}).get("escalation_level") for t in ticket.transitions if t.transition == "escalate"]
    assert levels == list(range(1, 41))


def _crossed_merges(lifecycle: Lifecycle, a: str, b: str) -> list[str]:
    """Merge a into b and b into a at once; what each merge came to."""
    outcomes: list[str] = []

    def merge(child: str, parent: str) -> None:
        try:
            lifecycle.merge(child, parent, "manager:zhao", "同一处垃圾")
            outcomes.append("ok")
        except Exception as error:
            outcomes.append(type(error).__name__)

    threads = [threading.Thread(target=merge, args=pair) for pair in ((a, b), (b, a))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_crossed_merges_on_sqlite_make_no_cycle(loop: Loop) -> None:
    a, b = loop.ticket(), loop.ticket()
    both_read = threading.Barrier(2, timeout=1)

    def wait_for_the_other(*_args: object) -> None:  # both merges have read their tickets when either writes
        with contextlib.suppress(threading.BrokenBarrierError):
            both_read.wait()

    event.listen(Session, "before_flush", wait_for_the_other)
    try:
        outcomes = _crossed_merges(loop.lifecycle, a, b)
    finally:
        event.remove(Session, "before_flush", wait_for_the_other)
    assert outcomes == ["IllegalTransition", "ok"]
    parents = [ticket.parent_ticket_id for ticket in map(loop.store.get, (a, b)) if ticket is not None]
    assert sorted(parents, key=str) in ([a, None], [b, None])


@pytest.mark.slow
def test_crossed_merges_on_postgresql_queue_instead_of_deadlocking(postgres_db: str, tmp_path: Path) -> None:
    loop = _loop(postgres_db, tmp_path / "journal.sqlite3")
    a, b = loop.ticket(), loop.ticket()
    first_locks_taken = threading.Barrier(2, timeout=2)
    local = threading.local()

    def after_first_lock(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FOR UPDATE" in statement and not getattr(local, "locked", False):
            local.locked = True  # each merge holds its first lock(s) until the other has taken its own
            with contextlib.suppress(threading.BrokenBarrierError):
                first_locks_taken.wait()

    event.listen(loop.store.engine, "after_cursor_execute", after_first_lock)
    try:
        outcomes = _crossed_merges(loop.lifecycle, a, b)
    finally:
        event.remove(loop.store.engine, "after_cursor_execute", after_first_lock)
        loop.bus.close()
    assert outcomes == ["IllegalTransition", "ok"]


def test_merging_a_parent_moves_its_duplicates_along(loop: Loop) -> None:
    lc = loop.lifecycle
    first, second, duplicate, target = (loop.ticket() for _ in range(4))
    lc.merge(duplicate, first, "manager:zhao", "同一处垃圾")
    lc.merge(second, first, "manager:zhao", "同一处垃圾")
    result = lc.merge(first, target, "manager:zhao", "同一小区")
    moved = sorted([duplicate, second])
    assert result.transitions[1].details == {"child_ticket_id": first, "moved_children": moved}
    for ticket_id in moved:
        ticket = loop.store.get(ticket_id)
        assert ticket is not None and ticket.parent_ticket_id == target and ticket.status == S.MERGED
        last = ticket.transitions[-1]
        assert (last.transition, last.from_status, last.to_status, last.actor) == (
            "reparent", "merged", "merged", "manager:zhao")
        assert last.details == {"parent_ticket_id": target, "previous_parent_ticket_id": first}
        assert last.reason == f"duplicate of {target}: its parent {first} was merged into it"
    assert [(e.ticket_id, e.transition) for e in loop.events()][-4:] == [
        (first, "merge"), (target, "merge_child"), *((m, "reparent") for m in moved)]
    with loop.store.session() as session:
        assert session.scalars(select(Ticket.id).where(Ticket.parent_ticket_id == first)).all() == []
    assert allowed_actions(S.MERGED) == []


def test_a_reopen_to_dispatch_needs_a_real_department(loop: Loop) -> None:
    lc = loop.lifecycle
    ticket_id = loop.ticket()
    lc.accept(ticket_id, "d", as_department=A3)
    lc.start(ticket_id, "d", as_department=A3)
    lc.resolve(ticket_id, "d", "已处理", as_department=A3)
    for blank in ("", "   "):
        with pytest.raises(InvalidTransitionRequest, match="a department is required"):
            lc.verify(ticket_id, "agent:li", satisfied=False, reason="没修好", reopen_to=S.DISPATCHED,
                      department=blank)
    assert loop.status(ticket_id) == S.RESOLVED
    moved = lc.verify(ticket_id, "agent:li", satisfied=False, reason="没修好", reopen_to=S.DISPATCHED,
                      department=f" {A5} ")
    assert moved.ticket.status == S.DISPATCHED and moved.ticket.department == A5
