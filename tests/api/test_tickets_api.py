"""The ticket API: each role's work, role isolation, clear errors, audit trail and events."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.exc import DataError, OperationalError

from api.users import UserError, add_user, authenticate, list_users, revoke_user, rotate_token
from contracts import DispatchDecision, Priority, Source
from hotline.settings import REPO_ROOT, Settings
from tickets import TicketStore
from tickets.lifecycle import Lifecycle
from tickets.models import Ticket, TicketTransition, column_length

from ..postgres_server import postgres_server
from .conftest import A3, A5, Api

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
ACTOR_LENGTH = column_length(TicketTransition.__table__.c.actor)


def test_a_department_works_its_queue_through_to_a_verified_closed_ticket(api: Api) -> None:
    c = api.client
    mine, later, other = api.ticket(), api.ticket(deadline_hours=120), api.ticket(department=A5)
    queue = c.get("/api/queue", headers=api.auth("a3")).json()
    assert [t["id"] for t in queue["items"]] == [mine, later] and queue["total"] == 2  # soonest deadline first
    assert queue["items"][0]["allowed_actions"] == ["accept", "return", "reassign", "escalate", "merge"]

    r = c.post(f"/api/tickets/{mine}/accept", headers=api.auth("a3"))
    assert r.status_code == 200, r.text
    assert r.json()["ticket"]["status"] == "accepted"
    assert r.json()["transitions"][0]["actor"] == f"department:a3@{A3}"
    r = c.post(f"/api/tickets/{mine}/start", headers=api.auth("a3"), json={"reason": "已联系市民"})
    assert r.status_code == 200
    r = c.post(f"/api/tickets/{mine}/resolve", headers=api.auth("a3"), json={
        "note": "已清运垃圾", "photo_base64": base64.b64encode(JPEG).decode(), "photo_content_type": "image/jpeg"})
    assert r.status_code == 200, r.text
    assert r.json()["ticket"]["resolution_note"] == "已清运垃圾"

    detail = c.get(f"/api/tickets/{mine}", headers=api.auth("a3")).json()
    assert [(t["transition"], t["to_status"]) for t in detail["transitions"]] == [
        ("create", "dispatched"), ("accept", "accepted"), ("start", "in_progress"), ("resolve", "resolved")]
    assert detail["transitions"][2]["reason"] == "已联系市民"
    [photo] = detail["attachments"]
    assert photo["size"] == len(JPEG) and photo["content_type"] == "image/jpeg"
    got = c.get(photo["url"], headers=api.auth("manager"))
    assert got.status_code == 200 and got.content == JPEG and got.headers["content-type"] == "image/jpeg"
    assert c.get(photo["url"], headers=api.auth("a5")).status_code == 404

    r = c.post(f"/api/tickets/{mine}/verify", headers=api.auth("agent"), json={"satisfied": True})
    assert r.status_code == 200 and r.json()["ticket"]["satisfaction"] == "satisfied"
    r = c.post(f"/api/tickets/{mine}/close", headers=api.auth("agent"))
    assert r.status_code == 200 and r.json()["ticket"]["status"] == "closed"
    assert r.json()["ticket"]["allowed_actions"] == []

    assert [(e.transition, e.status) for e in api.events(mine)] == [
        ("accept", "accepted"), ("start", "in_progress"), ("resolve", "resolved"), ("verify", "verified"),
        ("close", "closed")]
    assert api.events(other) == []
    assert [t["id"] for t in c.get("/api/queue", headers=api.auth("a3")).json()["items"]] == [later]


def test_return_reassign_and_manual_dispatch_by_a_manager(api: Api) -> None:
    c = api.client
    ticket = api.ticket()
    r = c.post(f"/api/tickets/{ticket}/return", headers=api.auth("a3"), json={"reason": "  "})
    assert r.status_code == 422
    assert r.json()["detail"] == f"cannot return ticket {ticket}: a reason is required"
    assert c.post(f"/api/tickets/{ticket}/return", headers=api.auth("a3"), json={}).status_code == 422
    r = c.post(f"/api/tickets/{ticket}/return", headers=api.auth("a3"), json={"reason": "属住建职责"})
    assert r.status_code == 200 and r.json()["ticket"]["status"] == "returned"
    r = c.post(f"/api/tickets/{ticket}/reassign", headers=api.auth("manager"),
               json={"department": A5, "reason": "改派住建"})
    assert r.status_code == 200 and r.json()["ticket"]["department"] == A5
    assert c.get(f"/api/tickets/{ticket}", headers=api.auth("a3")).status_code == 404  # no longer A3's
    assert c.post(f"/api/tickets/{ticket}/accept", headers=api.auth("a5")).status_code == 200

    pending = api.ticket(department=None)
    listed = c.get("/api/tickets", params={"status": "pending_manual"}, headers=api.auth("manager")).json()
    assert [t["id"] for t in listed["items"]] == [pending]
    r = c.post(f"/api/tickets/{pending}/assign", headers=api.auth("manager"), json={"department": A3})
    assert r.status_code == 200 and r.json()["ticket"]["status"] == "dispatched"
    assert r.json()["transitions"][0]["reason"] == f"manual dispatch to {A3}"
    assert r.json()["transitions"][0]["actor"] == "manager:manager"
    assert [e.transition for e in api.events()] == ["return", "reassign", "accept", "assign"]


def test_illegal_transitions_answer_409_naming_ticket_status_and_action(api: Api) -> None:
    ticket = api.ticket()
    r = api.client.post(f"/api/tickets/{ticket}/start", headers=api.auth("a3"))
    assert r.status_code == 409
    body = r.json()
    assert body["detail"] == f"ticket {ticket} is dispatched: cannot start it (start is allowed from: accepted)"
    assert (body["ticket_id"], body["status"], body["action"]) == (ticket, "dispatched", "start")
    r = api.client.post(f"/api/tickets/{ticket}/close", headers=api.auth("agent"))
    assert r.status_code == 409 and "cannot close it" in r.json()["detail"]
    r = api.client.post(f"/api/tickets/{ticket}/assign", headers=api.auth("manager"), json={"department": A5})
    assert r.status_code == 409 and "is dispatched: cannot assign it" in r.json()["detail"]
    r = api.client.post("/api/tickets/GD-none/escalate", headers=api.auth("manager"), json={"reason": "x"})
    assert r.status_code == 404 and r.json()["detail"] == "ticket GD-none not found"
    r = api.client.post(f"/api/tickets/{ticket}/resolve", headers=api.auth("a3"), json={"note": "x", "bogus": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "bogus"]  # FastAPI's own shape
    assert api.events() == []


def test_role_isolation(api: Api) -> None:
    c = api.client
    a3_ticket, a5_ticket = api.ticket(), api.ticket(department=A5)
    # a department sees and touches only its own department's tickets
    assert c.get(f"/api/tickets/{a5_ticket}", headers=api.auth("a3")).status_code == 404
    for action in ("accept", "start"):
        r = c.post(f"/api/tickets/{a5_ticket}/{action}", headers=api.auth("a3"))
        assert r.status_code == 404 and r.json()["detail"] == f"ticket {a5_ticket} not found"
    assert c.post(f"/api/tickets/{a5_ticket}/return", headers=api.auth("a3"), json={"reason": "x"}).status_code == 404
    search = c.get("/api/tickets", headers=api.auth("a3")).json()
    assert [t["id"] for t in search["items"]] == [a3_ticket]
    r = c.get("/api/tickets", params={"department": A5}, headers=api.auth("a3"))
    assert r.status_code == 403 and A3 in r.json()["detail"]
    # roles
    forbidden = [
        ("a3", "post", f"/api/tickets/{a3_ticket}/escalate", {"reason": "x"}),
        ("a3", "post", f"/api/tickets/{a3_ticket}/reassign", {"department": A5, "reason": "x"}),
        ("a3", "post", f"/api/tickets/{a3_ticket}/verify", {"satisfied": True}),
        ("a3", "get", "/api/rates", None),
        ("agent", "post", f"/api/tickets/{a3_ticket}/accept", None),
        ("agent", "post", f"/api/tickets/{a3_ticket}/merge", {"parent_ticket_id": a5_ticket, "reason": "x"}),
        ("analyst", "post", f"/api/tickets/{a3_ticket}/verify", {"satisfied": True}),
        ("analyst", "post", "/api/escalations/sweep", None),
        ("manager", "post", f"/api/tickets/{a3_ticket}/accept", None),
        ("manager", "get", "/api/queue", None),
    ]
    for user, method, path, body in forbidden:
        r = c.request(method.upper(), path, headers=api.auth(user), json=body)
        assert r.status_code == 403, (user, path, r.text)
        assert r.json()["detail"].startswith("this needs the role"), r.json()
    assert c.get("/api/tickets").status_code == 401
    r = c.get("/api/tickets", headers={"Authorization": "Bearer hl_wrong"})
    assert r.status_code == 401 and r.json() == {"detail": "invalid or revoked token"}
    assert c.get("/api/me", headers=api.auth("a5")).json() == {
        "name": "a5", "role": "department", "department": A5, "actor": f"department:a5@{A5}"}
    assert api.events() == []


def test_manager_search_escalate_merge_and_sweep(api: Api) -> None:
    c = api.client
    late = api.ticket(deadline_hours=24, title="噪声扰民")
    parent, dup = api.ticket(title="路灯不亮"), api.ticket(title="路灯不亮")
    other = api.ticket(department=A5, district="A5区", deadline_hours=120)
    m = api.auth("manager")

    assert {t["id"] for t in c.get("/api/tickets", params={"q": "路灯"}, headers=m).json()["items"]} == {parent, dup}
    assert [t["id"] for t in c.get("/api/tickets", params={"district": "A5区"}, headers=m).json()["items"]] == [other]
    page = c.get("/api/tickets", params={"department": A3, "limit": 2}, headers=m).json()
    assert page["total"] == 3 and len(page["items"]) == 2

    r = c.post(f"/api/tickets/{dup}/merge", headers=m, json={"parent_ticket_id": parent, "reason": "同一路灯"})
    assert r.status_code == 200
    assert r.json()["ticket"]["status"] == "merged" and r.json()["ticket"]["parent_ticket_id"] == parent
    assert [t["transition"] for t in r.json()["transitions"]] == ["merge", "merge_child"]
    assert c.get(f"/api/tickets/{parent}", headers=m).json()["merged_children"] == [dup]
    r = c.post(f"/api/tickets/{parent}/merge", headers=m, json={"parent_ticket_id": parent, "reason": "x"})
    assert r.status_code == 422 and "into itself" in r.json()["detail"]

    api.clock.advance(hours=25)
    assert [t["id"] for t in c.get("/api/tickets", params={"overdue": True}, headers=m).json()["items"]] == [late]
    swept = c.post("/api/escalations/sweep", headers=m).json()
    assert [(e["ticket_id"], e["escalation_level"]) for e in swept["escalated"]] == [(late, 1)]
    assert c.post("/api/escalations/sweep", headers=m).json()["escalated"] == []
    r = c.post(f"/api/tickets/{late}/escalate", headers=m, json={"reason": "市民多次来电"})
    assert r.status_code == 200 and r.json()["ticket"]["escalation_level"] == 2
    assert r.json()["transitions"][0]["reason"] == "督办 level 2: 市民多次来电"
    escalated = c.get("/api/tickets", params={"min_escalation": 1}, headers=m).json()["items"]
    assert [(t["id"], t["escalation_level"], t["overdue"]) for t in escalated] == [(late, 2, True)]
    queue = c.get("/api/queue", headers=api.auth("a3")).json()["items"]
    assert queue[0]["id"] == late  # escalated first
    assert [(e.ticket_id, e.transition) for e in api.events()] == [
        (dup, "merge"), (parent, "merge_child"), (late, "escalate"), (late, "escalate")]


def test_callbacks_and_rates(api: Api) -> None:
    c = api.client
    happy, unhappy = api.ticket(), api.ticket()
    api.clock.advance(hours=1)
    for ticket in (happy, unhappy):
        for action, body in (("accept", None), ("start", None), ("resolve", {"note": "已处理"})):
            assert c.post(f"/api/tickets/{ticket}/{action}", headers=api.auth("a3"), json=body).status_code == 200
    r = c.post(f"/api/tickets/{happy}/verify", headers=api.auth("agent"), json={"satisfied": True})
    assert r.status_code == 200
    r = c.post(f"/api/tickets/{unhappy}/verify", headers=api.auth("agent"), json={"satisfied": False})
    assert r.status_code == 422 and "not satisfied" in r.json()["detail"]
    r = c.post(f"/api/tickets/{unhappy}/verify", headers=api.auth("manager"), json={
        "satisfied": False, "reason": "仍有垃圾", "reopen_to": "dispatched", "department": A5})
    assert r.status_code == 200 and r.json()["ticket"]["status"] == "dispatched"
    assert r.json()["ticket"]["department"] == A5 and r.json()["ticket"]["satisfaction"] == "unsatisfied"

    since = (api.clock.now - timedelta(hours=2)).isoformat()
    figures = c.get("/api/rates", params={"since": since, "response_hours": 24}, headers=api.auth("analyst"))
    assert figures.status_code == 200, figures.text
    body = figures.json()
    assert body["response"] == {"numerator": 2, "denominator": 2, "value": 1.0}  # the reopen's window is open
    assert body["resolution"] == {"numerator": 1, "denominator": 2, "value": 0.5}
    assert body["satisfaction"] == {"numerator": 1, "denominator": 2, "value": 0.5}
    assert body["by_department"][A3]["satisfaction"] == body["satisfaction"]  # A3 resolved both
    assert body["by_department"][A5]["satisfaction"]["denominator"] == 0
    assert c.get("/api/rates", headers=api.auth("manager")).status_code == 200


def test_openapi_and_local_docs(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    assert {"/api/tickets", "/api/queue", "/api/tickets/{ticket_id}/resolve", "/api/rates",
            "/open311/v2/services.{fmt}", "/open311/v2/requests.{fmt}"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    form = schema["paths"]["/open311/v2/requests.{fmt}"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in form
    docs = api.client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    assert "/docs/assets/swagger-ui-bundle.js" in docs.text
    bundle = api.client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    assert api.client.get("/redoc").status_code == 404
    assert api.client.get("/healthz").json() == {"status": "ok"}


def test_users_and_tokens(api: Api, tmp_path: Path) -> None:
    store = api.store
    with pytest.raises(UserError, match="needs --department"):
        add_user(store, "x", "department")
    with pytest.raises(UserError, match="only department users"):
        add_user(store, "x", "manager", A3)
    with pytest.raises(UserError, match="unknown role"):
        add_user(store, "x", "mayor")
    with pytest.raises(UserError, match="exists already"):
        add_user(store, "a3", "department", A3)
    principal, token = add_user(store, "zhang", "analyst")
    assert token.startswith("hl_") and len(token) > 40
    assert authenticate(store, token) == principal
    assert all(token not in (u.token_hash, u.name) for u in list_users(store))
    new_token = rotate_token(store, "zhang")
    assert authenticate(store, token) is None and authenticate(store, new_token) == principal
    assert revoke_user(store, "zhang") and not revoke_user(store, "zhang")
    assert authenticate(store, new_token) is None
    assert api.client.get("/api/me", headers={"Authorization": f"Bearer {new_token}"}).status_code == 401
    assert "zhang" not in {u.name for u in list_users(store)}


def test_the_api_escalates_overdue_tickets_by_itself(make_api: Callable[..., Api], tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "sweeping", shared_dir=REPO_ROOT.parent / "shared",
                        escalation_sweep_seconds=0.1)
    api = make_api(settings)
    late, on_time = api.ticket(deadline_hours=24), api.ticket(deadline_hours=72)
    api.clock.advance(hours=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ticket = api.store.get(late)
        if ticket is not None and ticket.escalation_level:
            break
        time.sleep(0.05)
    ticket, other = api.store.get(late), api.store.get(on_time)
    assert ticket is not None and ticket.escalation_level == 1
    assert other is not None and other.escalation_level == 0
    assert [e.transition for e in api.events(late)] == ["escalate"]  # relayed once, not once per sweep


def test_the_outbox_relay_loop_outlives_a_failure(make_api: Callable[..., Api], tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "relaying", shared_dir=REPO_ROOT.parent / "shared",
                        outbox_relay_seconds=0.05, escalation_sweep_seconds=0)
    api = make_api(settings)
    relay = api.client.app.state.context.lifecycle.relay  # type: ignore[attr-defined]
    real_prune, prunes = relay.prune, []

    def prune_once_failing() -> int:
        prunes.append(1)
        if len(prunes) == 1:
            raise OperationalError("DELETE FROM ticket_outbox", {}, Exception("database is locked"))
        return int(real_prune())

    relay.prune = prune_once_failing
    _wait_for(lambda: len(prunes) >= 1)
    ticket_id = api.ticket()
    Lifecycle(api.store, None).accept(ticket_id, f"department:wang@{A3}")  # committed; its event left to the loop
    _wait_for(lambda: relay.pending() == 0)
    assert [e.transition for e in api.events(ticket_id)] == ["accept"] and len(prunes) > 1


def _wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_new_call_ids_carry_the_city_date(api: Api) -> None:
    api.clock.now = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # 07:30 on 2 March in the city
    r = api.client.post("/api/calls", headers=api.auth("agent"), json={"text": "小区门口垃圾堆积多日，请尽快清运。"})
    assert r.status_code == 200 and r.json()["call_id"].startswith("call-20260302-")


def test_a_reopen_to_dispatch_without_a_department_name_is_refused(api: Api) -> None:
    ticket_id = api.ticket()
    for action, body in (("accept", None), ("start", None), ("resolve", {"note": "已清运"})):
        r = api.client.post(f"/api/tickets/{ticket_id}/{action}", headers=api.auth("a3"), json=body)
        assert r.status_code == 200, r.text
    r = api.client.post(f"/api/tickets/{ticket_id}/verify", headers=api.auth("agent"), json={
        "satisfied": False, "reason": "没修好", "reopen_to": "dispatched", "department": "   "})
    assert r.status_code == 422 and "a department is required" in r.json()["detail"]


def _resolved(api: Api) -> str:
    ticket_id = api.ticket()
    for action, body in (("accept", None), ("start", None), ("resolve", {"note": "已清运"})):
        r = api.client.post(f"/api/tickets/{ticket_id}/{action}", headers=api.auth("a3"), json=body)
        assert r.status_code == 200, r.text
    return ticket_id


def test_a_department_outside_the_active_rules_directory_is_refused_naming_the_closest(api: Api) -> None:
    c, m = api.client, api.auth("manager")
    pending = api.ticket(department=None)
    r = c.post(f"/api/tickets/{pending}/assign", headers=m, json={"department": "A3区城管局"})
    assert r.status_code == 422, r.text
    body = r.json()
    assert (body["ticket_id"], body["action"]) == (pending, "assign")
    assert "'A3区城管局' is not a department" in body["detail"] and "closest: A3区城市管理局" in body["detail"]

    returned = api.ticket()
    r = c.post(f"/api/tickets/{returned}/return", headers=api.auth("a3"), json={"reason": "非本单位"})
    assert r.status_code == 200
    r = c.post(f"/api/tickets/{returned}/reassign", headers=m, json={"department": "A5区住建局", "reason": "改派"})
    assert r.status_code == 422 and "closest: A5区住房和城乡建设局" in r.json()["detail"]

    resolved = _resolved(api)
    r = c.post(f"/api/tickets/{resolved}/verify", headers=api.auth("agent"), json={
        "satisfied": False, "reason": "仍积水", "reopen_to": "dispatched", "department": "A5区水务"})
    assert r.status_code == 422 and r.json()["action"] == "reopen" and "closest: A5区水务局" in r.json()["detail"]

    departments = [c.get(f"/api/tickets/{t}", headers=m).json()["department"] for t in (pending, returned, resolved)]
    assert departments == [None, A3, A3]
    assert [e.transition for e in api.events()] == ["return", "accept", "start", "resolve"]
    r = c.post(f"/api/tickets/{pending}/assign", headers=m, json={"department": " A5区水务局 "})
    assert r.status_code == 200 and r.json()["ticket"]["department"] == "A5区水务局"


def test_a_user_whose_audit_name_outgrows_the_audit_columns_is_refused(api: Api) -> None:
    long_name = "w" * (ACTOR_LENGTH - len(f"department:@{A3}") + 1)
    refused = rf"^name and department too long: .* keeps at most {ACTOR_LENGTH}; shorten .* by 1$"
    with pytest.raises(UserError, match=refused):
        add_user(api.store, long_name, "department", A3)
    with pytest.raises(UserError, match=r"^name too long"):
        add_user(api.store, "m" * 120, "manager")
    principal, _token = add_user(api.store, long_name[1:], "department", A3)
    assert len(principal.actor) == ACTOR_LENGTH
    assert long_name[1:] in {u.name for u in list_users(api.store)}


@pytest.mark.slow
def test_on_postgresql_the_longest_audit_name_accepted_can_act() -> None:
    with postgres_server() as url:
        store = TicketStore(url)
        try:
            principal, _token = add_user(store, "w" * (ACTOR_LENGTH - len(f"department:@{A3}")), "department", A3)
            decision = DispatchDecision(
                decision_id="d1", source=Source.HOTLINE, source_event_id="call:c1", decided_at=datetime.now(UTC),
                title="垃圾堆积", description="小区门口垃圾堆积", category="城乡建设", district="A3区",
                department=A3, priority=Priority.NORMAL, deadline_hours=72, rule_id="t", rules_version="test")
            ticket_id = store.create_from_decision(decision).ticket.id
            lifecycle = Lifecycle(store, None)
            with pytest.raises(DataError):  # why a longer name is refused: no action of its user could be recorded
                lifecycle.accept(ticket_id, principal.actor + "w", as_department=A3)
            accepted = lifecycle.accept(ticket_id, principal.actor, as_department=A3)
            assert accepted.transitions[0].actor == principal.actor
        finally:
            store.engine.dispose()


def test_zone_less_search_and_rates_times_are_the_city_s(api: Api) -> None:
    c, m = api.client, api.auth("manager")
    api.clock.now = datetime(2026, 3, 1, 17, 0, tzinfo=UTC)  # 01:00 on 2 March in the city
    ticket_id = _resolved(api)
    r = c.post(f"/api/tickets/{ticket_id}/verify", headers=api.auth("agent"), json={"satisfied": True})
    assert r.status_code == 200
    with api.store.session() as session, session.begin():
        session.execute(update(Ticket).where(Ticket.id == ticket_id).values(created_at=api.clock.now))

    def found(**params: str) -> list[str]:
        r = c.get("/api/tickets", params=params, headers=m)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["items"]]

    assert found(created_from="2026-03-02T00:00:00", created_to="2026-03-02T02:00:00") == [ticket_id]
    assert found(created_from="2026-03-02T02:00:00") == []
    assert found(created_to="2026-03-02T00:30:00") == []
    assert found(created_from="2026-03-01T16:00:00Z", created_to="2026-03-01T17:00:01+00:00") == [ticket_id]
    rates = c.get("/api/rates", params={"since": "2026-03-02T00:00:00", "until": "2026-03-02T02:00:00"}, headers=m)
    assert rates.status_code == 200 and rates.json()["satisfaction"]["denominator"] == 1, rates.text
    assert rates.json()["since"].startswith("2026-03-01T16:00:00")

    schema = c.get("/openapi.json").json()
    for path, name in (("/api/tickets", "created_from"), ("/api/tickets", "created_to"), ("/api/rates", "since"),
                       ("/api/rates", "until")):
        [parameter] = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == name]
        assert "without a zone is the city's time (Asia/Shanghai)" in parameter["description"], (path, name)
