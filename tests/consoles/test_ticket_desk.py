"""The manager's ticket desk without a browser: the dispatch queue, one ticket's page and the actions on it."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from consoles.auth import csrf_token
from consoles.ticket_desk import department_choices
from dispatch_rules.router import DecisionTableRouter
from dispatch_rules.versions import RuleStore
from tickets.models import TicketStatus

from .conftest import ConsoleApp, _call, seed_tickets
from .test_pages import login


def _post_as(client: TestClient, token: str, desk: str, ticket_id: str, action: str, **fields: str) -> Any:
    """Post a desk form with the session's CSRF token, the way the page does."""
    data = {"csrf": csrf_token(token), **fields}
    return client.post(f"/console/{desk}/tickets/{ticket_id}/{action}", data=data, follow_redirects=False)


def _post(client: TestClient, made: ConsoleApp, ticket_id: str, action: str, **fields: str) -> Any:
    return _post_as(client, made.tokens["manager"], "manager", ticket_id, action, **fields)


def test_the_dispatch_queue_lists_manual_and_returned_tickets_and_links_each_ticket(console_app: ConsoleApp,
                                                                                    client: TestClient) -> None:
    ids = seed_tickets(console_app)
    console_app.app.state.context.lifecycle.return_ticket(ids["open"], "department:seed", "不属于本单位职责")
    login(client, console_app.tokens["manager"])
    page = client.get("/console/manager").text
    queue = page.split('id="dispatch-queue"')[1].split("</table>")[0]
    assert ids["manual"] in queue and ids["open"] in queue and ids["assigned"] not in queue
    assert 'data-testid="queue-count">2<' in page
    assert f'href="/console/manager/tickets/{ids["manual"]}"' in queue


def test_a_manager_dispatches_a_manual_ticket_and_the_trail_records_it(console_app: ConsoleApp,
                                                                      client: TestClient) -> None:
    ids = seed_tickets(console_app)
    login(client, console_app.tokens["manager"])
    page = client.get(f"/console/manager/tickets/{ids['manual']}").text
    assert 'id="form-assign"' in page and 'id="form-escalate"' in page and 'id="form-close"' not in page
    assert '<option value="A3区城市管理局">' in page  # the directory's bodies of the ticket's district
    assert 'data-testid="description">A3区花园小区垃圾清运不及时' in page

    no_csrf = client.post(f"/console/manager/tickets/{ids['manual']}/assign", data={"department": "A3区城市管理局"})
    assert no_csrf.status_code == 403
    missing = _post(client, console_app, ids["manual"], "assign", department=" ")
    assert missing.status_code == 422 and "a department is required" in missing.text

    done = _post(client, console_app, ids["manual"], "assign", department="A3区城市管理局", reason="垃圾清运归城管")
    assert done.status_code == 303
    ticket = console_app.store.get(ids["manual"])
    assert ticket is not None and ticket.status == TicketStatus.DISPATCHED.value
    assert ticket.department == "A3区城市管理局"
    after = client.get(done.headers["location"]).text
    assert 'data-testid="done">已完成 Done: 派单 Dispatch' in after
    trail = after.split('id="trail"')[1]
    assert "assign" in trail and "manager:manager" in trail and "垃圾清运归城管" in trail

    again = _post(client, console_app, ids["manual"], "assign", department="A3区城市管理局")
    assert again.status_code == 409 and "cannot assign" in again.text


def test_escalate_merge_and_the_callback_run_from_the_desk(console_app: ConsoleApp, client: TestClient) -> None:
    ids = seed_tickets(console_app)
    login(client, console_app.tokens["manager"])
    no_reason = _post(client, console_app, ids["overdue"], "escalate")
    assert no_reason.status_code == 422 and "a reason is required" in no_reason.text
    assert _post(client, console_app, ids["overdue"], "escalate", reason="超期未办").status_code == 303
    overdue = console_app.store.get(ids["overdue"])
    assert overdue is not None and overdue.escalation_level == 1

    page = client.get(f"/console/manager/tickets/{ids['assigned']}").text
    merge_form = page.split('id="form-merge"')[1].split("</form>")[0]
    assert ids["overdue"] in merge_form  # same district and category, still open: a likely parent
    merged = _post(client, console_app, ids["assigned"], "merge", parent_ticket_id=ids["overdue"], reason="同一处垃圾")
    assert merged.status_code == 303
    child = console_app.store.get(ids["assigned"])
    assert child is not None and child.status == TicketStatus.MERGED.value and child.parent_ticket_id == ids["overdue"]
    parent_page = client.get(f"/console/manager/tickets/{ids['overdue']}").text
    assert f'href="/console/manager/tickets/{ids["assigned"]}"' in parent_page

    # the seeded "resolved" ticket was verified already; resolve the accepted one and record an unhappy callback
    lifecycle = console_app.app.state.context.lifecycle
    lifecycle.start(ids["open"], "department:seed")
    lifecycle.resolve(ids["open"], "department:seed", "已协调支付")
    unhappy = _post(client, console_app, ids["open"], "verify", satisfied="no")
    assert unhappy.status_code == 422 and "why not satisfied" in unhappy.text
    reopened = _post(client, console_app, ids["open"], "verify", satisfied="no", reason="工资仍未到账")
    assert reopened.status_code == 303
    ticket = console_app.store.get(ids["open"])
    assert ticket is not None and ticket.status == TicketStatus.IN_PROGRESS.value
    assert ticket.satisfaction == "unsatisfied"

    assert _post(client, console_app, ids["resolved"], "close").status_code == 303
    closed = console_app.store.get(ids["resolved"])
    assert closed is not None and closed.status == TicketStatus.CLOSED.value
    unknown = _post(client, console_app, ids["resolved"], "explode")
    assert unknown.status_code == 422 and "unknown action" in unknown.text
    assert client.get("/console/manager/tickets/HL-NOPE").status_code == 404


def test_the_desk_is_for_managers_and_offers_the_directory_of_the_tickets_place(console_app: ConsoleApp,
                                                                               client: TestClient) -> None:
    ids = seed_tickets(console_app)
    login(client, console_app.tokens["agent"])
    assert client.get(f"/console/manager/tickets/{ids['manual']}").status_code == 403
    directory = RuleStore(console_app.store.engine).compiled(1).directory
    choices = department_choices(directory, "A3区")
    assert "A3区城市管理局" in choices and all(c.startswith(("A3区", "A市")) for c in choices)
    assert department_choices(None, "A3区") == []


def test_a_department_works_its_queue_accepts_returns_and_resolves_with_a_photo(console_app: ConsoleApp,
                                                                               client: TestClient) -> None:
    import base64

    from api.users import add_user

    from .conftest import jpeg_snapshot

    ids = seed_tickets(console_app)
    ticket = console_app.store.get(ids["overdue"])
    assert ticket is not None and ticket.department
    department = ticket.department
    token = add_user(console_app.store, "wang", "department", department=department)[1]
    login(client, token)
    page = client.get("/console/department").text
    queue = page.split('id="department-queue"')[1].split("</table>")[0]
    assert ids["overdue"] in queue and ids["escalated"] in queue and ids["open"] not in queue  # another dept's
    assert queue.index(ids["escalated"]) < queue.index(ids["overdue"])  # 督办 first
    assert client.get("/console/manager").status_code == 403
    assert client.get(f"/console/department/tickets/{ids['open']}").status_code == 404  # not theirs

    def post(ticket_id: str, action: str, **fields: str) -> Any:
        return _post_as(client, token, "department", ticket_id, action, **fields)

    assert post(ids["open"], "accept").status_code == 404
    assert post(ids["overdue"], "assign", department="x").status_code == 422  # a manager's action
    no_reason = post(ids["escalated"], "return")
    assert no_reason.status_code == 422 and "退单理由" in no_reason.text
    assert post(ids["escalated"], "return", reason="路灯归路灯管理所").status_code == 303
    returned = console_app.store.get(ids["escalated"])
    assert returned is not None and returned.status == TicketStatus.RETURNED.value

    assert post(ids["overdue"], "accept").status_code == 303
    assert post(ids["overdue"], "start").status_code == 303
    page = client.get(f"/console/department/tickets/{ids['overdue']}").text
    assert 'id="form-resolve"' in page and 'id="form-accept"' not in page and "ticket.js" in page
    bad_photo = post(ids["overdue"], "resolve", note="已清运", photo_base64="not base64!")
    assert bad_photo.status_code == 422 and "base64" in bad_photo.text
    png_named_jpeg = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
    wrong_type = post(ids["overdue"], "resolve", note="已清运", photo_base64=png_named_jpeg,
                      photo_content_type="image/jpeg")
    assert wrong_type.status_code == 422 and "image/png, not image/jpeg" in wrong_type.text
    resolved = post(ids["overdue"], "resolve", note="已清运并消毒", photo_base64=jpeg_snapshot(),
                    photo_content_type="image/jpeg")
    assert resolved.status_code == 303
    after = client.get(resolved.headers["location"]).text
    assert "已清运并消毒" in after and "办结照片" in after
    photo = after.split(f'/console/department/tickets/{ids["overdue"]}/attachments/')[1].split('"')[0]
    image = client.get(f"/console/department/tickets/{ids['overdue']}/attachments/{photo}")
    assert image.status_code == 200 and image.content.startswith(b"\xff\xd8")
    done = client.get("/console/department").text.split('id="department-done"')[1]
    assert ids["overdue"] in done


def test_the_merge_list_puts_the_ticket_reporting_the_same_place_first_whatever_its_category(
        console_app: ConsoleApp, client: TestClient) -> None:
    ids = seed_tickets(console_app)
    router = DecisionTableRouter.published(console_app.store.engine)
    again = router.route_call(_call(90, "环境保护", "A3区", "幸福小区门口垃圾还是没人清运",  # classified otherwise
                                    "A3区幸福路幸福小区门口的垃圾堆了一个星期了，一直没人清运，臭气熏天。"))
    repeat = console_app.store.create_from_decision(again).ticket.id
    login(client, console_app.tokens["manager"])
    merge_form = client.get(f"/console/manager/tickets/{repeat}").text.split('id="form-merge"')[1].split("</form>")[0]
    options = merge_form.split("<option")[1:]
    assert ids["overdue"] in options[0] and "data-likely-duplicate" in options[0]
    assert sum("data-likely-duplicate" in option for option in options) == 1  # other A3区 rubbish: listed, not flagged
    assert ids["resolved"] not in merge_form and ids["open"] not in merge_form  # A5区 tickets are not candidates


def test_a_department_outside_the_directory_is_refused_naming_the_closest(console_app: ConsoleApp,
                                                                          client: TestClient) -> None:
    ids = seed_tickets(console_app)
    login(client, console_app.tokens["manager"])
    typo = _post(client, console_app, ids["manual"], "assign", department="A3区城管局", reason="垃圾清运")
    assert typo.status_code == 422
    problem = typo.text.split('data-testid="problem">')[1].split("</p>")[0]
    assert "A3区城管局" in problem and "not a department" in problem and "closest: A3区城市管理局" in problem
    assert 'value="A3区城管局"' in typo.text  # the form is shown again as typed
    ticket = console_app.store.get(ids["manual"])
    assert ticket is not None and ticket.status == TicketStatus.PENDING_MANUAL.value and ticket.department is None

    lifecycle = console_app.app.state.context.lifecycle
    lifecycle.return_ticket(ids["open"], "department:seed", "不属于本单位职责")
    assert _post(client, console_app, ids["open"], "reassign", department="火星区水务局",
                 reason="改派").status_code == 422
    assert _post(client, console_app, ids["open"], "reassign", department="A5区水务局",
                 reason="改派").status_code == 303

    lifecycle.accept(ids["open"], "department:seed")
    lifecycle.start(ids["open"], "department:seed")
    lifecycle.resolve(ids["open"], "department:seed", "已处理")
    reopen = _post(client, console_app, ids["open"], "verify", satisfied="no", reason="没修好", department="A5区水物局")
    assert reopen.status_code == 422 and "closest: A5区水务局" in reopen.text
    assert 'value="no" checked' in reopen.text  # the answer is kept for the corrected post
    ticket = console_app.store.get(ids["open"])
    assert ticket is not None and ticket.status == TicketStatus.RESOLVED.value
    assert _post(client, console_app, ids["open"], "verify", satisfied="no", reason="没修好",
                 department="A5区住房和城乡建设局").status_code == 303
    ticket = console_app.store.get(ids["open"])
    assert ticket is not None and ticket.department == "A5区住房和城乡建设局"
