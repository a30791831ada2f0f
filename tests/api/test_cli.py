"""The command-line pieces the `hotline` CLI wires: users add/list/revoke/rotate and the overdue sweep."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from api.cli import escalate_overdue, users_add, users_app
from api.users import authenticate
from contracts import DispatchDecision, Priority, Source, TicketEvent, Topic
from hotline.pipeline import open_embedded_bus, open_store
from hotline.settings import Settings, get_settings

from .conftest import A3


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def test_users_commands(settings: Settings) -> None:
    runner = CliRunner()
    added = runner.invoke(users_app, ["add", "wang", "--role", "department", "--department", A3])
    assert added.exit_code == 0, added.output
    token = added.output.strip()
    principal = authenticate(open_store(settings), token)
    assert principal is not None and principal.department == A3
    refused = runner.invoke(users_app, ["add", "li", "--role", "department"])
    assert refused.exit_code != 0 and "needs --department" in refused.output
    listed = runner.invoke(users_app, ["list"])
    assert "wang" in listed.output and token not in listed.output
    rotated = runner.invoke(users_app, ["rotate", "wang"])
    assert rotated.exit_code == 0 and authenticate(open_store(settings), token) is None
    assert runner.invoke(users_app, ["revoke", "wang"]).exit_code == 0
    assert runner.invoke(users_app, ["revoke", "wang"]).exit_code != 0
    with pytest.raises(typer.BadParameter, match="unknown role"):
        users_add(settings, "x", "mayor")
    too_long = runner.invoke(users_app, ["add", "w" * 110, "--role", "department", "--department", A3])
    assert too_long.exit_code != 0 and "name and department too long" in too_long.output


def test_overdue_sweep_function(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True)
    store = open_store(settings)
    decision = DispatchDecision(
        decision_id="d1", source=Source.HOTLINE, source_event_id="call:old", decided_at=datetime.now(UTC) - timedelta(
            hours=80), title="旧件", description="逾期未办", department=A3, priority=Priority.NORMAL, deadline_hours=72,
        rule_id="t", rules_version="test")
    ticket_id = store.create_from_decision(decision).ticket.id
    assert escalate_overdue(settings) == [(ticket_id, 1)]
    assert escalate_overdue(settings) == []
    bus = open_embedded_bus(settings)
    try:
        [event] = [TicketEvent.model_validate_json(r.value) for r in bus.records(Topic.TICKETS)]
    finally:
        bus.close()
    assert event.transition == "escalate" and event.ticket_id == ticket_id


def test_relay_events_publishes_what_a_crash_left_in_the_outbox(settings: Settings) -> None:
    from api.cli import relay_events_command
    from tickets.lifecycle import Lifecycle

    settings.data_dir.mkdir(parents=True)
    store = open_store(settings)
    decision = DispatchDecision(
        decision_id="d2", source=Source.HOTLINE, source_event_id="call:crash", decided_at=datetime.now(UTC),
        title="井盖缺失", description="路口井盖缺失", department=A3, priority=Priority.HIGH, deadline_hours=24,
        rule_id="t", rules_version="test")
    ticket_id = store.create_from_decision(decision).ticket.id
    Lifecycle(store, None).accept(ticket_id, "department:wang@" + A3)  # committed, never published
    app = typer.Typer()  # the command alone: hotline's own callback would point the logs at the runner's stdout
    app.command("relay-events")(relay_events_command)
    app.command("unused")(lambda: None)
    result = CliRunner().invoke(app, ["relay-events"])
    assert result.exit_code == 0, result.output
    assert "published 1 ticket event(s); 0 pending" in result.output
    bus = open_embedded_bus(settings)
    try:
        [event] = [TicketEvent.model_validate_json(r.value) for r in bus.records(Topic.TICKETS)]
    finally:
        bus.close()
    assert (event.ticket_id, event.transition) == (ticket_id, "accept")
