"""The assist API: live assist with the routing preview, feedback, and ending a call (ticket or direct answer)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

from classifiers.assist_store import AssistStore
from consoles.auth import COOKIE, CSRF_HEADER, csrf_token
from consoles.models import DirectAnswer
from contracts import HotlineTranscript, Topic
from dispatch_rules.router import DecisionTableRouter
from tickets.migrate import alembic_config, upgrade_database
from tickets.store import make_engine

from .conftest import ConsoleApp

GARBAGE = "A3区幸福路幸福小区门口垃圾堆积多日无人清运，臭气熏天，请尽快处理。"


def test_assist_answers_the_models_reading_and_what_the_active_rules_would_do(
        console_app: ConsoleApp, client: TestClient) -> None:
    r = client.post("/api/assist", json={"text": GARBAGE, "title": "垃圾堆积"}, headers=console_app.auth("agent"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["category"] and 0.5 <= body["confidence"] <= 1
    assert len(body["top_k"]) == 3 and body["district"] == "A3区"
    assert len(body["suggestions"]) == 3 and all(s["reply"] for s in body["suggestions"])
    preview = body["dispatch_preview"]
    assert preview["rules_version"].startswith("v1-")
    if body["category"] == "城乡建设":
        assert preview["department"] == "A3区城市管理局" and preview["rule_id"] == "hl.cx.sanitation"
    assert preview["priority"] in ("urgent", "high", "normal", "low") and preview["deadline_hours"] > 0
    assert console_app.bus.count(Topic.TRANSCRIPTS) == 0  # assisting stores and publishes nothing


def test_assist_needs_the_text_models_and_an_agent_or_manager(console_app: ConsoleApp, client: TestClient) -> None:
    assert client.post("/api/assist", json={"text": GARBAGE}).status_code == 401
    r = client.post("/api/assist", json={"text": GARBAGE}, headers=console_app.auth("analyst"))
    assert r.status_code == 403 and "agent, manager" in r.json()["detail"]
    assert client.post("/api/assist", json={"text": ""}, headers=console_app.auth("agent")).status_code == 422
    console_app.app.state.text_intelligence = None
    r = client.post("/api/assist", json={"text": GARBAGE}, headers=console_app.auth("manager"))
    assert r.status_code == 503 and "hotline setup" in r.json()["detail"]


def test_feedback_is_stored_with_the_agent(console_app: ConsoleApp, client: TestClient) -> None:
    body = {"call_id": "live-abc", "case_id": "2549", "verdict": "used"}
    r = client.post("/api/assist/feedback", json=body, headers=console_app.auth("agent"))
    assert r.status_code == 200 and r.json()["recorded"]
    bad = client.post("/api/assist/feedback", json=body | {"verdict": "maybe"}, headers=console_app.auth("agent"))
    assert bad.status_code == 422
    stored = AssistStore(console_app.settings.resolved_database_url, migrate=False).feedback("live-abc")
    assert [(f.case_id, f.verdict, f.agent) for f in stored] == [("2549", "used", "agent:agent")]


def test_feedback_on_a_case_not_in_the_knowledge_base_is_refused(console_app: ConsoleApp,
                                                                 client: TestClient) -> None:
    body = {"call_id": "live-abc", "case_id": "no-such-case", "verdict": "used"}
    r = client.post("/api/assist/feedback", json=body, headers=console_app.auth("agent"))
    assert r.status_code == 422 and "'no-such-case'" in r.json()["detail"]
    assert AssistStore(console_app.settings.resolved_database_url, migrate=False).feedback("live-abc") == []


def test_a_feedback_note_is_kept_masked(console_app: ConsoleApp, client: TestClient) -> None:
    body = {"call_id": "live-note", "case_id": "2549", "verdict": "wrong", "note": "来电人13812345678说答复不对"}
    assert client.post("/api/assist/feedback", json=body, headers=console_app.auth("agent")).status_code == 200
    [stored] = AssistStore(console_app.settings.resolved_database_url, migrate=False).feedback("live-note")
    assert stored.note == "来电人138****5678说答复不对"


def test_a_call_for_a_ticket_goes_on_the_transcripts_topic_masked(console_app: ConsoleApp, client: TestClient) -> None:
    r = client.post("/api/calls", headers=console_app.auth("agent"), json={
        "text": GARBAGE + "我的电话13812345678", "title": "垃圾堆积", "caller_phone": "13812345678",
        "answered_directly": False})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "submitted" and out["source_event_id"] == f"call:{out['call_id']}"
    [record] = list(console_app.bus.records(Topic.TRANSCRIPTS))
    published = HotlineTranscript.model_validate_json(record.value)
    assert published.call_id == out["call_id"] and "13812345678" not in published.text
    assert published.caller_phone != "13812345678"


def test_a_call_id_already_ticketed_with_another_text_is_refused_not_dropped(console_app: ConsoleApp,
                                                                            client: TestClient) -> None:
    call = {"text": GARBAGE + "我的电话13812345678", "call_id": "live-reused", "answered_directly": False}
    assert client.post("/api/calls", headers=console_app.auth("agent"), json=call).status_code == 200
    _ticket_as_the_pipeline_would(console_app)
    [ticket] = console_app.store.list(source="hotline")

    retry = client.post("/api/calls", headers=console_app.auth("agent"), json=call)
    assert retry.status_code == 200 and retry.json()["status"] == "submitted"  # the same call again: idempotent
    other = client.post("/api/calls", headers=console_app.auth("agent"),
                        json=call | {"text": "A5区和平路路灯不亮已经一周了，晚上出行很危险。"})
    assert other.status_code == 409, other.text
    assert other.json()["detail"].startswith(f"call live-reused is already ticket {ticket.id} with another text")
    assert console_app.bus.count(Topic.TRANSCRIPTS) == 2  # the other text was not published


def _ticket_as_the_pipeline_would(console_app: ConsoleApp) -> None:
    """Classify, route and ticket the published calls, as the classify, dispatch and ticketing stages do."""
    intelligence = console_app.app.state.text_intelligence
    routing = DecisionTableRouter.published(console_app.store.engine)
    for record in console_app.bus.records(Topic.TRANSCRIPTS):
        call = intelligence.classify(HotlineTranscript.model_validate_json(record.value))
        console_app.store.create_from_decision(routing.route_call(call))


def test_a_directly_answered_call_is_recorded_and_makes_no_ticket(console_app: ConsoleApp,
                                                                  client: TestClient) -> None:
    call = {"text": "请问公积金提取需要什么材料？我的身份证号110101199003071234", "answered_directly": True,
            "call_id": "live-direct1", "answer": "请携带身份证到公积金中心办理。", "case_id": "2549"}
    assert client.post("/api/calls", headers=console_app.auth("agent"),
                       json=call | {"answer": " "}).status_code == 422  # an answer is required
    r = client.post("/api/calls", headers=console_app.auth("agent"), json=call)
    assert r.status_code == 200, r.text
    assert r.json() == {"call_id": "live-direct1", "answered_directly": True, "status": "answered_directly",
                        "source_event_id": None}
    assert console_app.bus.count(Topic.TRANSCRIPTS) == 0
    with console_app.store.session() as session:
        [row] = session.scalars(select(DirectAnswer)).all()
    assert row.agent == "agent:agent" and row.case_id == "2549" and row.answer.startswith("请携带")
    assert "110101199003071234" not in row.text  # masked as the transcript masks it
    again = client.post("/api/calls", headers=console_app.auth("agent"), json=call)
    assert again.status_code == 409


def test_the_console_cookie_works_for_the_api_only_with_the_pages_csrf_token(
        console_app: ConsoleApp, client: TestClient) -> None:
    token = console_app.tokens["agent"]
    client.cookies.set(COOKIE, token)
    call = {"text": GARBAGE, "answered_directly": False}
    r = client.post("/api/calls", json=call)
    assert r.status_code == 403 and CSRF_HEADER in r.json()["detail"]
    assert client.post("/api/calls", json=call, headers={CSRF_HEADER: "nope"}).status_code == 403
    assert client.post("/api/calls", json=call, headers={CSRF_HEADER: csrf_token(token)}).status_code == 200


def test_migration_0005_adds_and_removes_the_direct_answers_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tickets.sqlite3'}"
    upgrade_database(url, "0005")
    engine = make_engine(url)
    assert "direct_answers" in inspect(engine).get_table_names()
    command.downgrade(alembic_config(url), "0004")
    assert "direct_answers" not in inspect(engine).get_table_names()
    engine.dispose()
