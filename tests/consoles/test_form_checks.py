"""What the console pages refuse before it reaches the database: oversized forms, NUL characters, over-long
fields, ids no row can have; and where a post made with an expired session leads after logging in again."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import create_app
from api.users import add_user
from consoles.auth import csrf_token
from consoles.pages import MAX_FORM_BYTES, MAX_PHOTO_FORM_BYTES
from hotline.settings import Settings
from streams import EmbeddedBus
from tickets import TicketStore
from tickets.migrate import upgrade_database

from ..postgres_server import postgres_server
from .conftest import SHARED_DIR, ConsoleApp, seed_tickets, start_server
from .test_pages import login

CHUNK = 1 << 20


def _post(client: TestClient, token: str, path: str, **fields: str) -> Any:
    return client.post(path, data={"csrf": csrf_token(token), **fields}, follow_redirects=False)


def _login_post(app: FastAPI, total: int, declare_length: bool) -> tuple[int, int]:
    """POST /console/login (no session) with a `total`-byte body sent in 1 MiB chunks, straight to the ASGI app:
    its status and how many body bytes the app pulled before answering."""
    pulled = 0
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled >= total:
            return {"type": "http.disconnect"}
        pulled += CHUNK
        return {"type": "http.request", "body": b"token=" + b"a" * (CHUNK - 6), "more_body": pulled < total}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    headers = [(b"host", b"console"), (b"content-type", b"application/x-www-form-urlencoded")]
    if declare_length:
        headers.append((b"content-length", str(total).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/console/login", "raw_path": b"/console/login", "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("console", 80), "state": {}}
    asyncio.run(app(scope, receive, send))
    return next(m["status"] for m in sent if m["type"] == "http.response.start"), pulled


# ---- 1. form size -----------------------------------------------------------------------------------------------
def test_an_oversized_login_form_is_refused_without_reading_it_whole(console_app: ConsoleApp) -> None:
    status, pulled = _login_post(console_app.app, 64 * CHUNK, declare_length=True)
    assert (status, pulled) == (413, 0)  # the declared length alone refuses it
    status, pulled = _login_post(console_app.app, 64 * CHUNK, declare_length=False)
    assert status == 413 and pulled <= MAX_FORM_BYTES + CHUNK  # chunked: reading stops past the limit


def test_a_real_server_answers_413_to_a_declared_oversized_login_at_once(console_app: ConsoleApp) -> None:
    server = start_server(console_app)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /console/login HTTP/1.1\r\nHost: console\r\n"
                         b"Content-Type: application/x-www-form-urlencoded\r\n"
                         b"Content-Length: 68719476736\r\n\r\ntoken=a")  # 64 GiB declared, 7 bytes sent
            answer = b""
            while b"</html>" not in answer and (chunk := sock.recv(65536)):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 413") and "2 MB" in answer.decode()
    finally:
        server.stop()


def test_an_oversized_form_answers_413_naming_the_limit_not_a_csrf_failure(console_app: ConsoleApp,
                                                                          client: TestClient) -> None:
    ids = seed_tickets(console_app)
    login(client, console_app.tokens["analyst"])
    big = '{"pad": "' + "x" * MAX_FORM_BYTES + '"}'
    r = _post(client, console_app.tokens["analyst"], "/console/analyst/backtest", mode="file",
              file_name="department.json", content=big)
    assert r.status_code == 413 and "2 MB" in r.text and "CSRF" not in r.text
    assert 'id="backtest-form"' in r.text  # the page itself, with the problem

    department = console_app.store.get(ids["overdue"])
    assert department is not None and department.department
    token = add_user(console_app.store, "wang", "department", department=department.department)[1]
    client.post("/console/logout")
    login(client, token)
    photo = _post(client, token, f"/console/department/tickets/{ids['overdue']}/resolve", note="已清运",
                  photo_base64="A" * MAX_PHOTO_FORM_BYTES)
    assert photo.status_code == 413 and "15 MB" in photo.text and 'data-testid="problem"' in photo.text


# ---- 3. NUL characters and over-long fields (SQLite takes them; PostgreSQL answers 500: see the slow test) ------
def test_nul_characters_and_over_long_fields_are_refused_naming_the_field(console_app: ConsoleApp,
                                                                          client: TestClient) -> None:
    ids = seed_tickets(console_app)
    token = console_app.tokens["manager"]
    login(client, token)
    nul = _post(client, token, f"/console/manager/tickets/{ids['overdue']}/escalate", reason="群众来电\x00")
    assert nul.status_code == 422 and "form field &#39;reason&#39; contains a NUL character" in nul.text
    ticket = console_app.store.get(ids["overdue"])
    assert ticket is not None and ticket.escalation_level == 0
    long = _post(client, token, f"/console/manager/tickets/{ids['manual']}/assign", department="某" * 121)
    assert long.status_code == 422 and "form field &#39;department&#39; is longer than 120 characters" in long.text
    parent = _post(client, token, f"/console/manager/tickets/{ids['assigned']}/merge",
                   parent_ticket_id="G" * 41, reason="重复")
    assert parent.status_code == 422 and "parent_ticket_id" in parent.text
    district = client.get("/console/manager", params={"district": "A3区\x00"})
    assert district.status_code == 422 and "&#39;district&#39; 含有 NUL" in district.text
    assert client.get("/console/manager", params={"district": "区" * 65}).status_code == 422
    assert client.get("/console/manager/tickets/GD%00").status_code == 404
    assert client.get("/console/manager/tickets/" + "G" * 41).status_code == 404
    assert client.get("/console/manager/snapshots/GD%00").status_code == 404
    refused_login = client.post("/console/login", data={"token": "hl_\x00"})
    assert refused_login.status_code == 422 and "NUL" in refused_login.text


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.mark.slow
def test_on_postgresql_nul_and_over_long_input_answers_422_or_404_not_500(postgres_url: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="console-pg-"))
    settings = Settings(data_dir=folder, shared_dir=SHARED_DIR, database_url=postgres_url)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(postgres_url)
    store = TicketStore(postgres_url, migrate=False)
    bus = EmbeddedBus(settings.journal_path, settings.max_message_bytes)
    made = ConsoleApp(create_app(settings, store=store, transport=bus, text_intelligence=None), settings, store, bus)
    token = made.tokens["manager"] = add_user(store, "manager", "manager")[1]
    try:
        ids = seed_tickets(made)
        with TestClient(made.app, raise_server_exceptions=False) as client:
            login(client, token)
            long = _post(client, token, f"/console/manager/tickets/{ids['manual']}/assign", department="某" * 121)
            assert long.status_code == 422 and "department" in long.text
            nul = _post(client, token, f"/console/manager/tickets/{ids['overdue']}/escalate", reason="群众来电\x00")
            assert nul.status_code == 422 and "reason" in nul.text
            assert client.get("/console/manager", params={"district": "A3\x00"}).status_code == 422
            assert client.get("/console/manager/tickets/GD%00").status_code == 404
            assert _post(client, token, "/console/manager/tickets/GD%00/escalate", reason="x").status_code == 404
            assert client.get(f"/console/manager/tickets/{ids['resolved']}/attachments/1").status_code == 404
            assert client.get("/console/manager/snapshots/GD%00").status_code == 404
    finally:
        bus.close()
        store.engine.dispose()


# ---- 4. ids no row can have ---------------------------------------------------------------------------------------
def test_out_of_range_ids_answer_404_or_422_not_500(console_app: ConsoleApp, client: TestClient) -> None:
    ids = seed_tickets(console_app)
    login(client, console_app.tokens["manager"])
    for attachment_id in (9 * 10**20, 2**63, 0, -1):
        r = client.get(f"/console/manager/tickets/{ids['resolved']}/attachments/{attachment_id}")
        assert r.status_code == 404, attachment_id
    token = console_app.tokens["manager"]
    for version_id in (str(9 * 10**20), "0", "-5", "abc", ""):
        r = _post(client, token, "/console/analyst/backtest", mode="version", version_id=version_id)
        assert r.status_code == 422 and "version_id must be a rule version number" in r.text, version_id
    unknown = _post(client, token, "/console/analyst/backtest", mode="version", version_id=str(2**63 - 1))
    assert unknown.status_code == 200 and "no rule version" in unknown.text


# ---- 5. a post after the session expired ---------------------------------------------------------------------
def test_a_post_with_an_expired_session_leads_back_to_the_form_page(console_app: ConsoleApp,
                                                                   client: TestClient) -> None:
    ids = seed_tickets(console_app)
    forms = {f"/console/manager/tickets/{ids['manual']}/assign": f"/console/manager/tickets/{ids['manual']}",
             f"/console/department/tickets/{ids['open']}/accept": f"/console/department/tickets/{ids['open']}",
             "/console/analyst/backtest": "/console/analyst"}
    for path, page in forms.items():
        r = client.post(path, data={"department": "A3区城市管理局", "csrf": "x"}, follow_redirects=False)
        assert r.status_code == 303, path
        next_page = unquote(r.headers["location"].split("next=", 1)[1])
        assert next_page == page
    landed = login(client, console_app.tokens["manager"], f"/console/manager/tickets/{ids['manual']}")
    after = client.get(landed)
    assert after.status_code == 200 and 'id="form-assign"' in after.text

