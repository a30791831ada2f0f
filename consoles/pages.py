"""The web consoles: server-rendered pages (Jinja2) for call-centre agents, managers and analysts.

/console/login      paste a token (from `hotline users add`); it is kept in an HttpOnly SameSite=Strict cookie
/console/agent      agent, manager: live assist, suggested answers, answer directly or make a ticket
/console/manager    manager: tickets by status and department, overdue / escalated, rates, hot spots, cameras
/console/manager/tickets/{id}   manager: one ticket, its trail and photos; dispatch, reassign, escalate, merge,
                    record the callback, close
/console/department                department: its queue (escalated first, soonest deadline) and latest handled
/console/department/tickets/{id}   department: accept, return (退单), start, resolve with note and photo
/console/analyst    analyst, manager: the routing rules, their versions, backtests with the diff
/static/console/…   the CSS and the one small script, served by the app (no CDN)
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from api.context import ApiContext
from api.users import Principal, Role, authenticate
from classifiers.knowledge import lexical_similarity, load_knowledge_base
from classifiers.lexical import LexicalSimilarity
from consoles import auth
from consoles.dashboard import build_dashboard, snapshot
from consoles.direct_answers import recent_direct_answers
from consoles.rules_view import RulesCatalogue, table_views
from consoles.ticket_desk import (
    ACTION_LABELS,
    DEPARTMENT_DESK,
    MANAGER_DESK,
    Desk,
    DeskFormError,
    act,
    department_queue,
    desk_view,
)
from contracts import CITY_TZ
from dispatch_rules.backtest import BacktestResult
from dispatch_rules.bundle import TABLE_NAMES
from dispatch_rules.compiler import RuleError, RulesValidationError
from dispatch_rules.directory import Directory
from dispatch_rules.versions import RuleStoreError
from tickets.lifecycle import Action, IllegalTransition, InvalidTransitionRequest, TicketNotFound, attachment
from tickets.models import Ticket, column_length

if TYPE_CHECKING:
    from classifiers.service import TextIntelligence

HERE = Path(__file__).parent
STATIC_URL = "/static/console"
MAX_FORM_BYTES = 2 * 1024 * 1024
MAX_PHOTO_FORM_BYTES = 15 * 1024 * 1024  # a resolution photo (≤ 10 MB) travels base64-encoded in the form
MAX_ROW_ID = 2**63 - 1  # the largest integer id a database column holds; a larger one overflows the driver
TICKET_ID_LENGTH = column_length(Ticket.__table__.c.id)
DISTRICT_LENGTH = column_length(Ticket.__table__.c.district)

STATUS_LABELS = {
    "pending_manual": "待人工派单", "dispatched": "已派单", "accepted": "已签收", "returned": "已退单",
    "in_progress": "办理中", "resolved": "已办结", "verified": "已回访", "closed": "已结案", "merged": "已合并",
}
PRIORITY_LABELS = {"urgent": "紧急", "high": "较急", "normal": "一般", "low": "低"}
KIND_LABELS = {  # camera event kinds (数字化城管), shown with the code the tickets carry
    "exposed_garbage": "暴露垃圾", "overflowing_bin": "垃圾满溢", "illegal_parking": "违章停车",
    "road_damage": "道路破损", "street_vendor": "占道经营", "fire_smoke": "烟火", "flooding": "路面积水",
}

console_router = APIRouter(include_in_schema=False)
console_router.mount(STATIC_URL, StaticFiles(directory=HERE / "static"), name="console-static")
templates = Jinja2Templates(directory=HERE / "templates")


def _local(moment: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    if moment is None:
        return "-"
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return aware.astimezone(CITY_TZ).strftime(fmt)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


templates.env.filters.update(local=_local, pct=_pct, status_label=lambda s: STATUS_LABELS.get(s, s),
                             priority_label=lambda p: PRIORITY_LABELS.get(p, p),
                             kind_label=lambda k: f"{KIND_LABELS[k]} {k}" if k in KIND_LABELS else k)
templates.env.globals.update(static=STATIC_URL, STATUS_LABELS=STATUS_LABELS, PRIORITY_LABELS=PRIORITY_LABELS)


# ---- helpers ----------------------------------------------------------------------------------------------------
def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


def _page_user(request: Request, roles: tuple[Role, ...], form_page: str | None = None) -> Principal | Response:
    """The logged-in user when their role may see the page; else the login page or a 403 page. A form's post
    names `form_page`, the page holding the form: that is where logging in again leads."""
    token = auth.session_token(request)
    principal = authenticate(_context(request).store, token) if token else None
    if principal is None:
        response: Response = auth.login_redirect(request, form_page)
        if token:
            auth.clear_session(response)
        return response
    if principal.role not in roles:
        return _render(request, "forbidden.html", principal, status_code=status.HTTP_403_FORBIDDEN,
                       needed=auth.role_names(roles))
    return principal


def _render(request: Request, name: str, principal: Principal | None, status_code: int = 200,
            **values: Any) -> HTMLResponse:
    token = auth.session_token(request)
    values.update(user=principal, csrf=auth.csrf_token(token) if token and principal else "",
                  nav=_nav(principal), path=request.url.path)
    response = templates.TemplateResponse(request, name, values, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        "frame-ancestors 'none'")
    return response


def _nav(principal: Principal | None) -> list[tuple[str, str]]:
    if principal is None:
        return []
    links = [("/console/agent", "坐席 Agent", auth.AGENT_ROLES), ("/console/manager", "管理 Manager",
                                                                   auth.MANAGER_ROLES),
             ("/console/analyst", "规则分析 Analyst", auth.ANALYST_ROLES),
             ("/console/department", "承办 Department", auth.DEPARTMENT_ROLES)]
    return [(href, label) for href, label, roles in links if principal.role in roles]


class FormRefused(Exception):
    """A form the console does not take: larger than its limit (413) or carrying a NUL character (422)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


async def _form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """An urlencoded form (the consoles post no files: a table or a photo is read into a text field)."""
    raw = await _body(request, limit)
    parsed = parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
    form = {key: values[-1] for key, values in parsed.items()}
    for key, value in form.items():
        if "\x00" in key or "\x00" in value:  # PostgreSQL text cannot hold NUL: refuse it here, naming the field
            name = key.replace("\x00", "")
            raise FormRefused(status.HTTP_422_UNPROCESSABLE_CONTENT,
                              f"表单字段 '{name}' 含有 NUL 字符 (form field '{name}' contains a NUL character)")
    return form


async def _body(request: Request, limit: int) -> bytes:
    """The body, read chunk by chunk: whoever posts (logged in or not) cannot make the server hold more."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> FormRefused:
    megabytes = f"{limit / (1024 * 1024):g} MB"
    return FormRefused(status.HTTP_413_CONTENT_TOO_LARGE,
                       f"表单超过 {megabytes} 上限 (the form is larger than the {megabytes} limit, {limit} bytes)")


def _lexical(request: Request) -> LexicalSimilarity:
    """The assist stage's repeat-report score when the text models are loaded; else the same, built here."""
    state = request.app.state
    intelligence: TextIntelligence | None = getattr(state, "text_intelligence", None)
    if intelligence is not None:
        return intelligence.assistant.lexical
    found: LexicalSimilarity | None = getattr(state, "console_lexical", None)
    if found is None:
        knowledge_base = _context(request).settings.hotline_data_dir / "kb_replies.csv"
        found = lexical_similarity(load_knowledge_base(knowledge_base) if knowledge_base.exists() else [])
        state.console_lexical = found
    return found


def _catalogue(request: Request) -> RulesCatalogue:
    state = request.app.state
    found: RulesCatalogue | None = getattr(state, "console_rules_catalogue", None)
    if found is None:
        found = RulesCatalogue(_context(request).store)
        state.console_rules_catalogue = found
    return found


def _active_directory(request: Request) -> Directory:
    catalogue = _catalogue(request)
    return catalogue.compiled(catalogue.active_id()).directory


def _ticket_id_ok(ticket_id: str) -> bool:
    """Whether a ticket could have this id; one with a NUL or too long is not looked up (PostgreSQL refuses NUL)."""
    return _text_problem("ticket id", ticket_id, TICKET_ID_LENGTH) is None


def _text_problem(name: str, value: str, length: int) -> str | None:
    if "\x00" in value:
        return f"'{name}' 含有 NUL 字符 (contains a NUL character)"
    if len(value) > length:
        return f"'{name}' 超过 {length} 个字符 (is longer than {length} characters)"
    return None


# ---- log in / out ---------------------------------------------------------------------------------------------
@console_router.get("/console")
def console_home(request: Request) -> Response:
    token = auth.session_token(request)
    principal = authenticate(_context(request).store, token) if token else None
    target = auth.HOME.get(principal.role) if principal else None
    return RedirectResponse(target or "/console/login", status_code=status.HTTP_303_SEE_OTHER)


@console_router.get("/console/login")
def login_page(request: Request, next: str | None = None) -> Response:
    return _render(request, "login.html", None, next=auth.safe_next(next) or "", error=None)


@console_router.post("/console/login")
async def login(request: Request) -> Response:
    try:
        form = await _form(request)
    except FormRefused as refused:
        return _render(request, "login.html", None, status_code=refused.status_code, next="", error=str(refused))
    token = form.get("token", "").strip()
    target = auth.safe_next(form.get("next"))
    principal = await run_in_threadpool(authenticate, _context(request).store, token) if token else None
    error = None
    if principal is None:
        error = "令牌无效或已吊销 (invalid or revoked token)"
    elif principal.role not in auth.HOME:
        error = f"{principal.role.value} 用户没有控制台 (this role has no console)"
    if error or principal is None:
        return _render(request, "login.html", None, status_code=status.HTTP_401_UNAUTHORIZED,
                       next=target or "", error=error)
    response = RedirectResponse(target or auth.HOME[principal.role], status_code=status.HTTP_303_SEE_OTHER)
    auth.set_session(response, token, secure=request.url.scheme == "https")
    return response


@console_router.post("/console/logout")
def logout() -> Response:
    response = RedirectResponse("/console/login", status_code=status.HTTP_303_SEE_OTHER)
    auth.clear_session(response)
    return response


# ---- agent -----------------------------------------------------------------------------------------------------
@console_router.get("/console/agent")
def agent_page(request: Request) -> Response:
    principal = _page_user(request, auth.AGENT_ROLES)
    if isinstance(principal, Response):
        return principal
    ready = getattr(request.app.state, "text_intelligence", None) is not None
    answered = recent_direct_answers(_context(request).store, limit=5)
    return _render(request, "agent.html", principal, models_ready=ready, recent_answers=answered)


# ---- manager ---------------------------------------------------------------------------------------------------
@console_router.get("/console/manager")
def manager_page(request: Request, district: str | None = None) -> Response:
    principal = _page_user(request, auth.MANAGER_ROLES)
    if isinstance(principal, Response):
        return principal
    context = _context(request)
    problem = _text_problem("district", district or "", DISTRICT_LENGTH)
    board = build_dashboard(context.store, context.clock(), _lexical(request),
                            context.settings.assist.duplicate_min_score, None if problem else district or None)
    return _render(request, "manager.html", principal, board=board, problem=problem,
                   status_code=status.HTTP_422_UNPROCESSABLE_CONTENT if problem else status.HTTP_200_OK)


@console_router.get("/console/manager/snapshots/{ticket_id}")
def camera_snapshot(request: Request, ticket_id: str) -> Response:
    principal = _page_user(request, auth.MANAGER_ROLES)
    if isinstance(principal, Response):
        return principal
    found = snapshot(_context(request).store, ticket_id) if _ticket_id_ok(ticket_id) else None
    if found is None:
        return Response("no snapshot", status_code=status.HTTP_404_NOT_FOUND, media_type="text/plain")
    data, content_type = found
    return Response(data, media_type=content_type, headers={"Cache-Control": "private, max-age=3600"})


# ---- department (承办单位) -----------------------------------------------------------------------------------
@console_router.get("/console/department")
def department_page(request: Request) -> Response:
    principal = _page_user(request, auth.DEPARTMENT_ROLES)
    if isinstance(principal, Response):
        return principal
    queue, done = department_queue(_context(request).store, principal.department or "")
    return _render(request, "department.html", principal, queue=queue, done=done, now=_context(request).clock())


# ---- the ticket desks ---------------------------------------------------------------------------------------
def _desk_page(request: Request, desk: Desk, roles: tuple[Role, ...], ticket_id: str, done: str | None) -> Response:
    principal = _page_user(request, roles)
    if isinstance(principal, Response):
        return principal
    return _ticket_desk(request, principal, desk, ticket_id, done=done)


async def _desk_action(request: Request, desk: Desk, roles: tuple[Role, ...], ticket_id: str,
                       action: str) -> Response:
    principal = _page_user(request, roles, form_page=f"{desk.base}/tickets/{ticket_id}")
    if isinstance(principal, Response):
        return principal
    if not _ticket_id_ok(ticket_id):
        return _ticket_desk(request, principal, desk, ticket_id)
    try:
        form = await _form(request, MAX_PHOTO_FORM_BYTES if desk.for_department else MAX_FORM_BYTES)
    except FormRefused as refused:
        return _ticket_desk(request, principal, desk, ticket_id, problem=str(refused), code=refused.status_code)
    if not auth.csrf_ok(auth.session_token(request) or "", form.get(auth.CSRF_FIELD)):
        return _render(request, "forbidden.html", principal, status_code=status.HTTP_403_FORBIDDEN,
                       needed="the form's CSRF token (reload the page)")
    lifecycle = _context(request).lifecycle
    directory = None if desk.for_department else await run_in_threadpool(_active_directory, request)
    try:
        await run_in_threadpool(act, desk, lifecycle, ticket_id, action, principal.actor, form, principal.department,
                                directory)
    except TicketNotFound as error:
        return _ticket_desk(request, principal, desk, ticket_id, problem=str(error), code=status.HTTP_404_NOT_FOUND)
    except IllegalTransition as error:
        return _ticket_desk(request, principal, desk, ticket_id, problem=str(error), code=status.HTTP_409_CONFLICT)
    except (InvalidTransitionRequest, DeskFormError) as error:
        return _ticket_desk(request, principal, desk, ticket_id, problem=str(error),
                            code=status.HTTP_422_UNPROCESSABLE_CONTENT, form=form)
    return RedirectResponse(f"{desk.base}/tickets/{ticket_id}?done={action}", status_code=status.HTTP_303_SEE_OTHER)


def _desk_attachment(request: Request, desk: Desk, roles: tuple[Role, ...], ticket_id: str,
                     attachment_id: int) -> Response:
    principal = _page_user(request, roles)
    if isinstance(principal, Response):
        return principal
    if not _ticket_id_ok(ticket_id) or not 1 <= attachment_id <= MAX_ROW_ID:
        return Response("no such attachment", status_code=status.HTTP_404_NOT_FOUND, media_type="text/plain")
    store = _context(request).store
    ticket = store.get(ticket_id)
    found = attachment(store, ticket_id, attachment_id)
    if found is None or ticket is None or (desk.for_department and ticket.department != principal.department):
        return Response("no such attachment", status_code=status.HTTP_404_NOT_FOUND, media_type="text/plain")
    return Response(found.data, media_type=found.content_type, headers={"Cache-Control": "private, max-age=3600"})


def _mount_desk(desk: Desk, roles: tuple[Role, ...]) -> None:
    """The desk's routes: {base}/tickets/{id}, the actions posted to it, and its photos."""

    def page(request: Request, ticket_id: str, done: str | None = None) -> Response:
        return _desk_page(request, desk, roles, ticket_id, done)

    async def action(request: Request, ticket_id: str, action: str) -> Response:
        return await _desk_action(request, desk, roles, ticket_id, action)

    def photo(request: Request, ticket_id: str, attachment_id: int) -> Response:
        return _desk_attachment(request, desk, roles, ticket_id, attachment_id)

    console_router.add_api_route(f"{desk.base}/tickets/{{ticket_id}}", page, methods=["GET"])
    console_router.add_api_route(f"{desk.base}/tickets/{{ticket_id}}/{{action}}", action, methods=["POST"])
    console_router.add_api_route(f"{desk.base}/tickets/{{ticket_id}}/attachments/{{attachment_id}}", photo,
                                 methods=["GET"])


def _done_label(done: str | None) -> str | None:
    try:
        return ACTION_LABELS.get(Action(done)) if done else None
    except ValueError:
        return None


def _ticket_desk(request: Request, principal: Principal, desk: Desk, ticket_id: str, *, done: str | None = None,
                 problem: str | None = None, code: int = status.HTTP_200_OK,
                 form: dict[str, str] | None = None) -> Response:
    directory = None if desk.for_department else _active_directory(request)
    view = None if not _ticket_id_ok(ticket_id) else desk_view(
        desk, _context(request).store, ticket_id, _context(request).clock(), directory, _lexical(request),
        _context(request).settings.assist.duplicate_min_score, department=principal.department)
    if view is None:
        return _render(request, "ticket.html", principal, status_code=status.HTTP_404_NOT_FOUND, view=None,
                       base=desk.base, ticket_id=ticket_id, problem=problem or f"ticket {ticket_id} not found",
                       done=None, labels=ACTION_LABELS, form={})
    return _render(request, "ticket.html", principal, status_code=code, view=view, base=desk.base,
                   ticket_id=ticket_id, done=_done_label(done), problem=problem, labels=ACTION_LABELS,
                   form=form or {})


_mount_desk(MANAGER_DESK, auth.MANAGER_ROLES)
_mount_desk(DEPARTMENT_DESK, auth.DEPARTMENT_ROLES)


# ---- analyst ---------------------------------------------------------------------------------------------------
@console_router.get("/console/analyst")
def analyst_page(request: Request, version: int | None = None) -> Response:
    principal = _page_user(request, auth.ANALYST_ROLES)
    if isinstance(principal, Response):
        return principal
    return _analyst(request, principal, version)


@console_router.post("/console/analyst/backtest")
async def analyst_backtest(request: Request) -> Response:
    principal = _page_user(request, auth.ANALYST_ROLES, form_page="/console/analyst")
    if isinstance(principal, Response):
        return principal
    try:
        form = await _form(request)
    except FormRefused as refused:
        return await run_in_threadpool(_analyst, request, principal, None, problem=str(refused),
                                       code=refused.status_code)
    token = auth.session_token(request) or ""
    if not auth.csrf_ok(token, form.get(auth.CSRF_FIELD)):
        return _render(request, "forbidden.html", principal, status_code=status.HTTP_403_FORBIDDEN,
                       needed="the form's CSRF token (reload the page)")
    version_id = _version_id(form.get("version_id", ""))
    if form.get("mode", "version") != "file" and version_id is None:
        return await run_in_threadpool(_analyst, request, principal, None, problem=(
            f"版本号无效 (version_id must be a rule version number, 1 to {MAX_ROW_ID})"), form=form,
            code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    result: BacktestResult | None = None
    errors: list[RuleError] = []
    problem: str | None = None
    try:
        result = await run_in_threadpool(_backtest, _catalogue(request), form, version_id or 0)
    except RulesValidationError as error:
        errors = error.errors
        if not errors:  # rejected all the same: the page must not look as if nothing happened
            problem = "规则校验未通过 (the proposed rules are rejected, but the validator named no error)"
    except (RuleStoreError, ValueError) as error:
        problem = str(error)
    return await run_in_threadpool(_analyst, request, principal, None, result, errors, problem, form)


def _backtest(catalogue: RulesCatalogue, form: dict[str, str], version_id: int) -> BacktestResult:
    if form.get("mode", "version") != "file":
        return catalogue.backtest_version(version_id)
    text = form.get("content", "")
    if not text.strip():
        raise ValueError("粘贴或上传一个规则表文件 (paste or upload a table file)")
    return catalogue.backtest_file(form.get("file_name", "").strip(), text)


def _version_id(value: str) -> int | None:
    """A version number the database can hold (a larger one overflows the driver instead of matching nothing)."""
    number = value.strip()
    if not number.isdigit() or not 1 <= int(number) <= MAX_ROW_ID:
        return None
    return int(number)


def _analyst(request: Request, principal: Principal, version: int | None,
             result: BacktestResult | None = None, errors: list[RuleError] | None = None,
             problem: str | None = None, form: dict[str, str] | None = None,
             code: int = status.HTTP_200_OK) -> Response:
    catalogue = _catalogue(request)
    versions = catalogue.versions()
    active = next(v for v in versions if v.active)
    shown = next((v for v in versions if v.id == version), active)
    rules = catalogue.compiled(shown.id)
    loads = result.loads if result else []
    top = max((max(load.active, load.proposed) for load in loads), default=0) or 1
    return _render(request, "analyst.html", principal, status_code=code, versions=versions, active=active, shown=shown,
                   tables=table_views(rules), files=sorted(catalogue.bundle(active.id).files),
                   table_files=[rules.manifest.tables.ref(n).file for n in TABLE_NAMES],
                   result=result, load_top=top, errors=errors or [], problem=problem, form=form or {})
