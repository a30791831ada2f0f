"""The command-line pieces the `hotline` CLI wires: users add/list/revoke/rotate and the overdue sweep."""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from api.cli import REDACTED, escalate_overdue, serve, users_add, users_app
from api.users import authenticate
from contracts import DispatchDecision, Priority, Source, TicketEvent, Topic
from hotline.pipeline import open_embedded_bus, open_store
from hotline.settings import Settings

from .conftest import A3


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


def test_a_revoked_users_name_is_explained_and_rotate_brings_the_user_back(settings: Settings) -> None:
    runner = CliRunner()
    token = runner.invoke(users_app, ["add", " zhao ", "--role", "manager"]).output.strip()
    assert runner.invoke(users_app, ["revoke", " zhao "]).exit_code == 0
    assert authenticate(open_store(settings), token) is None
    again = runner.invoke(users_app, ["add", "zhao", "--role", "manager"])
    assert again.exit_code != 0 and "was revoked" in again.output and "hotline users rotate zhao" in again.output
    rotated = runner.invoke(users_app, ["rotate", "zhao "])
    assert rotated.exit_code == 0, rotated.output
    principal = authenticate(open_store(settings), rotated.output.strip())
    assert principal is not None and (principal.name, principal.role) == ("zhao", "manager")
    assert "zhao" in runner.invoke(users_app, ["list"]).output
    taken = runner.invoke(users_app, ["add", "zhao", "--role", "agent"])
    assert taken.exit_code != 0 and "exists already" in taken.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_access_log_keeps_request_lines_but_not_tokens(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    import uvicorn

    token = users_add(settings, "open311-intake", "agent")
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def run_in_background(app: Any, host: str, port: int, log_config: Any) -> None:
        """What `hotline api` runs, in a thread so the test can send it a request."""
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=log_config))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)

    monkeypatch.setattr(uvicorn, "run", run_in_background)
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    port = _free_port()
    serve(settings, port=port)
    [(server, thread)] = servers
    try:
        base = f"http://127.0.0.1:{port}/open311/v2/requests.json"
        assert httpx.get(f"{base}?api_key={token}&status=open").status_code == 200
        assert httpx.get(f"{base}?token={token}").status_code in (401, 403)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert len(lines) == 2 and all("GET /open311/v2/requests.json?" in line for line in lines)
    assert all(token not in line and token[3:20] not in line for line in lines)
    assert f"?api_key={REDACTED}&status=open" in lines[0] and f"?token={REDACTED}" in lines[1]
