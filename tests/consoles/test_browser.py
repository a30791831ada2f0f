"""The consoles in a real browser: the app served by uvicorn on 127.0.0.1, Debian's Chromium driven by Playwright.

Each test clicks through one console's main flow as a person would and leaves a full-page screenshot in
$TMPDIR/console-screens/. Needs the `playwright` package and /usr/bin/chromium (Debian package `chromium`,
`fonts-noto-cjk` for the Chinese glyphs); skipped without them, except under CI where that is a failure.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from api.users import add_user
from classifiers.assist_store import AssistStore
from classifiers.service import TextIntelligence
from consoles.models import DirectAnswer
from contracts import Topic
from dispatch_rules.bundle import RuleBundle
from dispatch_rules.versions import RuleStore
from hotline.pipeline import build_pipeline

from .conftest import (
    SEED_CALLS,
    ConsoleApp,
    LiveServer,
    build_console_app,
    edited_department_table,
    jpeg_snapshot,
    remember_open_ticket,
    seed_tickets,
    start_server,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENS = Path(os.environ.get("TMPDIR") or tempfile.gettempdir()) / "console-screens"
GARBAGE_TITLE = "小区门口垃圾堆积"
GARBAGE = SEED_CALLS[0][4]  # the same complaint as the seeded, still open ticket: a likely duplicate
QUESTION = "请问住房公积金怎么提取？需要带哪些材料去办理？"


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    if not CHROMIUM.exists():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium fonts-noto-cjk)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path, baseline_model_file: Path,
         text_intelligence: TextIntelligence) -> Iterator[LiveServer]:
    made = build_console_app(tmp_path_factory.mktemp("console-live"), migrated_db, baseline_model_file,
                             text_intelligence)
    seed_tickets(made)
    server = start_server(made)
    yield server
    server.stop()
    made.bus.close()


def open_page(browser: Browser, live: LiveServer, user: str, path: str) -> Page:
    """A fresh browser session: ask for the page, get the login form, log in, land on the page."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN")
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(live.url + path)
    assert "/console/login" in page.url
    page.fill("#token", live.made.tokens[user])
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(re.escape(live.url + path) + r"$"))
    return page


def screenshot(page: Page, name: str) -> Path:
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def number(page: Page, selector: str) -> int:
    return int(page.locator(selector).inner_text().strip())


def test_manager_sees_counts_overdue_and_escalated_tickets_rates_hot_spots_and_cameras(
        browser: Browser, live: LiveServer) -> None:
    ids = live.made.seeded
    page = open_page(browser, live, "manager", "/console/manager")
    assert number(page, "[data-testid=total]") == 8
    assert number(page, "[data-testid=overdue]") == 2 and number(page, "[data-testid=escalated]") == 1
    overdue = page.locator("#overdue-list")
    assert overdue.get_by_text(ids["overdue"]).is_visible() and overdue.get_by_text(ids["escalated"]).is_visible()
    escalated_row = page.locator("#escalated-list tbody tr").filter(has_text=ids["escalated"])
    assert "督办 1" in escalated_row.inner_text()
    rates = page.locator("#rates").inner_text()
    assert "解决率" in rates and "满意率" in rates and "直接答复率" in rates and "100.0%" in rates
    assert page.locator("#by-status").get_by_text("已回访").is_visible()
    assert "城乡建设" in page.locator("#hot-spots").inner_text()
    snapshot = page.locator(f"#cameras img[src$='{ids['camera_snapshot']}']")
    assert snapshot.evaluate("img => img.complete && img.naturalWidth") == 320
    assert page.locator("#cameras").get_by_text("无抓拍 no snapshot").is_visible()
    screenshot(page, "manager")

    page.select_option("#district", "A5区")
    page.click(".filter button[type=submit]")
    page.wait_for_url(re.compile(r"district=A5"))
    assert number(page, "[data-testid=overdue]") == 0
    assert page.locator("#latest").get_by_text(ids["resolved"]).is_visible()
    assert page.locator("#latest").get_by_text(ids["overdue"]).count() == 0
    screenshot(page, "manager-district-A5")
    page.context.close()


def test_analyst_views_rules_and_versions_and_backtests_a_version_and_an_uploaded_table(
        browser: Browser, live: LiveServer, tmp_path: Path) -> None:
    edited = edited_department_table("城管", "住建", "hl.cx.sanitation")
    rules = RuleStore(live.made.store.engine)  # an analyst published a change earlier, and it was rolled back
    rules.publish(RuleBundle({**rules.bundle(1).files, "department.json": edited}), author="analyst",
                  note="垃圾清运改由住建 (proposal)")
    rules.rollback(1, actor="manager", note="back to the shipped rules")
    page = open_page(browser, live, "analyst", "/console/analyst")
    assert page.locator("[data-testid=active-version]").inner_text().startswith("v1-")
    assert page.locator("#versions tbody tr").count() == 2
    department = page.locator("#table-department")
    assert department.get_by_text("hl.cx.sanitation", exact=True).is_visible()
    page.click("#table-priority summary")
    assert page.locator("#table-priority tbody tr").count() > 3
    screenshot(page, "analyst-rules")

    page.select_option("#version-id", "2")
    assert page.locator("#mode-version").is_checked()
    page.click("#run-backtest")
    page.locator("#backtest-result").wait_for()
    assert "v2" in page.locator("#backtest-result h2").inner_text()
    assert number(page, "[data-testid=department-changed]") >= 4
    accuracy = page.locator("#accuracy tbody").inner_text()
    assert "100.0%" in accuracy and "0.0%" in accuracy  # the dispatcher-assigned ticket: 城管 right, 住建 wrong

    upload = tmp_path / "department.json"
    upload.write_text(edited, encoding="utf-8")
    page.set_input_files("#upload", str(upload))
    page.wait_for_function("document.getElementById('content').value.length > 1000")
    assert page.locator("#mode-file").is_checked()
    page.click("#run-backtest")
    result = page.locator("#backtest-result")
    result.wait_for()
    assert "department.json" in result.locator("h2").inner_text()
    assert number(page, "[data-testid=department-changed]") >= 4
    loads = page.locator("#loads").inner_text()
    assert "A3区城市管理局" in loads and "A3区住房和城乡建设局" in loads
    changes = page.locator("#changes").inner_text()
    assert "hl.cx.sanitation" in changes and "A3区住房和城乡建设局" in changes
    screenshot(page, "analyst-backtest")
    page.context.close()


def test_agent_assists_a_call_uses_a_suggestion_makes_a_ticket_and_answers_another_directly(
        browser: Browser, live: LiveServer, text_intelligence: TextIntelligence) -> None:
    made: ConsoleApp = live.made
    duplicate_of = made.seeded["overdue"]
    remember_open_ticket(text_intelligence, duplicate_of, GARBAGE, "A3区", "A3区城市管理局", GARBAGE_TITLE)
    page = open_page(browser, live, "agent", "/console/agent")

    # live (stream) mode: the reading follows the typing
    page.check("#stream")
    page.fill("#title", GARBAGE_TITLE)
    page.locator("#text").press_sequentially(GARBAGE, delay=15)
    page.locator("#assist").wait_for()
    page.wait_for_function("document.getElementById('department').textContent.length > 0")
    assert page.locator("#category").inner_text() in text_intelligence.model.labels
    assert page.locator("#place-district").inner_text() == "A3区"
    assert page.locator("#topk li").count() == 3
    department = page.locator("#department").inner_text()
    assert department and page.locator("#rule").inner_text().startswith(("hl.", "-"))
    assert page.locator("#suggestions li.suggestion").count() == 3
    assert page.locator("#similar").get_by_text(duplicate_of).is_visible()
    assert duplicate_of in page.locator("#merge").inner_text()

    first = page.locator("#suggestions li.suggestion").first
    first.get_by_role("button", name="采用").click()
    first.get_by_text("已采用").wait_for()
    case_id = first.get_attribute("data-case")
    assert page.locator("#answer").input_value()
    screenshot(page, "agent-assist")

    page.click("#make-ticket")
    page.locator("#outcome").get_by_text("已提交生成工单").wait_for()
    call_id = re.search(r"来电 ([A-Za-z0-9_.:-]+)", page.locator("#outcome").inner_text())
    assert call_id is not None
    feedback = AssistStore(made.settings.resolved_database_url, migrate=False).feedback(call_id.group(1))
    assert [(f.case_id, f.verdict) for f in feedback] == [(case_id, "used")]

    pipeline = build_pipeline(made.settings, made.store)  # the embedded pipeline makes the ticket
    assert made.bus.run_until_idle(pipeline.stages) > 0
    ticket = made.store.by_source_event(f"call:{call_id.group(1)}")
    assert ticket is not None
    manager = open_page(browser, live, "manager", "/console/manager")
    latest = manager.locator("#latest tbody tr").filter(has_text=ticket.id)
    assert GARBAGE_TITLE in latest.inner_text()
    manager.context.close()

    # a question answered on the phone: no ticket, counted in 直接答复率
    page.uncheck("#stream")
    page.fill("#text", QUESTION)
    page.click("#analyse")
    page.locator("#suggestions li.suggestion").first.wait_for()
    answer = page.locator("#suggestions li.suggestion").first
    answer.get_by_role("button", name="采用").click()
    answer.get_by_text("已采用").wait_for()
    transcripts = made.bus.count(Topic.TRANSCRIPTS)
    page.click("#answer-directly")
    page.locator("#outcome").get_by_text("已记录直接答复").wait_for()
    screenshot(page, "agent-direct-answer")
    assert made.bus.count(Topic.TRANSCRIPTS) == transcripts
    with made.store.session() as session:
        [direct] = session.scalars(select(DirectAnswer)).all()
    assert direct.text == QUESTION and direct.case_id == answer.get_attribute("data-case")
    assert direct.agent == "agent:agent"
    page.reload()
    assert page.locator("text=最近直接答复").is_visible()
    screenshot(page, "agent-after-calls")
    page.context.close()


def test_manager_dispatches_from_the_queue_escalates_and_records_the_callback(
        browser: Browser, tmp_path: Path, migrated_db: Path, baseline_model_file: Path,
        text_intelligence: TextIntelligence) -> None:
    made = build_console_app(tmp_path / "desk", migrated_db, baseline_model_file, text_intelligence)
    ids = seed_tickets(made)  # its own tickets: the shared live server's figures stay as the tests above expect
    server = start_server(made)
    try:
        page = open_page(browser, server, "manager", "/console/manager")
        page.locator("#dispatch-queue").get_by_role("link", name=ids["manual"]).click()
        page.wait_for_url(re.compile(re.escape(f"/console/manager/tickets/{ids['manual']}") + "$"))
        assert page.locator("[data-testid=department]").inner_text().startswith("（待人工派单")
        page.fill("#assign-department", "A3区城市管理局")
        page.fill("#assign-reason", "垃圾清运归城管")
        page.click("[data-testid=do-assign]")
        page.locator("[data-testid=done]").wait_for()
        assert page.locator("[data-testid=department]").inner_text() == "A3区城市管理局"
        assert "垃圾清运归城管" in page.locator("#trail").inner_text()
        page.fill("#escalate-reason", "居民反映多次")
        page.click("[data-testid=do-escalate]")
        page.locator("[data-testid=done]").wait_for()
        assert "督办 1" in page.locator(".page-head").inner_text()
        screenshot(page, "manager-ticket-desk")

        page.goto(f"{server.url}/console/manager/tickets/{ids['resolved']}")
        assert page.locator("#form-verify").count() == 0 and page.locator("#form-close").is_visible()
        page.click("[data-testid=do-close]")
        page.locator("[data-testid=done]").wait_for()
        assert "已结案" in page.locator(".page-head").inner_text()
        page.goto(f"{server.url}/console/manager")
        assert page.locator("#dispatch-queue").get_by_text(ids["manual"]).count() == 0
        page.context.close()

        # the department the manager chose works the ticket: accept, start, resolve with a photo
        made.tokens["city-mgmt"] = add_user(made.store, "city-mgmt", "department", department="A3区城市管理局")[1]
        desk = open_page(browser, server, "city-mgmt", "/console/department")
        desk.locator("#department-queue").get_by_role("link", name=ids["manual"]).click()
        desk.click("[data-testid=do-accept]")
        desk.locator("[data-testid=done]").wait_for()
        desk.click("[data-testid=do-start]")
        desk.locator("[data-testid=done]").wait_for()
        photo = tmp_path / "after.jpg"
        photo.write_bytes(base64.b64decode(jpeg_snapshot()))
        desk.fill("#resolve-note", "已清运，并安排每日巡查")
        desk.set_input_files("#resolve-photo", str(photo))
        desk.wait_for_function("document.getElementById('resolve-photo-data').value.length > 1000")
        desk.click("[data-testid=do-resolve]")
        desk.locator("[data-testid=done]").wait_for()
        assert "已办结" in desk.locator(".page-head").inner_text()
        shown = desk.locator("#ticket-facts img")
        assert shown.evaluate("img => img.complete && img.naturalWidth") == 320
        screenshot(desk, "department-ticket-resolved")
        desk.context.close()
    finally:
        server.stop()
        made.bus.close()
