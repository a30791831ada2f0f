"""The console pages without a browser: log in, role checks, what each page renders, assets, backtests."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from consoles.auth import COOKIE, csrf_token
from consoles.direct_answers import direct_answer_rate
from consoles.models import DirectAnswer
from dispatch_rules.router import DecisionTableRouter

from .conftest import ConsoleApp, _call, edited_department_table, seed_tickets


def login(client: TestClient, token: str, next_page: str = "") -> str:
    r = client.post("/console/login", data={"token": token, "next": next_page}, follow_redirects=False)
    assert r.status_code == 303, r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    return str(r.headers["location"])


def test_log_in_lands_on_the_roles_console_and_pages_check_the_role(console_app: ConsoleApp,
                                                                   client: TestClient) -> None:
    r = client.get("/console/manager", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login?next=%2Fconsole%2Fmanager"
    bad = client.post("/console/login", data={"token": "hl_wrong"})
    assert bad.status_code == 401 and "令牌无效" in bad.text
    assert login(client, console_app.tokens["agent"]) == "/console/agent"
    assert client.get("/console/agent").status_code == 200
    forbidden = client.get("/console/manager")
    assert forbidden.status_code == 403 and "manager" in forbidden.text
    assert client.get("/console/analyst").status_code == 403
    client.post("/console/logout")
    assert login(client, console_app.tokens["analyst"], "/console/analyst?version=1") == "/console/analyst?version=1"
    assert login(client, console_app.tokens["manager"], "https://evil.example/") == "/console/manager"
    for page in ("/console/agent", "/console/manager", "/console/analyst"):
        assert client.get(page).status_code == 200, page


def test_assets_are_served_locally(client: TestClient) -> None:
    for asset, kind in (("console.css", "text/css"), ("agent.js", "javascript"), ("analyst.js", "javascript")):
        r = client.get(f"/static/console/{asset}")
        assert r.status_code == 200 and kind in r.headers["content-type"], asset
    page = client.get("/console/login").text
    assert "http://" not in page and "https://" not in page  # nothing from elsewhere


def test_the_agent_page_carries_the_csrf_token_and_warns_without_models(console_app: ConsoleApp,
                                                                         client: TestClient) -> None:
    login(client, console_app.tokens["agent"])
    page = client.get("/console/agent").text
    assert f'content="{csrf_token(console_app.tokens["agent"])}"' in page
    assert console_app.tokens["agent"] not in page
    assert "hotline setup" not in page
    console_app.app.state.text_intelligence = None
    assert "hotline setup" in client.get("/console/agent").text


def test_the_manager_page_shows_counts_lists_rates_hot_spots_and_snapshots(console_app: ConsoleApp,
                                                                         client: TestClient) -> None:
    ids = seed_tickets(console_app)
    with console_app.store.session() as session, session.begin():
        session.add(DirectAnswer(call_id="d1", answered_at=datetime.now(UTC), agent="agent:x", text="问", answer="答",
                                 district="A3区"))
    login(client, console_app.tokens["manager"])
    page = client.get("/console/manager").text
    assert re.search(r'data-testid="total">8<', page) and re.search(r'data-testid="overdue">2<', page)
    assert re.search(r'data-testid="escalated">1<', page)
    overdue = page.split('id="overdue-list"')[1].split("</table>")[0]
    assert ids["overdue"] in overdue and ids["escalated"] in overdue and ids["open"] not in overdue
    escalated = page.split('id="escalated-list"')[1].split("</table>")[0]
    assert ids["escalated"] in escalated and "督办 1" in escalated
    assert "100.0%" in page.split('id="rates"')[1].split("</section>")[0]  # 解决率 / 满意率 of the callback
    rate = direct_answer_rate(console_app.store, datetime.now(UTC) - timedelta(days=1), datetime.now(UTC))
    assert (rate.direct, rate.ticketed) == (1, 6)
    assert re.search(r'data-testid="direct-rate">14.3%<', page)
    hot = page.split('id="hot-spots"')[1].split("</table>")[0]
    assert "城乡建设" in hot and "A3区" in hot
    assert f'/console/manager/snapshots/{ids["camera_snapshot"]}' in page and "无抓拍" in page
    image = client.get(f"/console/manager/snapshots/{ids['camera_snapshot']}")
    assert image.status_code == 200 and image.content.startswith(b"\xff\xd8") and image.headers["content-type"] == \
        "image/jpeg"
    assert client.get(f"/console/manager/snapshots/{ids['camera_plain']}").status_code == 404
    filtered = client.get("/console/manager", params={"district": "A5区"}).text
    assert re.search(r'data-testid="total">3<', filtered) and ids["overdue"] not in filtered


def test_the_analyst_page_shows_the_rules_and_backtests_an_edited_table(console_app: ConsoleApp,
                                                                      client: TestClient) -> None:
    seed_tickets(console_app)
    login(client, console_app.tokens["analyst"])
    page = client.get("/console/analyst").text
    assert "hl.cx.sanitation" in page and "v1-" in page and 'id="table-direct_answer"' in page
    token = csrf_token(console_app.tokens["analyst"])
    edited = edited_department_table("城管", "住建", "hl.cx.sanitation")
    refused = client.post("/console/analyst/backtest", data={"mode": "file", "file_name": "department.json",
                                                              "content": edited})
    assert refused.status_code == 403  # no CSRF token
    r = client.post("/console/analyst/backtest", data={"csrf": token, "mode": "file", "file_name": "department.json",
                                                       "content": edited})
    assert r.status_code == 200
    result = r.text.split('id="backtest-result"')[1]
    assert re.search(r'data-testid="department-changed">4<', result)  # the four 垃圾 calls in A3区
    accuracy = result.split('id="accuracy"')[1].split("</table>")[0]  # the assigned one: 城管 right, 住建 wrong
    assert "100.0%" in accuracy and "0.0%" in accuracy
    assert "A3区城市管理局" in result and "A3区住房和城乡建设局" in result
    broken = client.post("/console/analyst/backtest", data={"csrf": token, "mode": "file",
                                                            "file_name": "department.json", "content": "{"})
    assert broken.status_code == 200 and 'id="rule-errors"' in broken.text
    same = client.post("/console/analyst/backtest", data={"csrf": token, "mode": "version", "version_id": "1"})
    assert re.search(r'data-testid="department-changed">0<', same.text)


def test_a_revoked_token_in_the_cookie_sends_back_to_log_in(console_app: ConsoleApp, client: TestClient) -> None:
    from api.users import revoke_user

    client.cookies.set(COOKIE, console_app.tokens["manager"])
    assert client.get("/console/manager").status_code == 200
    revoke_user(console_app.store, "manager")
    r = client.get("/console/manager", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")


def test_the_manager_page_groups_repeat_reports_into_hot_issues(console_app: ConsoleApp, client: TestClient) -> None:
    ids = seed_tickets(console_app)
    router = DecisionTableRouter.published(console_app.store.engine)
    repeats = [("A3区", "幸福小区门口垃圾还没清", "A3区幸福路幸福小区门口的垃圾还是没人清运，臭气熏天。"),
               (None, "幸福路垃圾堆积", "幸福小区门口垃圾堆积如山，无人清运，请尽快处理。")]  # names no district
    for n, (district, title, text) in enumerate(repeats, 80):
        console_app.store.create_from_decision(router.route_call(_call(n, "城乡建设", district, title, text)))
    login(client, console_app.tokens["manager"])
    issues = client.get("/console/manager").text.split('id="hot-issues"')[1].split("</table>")[0]
    rows = issues.split("<tr>")[2:]  # after the header
    assert len(rows) == 1, issues  # the other A3区 rubbish tickets are other places: not one issue
    assert ids["overdue"] in rows[0] and "A3区" in rows[0]
    assert re.findall(r'class="num">(\d+)<', rows[0]) == ["3", "3"]  # three reports, all open


def test_the_analyst_page_shows_a_problem_whenever_the_rules_are_rejected(console_app: ConsoleApp,
                                                                         client: TestClient,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from consoles.rules_view import RulesCatalogue
    from dispatch_rules.compiler import RulesValidationError

    login(client, console_app.tokens["analyst"])
    token = csrf_token(console_app.tokens["analyst"])
    empty = client.post("/console/analyst/backtest", data={"csrf": token, "mode": "file",
                                                           "file_name": "taxonomy.yaml", "content": "# nothing yet\n"})
    errors = empty.text.split('id="rule-errors"')[1].split("</table>")[0]
    assert "taxonomy.yaml" in errors and "file is empty" in errors

    def rejected(*_: Any) -> None:
        raise RulesValidationError([])

    monkeypatch.setattr(RulesCatalogue, "backtest_file", rejected)
    silent = client.post("/console/analyst/backtest", data={"csrf": token, "mode": "file",
                                                            "file_name": "department.json", "content": "{}"})
    assert 'role="alert"' in silent.text and "rejected" in silent.text and 'id="backtest-result"' not in silent.text


def test_a_routed_camera_events_snapshot_is_kept_and_shown(console_app: ConsoleApp, client: TestClient) -> None:
    """What consoles/README.md says: the router's decision carries the frame, the store keeps it as an attachment."""
    from contracts import DetectedEvent, EventKind

    from .conftest import jpeg_snapshot

    router = DecisionTableRouter.published(console_app.store.engine)
    event = DetectedEvent(event_id="evt-readme", camera_id="cam-A3-0009", kind=EventKind("exposed_garbage"),
                          state="started", started_at=datetime.now(UTC), observed_at=datetime.now(UTC),
                          confidence=0.9, district="A3区", detector="test", snapshot_jpeg=jpeg_snapshot())
    ticket = console_app.store.create_from_decision(router.route_event(event)).ticket
    login(client, console_app.tokens["manager"])
    page = client.get("/console/manager").text
    assert f"/console/manager/snapshots/{ticket.id}" in page and "无抓拍" not in page
    image = client.get(f"/console/manager/snapshots/{ticket.id}")
    assert image.status_code == 200 and image.content.startswith(b"\xff\xd8")
    assert "抓拍 snapshot" in client.get(f"/console/manager/tickets/{ticket.id}").text
