"""The FastAPI application: the ticket API (/api), Open311 GeoReport v2 (/open311/v2), OpenAPI and local docs.

/openapi.json is always published. /docs is Swagger UI served from the files of the `swagger-ui-py` package
(no CDN); without that package installed, /docs is off and says so in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import assist_routes, open311, routes
from api.context import ApiContext, LazyTransport
from classifiers.service import TextIntelligence
from consoles import console_router
from hotline.settings import Settings
from streams.transport import Transport
from tickets.lifecycle import EscalationPolicy, IllegalTransition, InvalidTransitionRequest, Lifecycle, TicketNotFound
from tickets.store import TicketStore

log = structlog.get_logger(__name__)

DOCS_ASSETS = "/docs/assets"
DESCRIPTION = """\
AI dispatch for the 12345 citizen hotline (接诉即办) and city cameras (数字化城管).

* **/api**: the ticket loop. Departments work their queue (accept, return, start, resolve); managers search,
  assign, reassign, escalate and merge; agents record the citizen's callback and close; analysts read the rates.
  Authenticate with `Authorization: Bearer <token>` (tokens come from `hotline users add`).
* **/open311/v2**: Open311 GeoReport v2, JSON and XML; `api_key` is one of the same tokens.
"""


def swagger_ui_dir() -> Path | None:
    """Swagger UI's files from the swagger-ui-py package, when installed (it is not imported)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        return None
    static = Path(spec.origin).parent / "static"
    return static if (static / "swagger-ui-bundle.js").exists() else None


def create_app(
    settings: Settings,
    *,
    store: TicketStore | None = None,
    transport: Transport | None = None,
    clock: Callable[[], datetime] | None = None,
    escalation: EscalationPolicy | None = None,
    text_intelligence: TextIntelligence | None = None,
) -> FastAPI:
    """The app. `store` defaults to the settings' database, `transport` to the settings' transport (opened on
    the first publish and closed at shutdown); tests pass their own, and a clock."""
    from hotline.pipeline import open_store, open_transport

    if store is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(settings)
    owned = transport is None
    transport = transport or LazyTransport(lambda: open_transport(settings))
    clock = clock or (lambda: datetime.now(UTC))
    context = ApiContext(settings=settings, store=store, transport=transport,
                         lifecycle=Lifecycle(store, transport, policy=escalation, clock=clock), clock=clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        loops = [asyncio.create_task(_relay_outbox(context, settings.outbox_relay_seconds))]
        if settings.escalation_sweep_seconds > 0:
            loops.append(asyncio.create_task(_sweep_overdue(context, settings.escalation_sweep_seconds)))
        yield
        for loop in loops:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        if owned:
            transport.close()

    assets = swagger_ui_dir()
    app = FastAPI(title="12345 hotline dispatch API", version="1", description=DESCRIPTION, docs_url=None,
                  redoc_url=None, lifespan=lifespan)
    app.state.context = context
    app.include_router(routes.router)
    app.include_router(open311.router)
    app.include_router(assist_routes.router)
    app.include_router(console_router)
    app.state.text_intelligence = text_intelligence
    _install_error_handlers(app)

    @app.get("/healthz", tags=["ops"], summary="Liveness: the app answers and the database does")
    def healthz() -> dict[str, str]:
        store.count()
        return {"status": "ok"}

    if assets is None:
        log.warning("docs_disabled", reason="swagger-ui-py is not installed; /openapi.json is still served")
    else:
        app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

        @app.get("/docs", include_in_schema=False)
        def docs() -> HTMLResponse:
            return get_swagger_ui_html(
                openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - docs",
                swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png")

    return app


async def _relay_outbox(context: ApiContext, every_seconds: float) -> None:
    """Publish ticket events a failed publish or a crash left in the outbox (each action relays at once too)."""
    relay = context.lifecycle.relay
    if relay is None:
        return
    while True:
        await asyncio.sleep(every_seconds)
        try:
            await run_in_threadpool(relay.relay_quietly)
            await run_in_threadpool(relay.prune)
        except Exception:  # the database is away, say: the loop must outlive it and try again next round
            log.warning("outbox_relay_failed", exc_info=True)


async def _sweep_overdue(context: ApiContext, every_seconds: float) -> None:
    """督办 without a cron: escalate overdue tickets to the level the policy says (idempotent, so replicas of
    the API sweeping at once escalate each ticket once)."""
    while True:
        await asyncio.sleep(every_seconds)
        try:
            escalated = await run_in_threadpool(context.lifecycle.escalate_overdue)
        except Exception:  # the database is away, say: try again next round
            log.warning("escalation_sweep_failed", exc_info=True)
            continue
        if escalated:
            log.info("escalation_sweep", escalated=[(r.ticket.id, r.ticket.escalation_level) for r in escalated])


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TicketNotFound)
    def _not_found(_request: Request, error: TicketNotFound) -> Response:
        return JSONResponse({"detail": str(error), "ticket_id": error.ticket_id}, status_code=404)

    @app.exception_handler(IllegalTransition)
    def _illegal(_request: Request, error: IllegalTransition) -> Response:
        return JSONResponse({"detail": str(error), "ticket_id": error.ticket_id, "status": error.status,
                             "action": error.action}, status_code=409)

    @app.exception_handler(InvalidTransitionRequest)
    def _invalid(_request: Request, error: InvalidTransitionRequest) -> Response:
        return JSONResponse({"detail": str(error), "ticket_id": error.ticket_id, "action": error.action},
                            status_code=422)

    @app.exception_handler(open311.Open311Error)
    def _open311(_request: Request, error: open311.Open311Error) -> Response:
        return open311.error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        path = request.url.path
        if path.startswith(open311.router.prefix + "/"):  # unknown Open311 paths and methods answer Open311 style
            fmt = "xml" if path.endswith(".xml") else "json"
            return open311.error_response(open311.Open311Error(error.status_code, str(error.detail), fmt))
        return await http_exception_handler(request, error)
