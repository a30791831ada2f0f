"""Command-line pieces for `hotline` (wired in hotline/cli.py): `hotline users ...` and `hotline api`."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from hotline.settings import Settings, get_settings

if TYPE_CHECKING:
    from tickets.store import TicketStore

# query parameters that carry a credential (Open311 takes the API token as ?api_key=), and our tokens anywhere
_SECRET_PARAMETER = re.compile(r"(?i)([?&](?:api_key|apikey|key|token|access_token|auth|password|secret)=)[^&\s\"]*")
_TOKEN = re.compile(r"\bhl_[A-Za-z0-9_-]{16,}")
REDACTED = "[redacted]"

users_app = typer.Typer(help="API users and their bearer tokens.", no_args_is_help=True)
console = Console()


@users_app.command("add")
def users_add_command(
    name: Annotated[str, typer.Argument(help="A unique user name, e.g. a3-cgj-wang.")],
    role: Annotated[str, typer.Option(help="agent, manager, department or analyst.")],
    department: Annotated[str | None, typer.Option(help="For department users: the department's name as "
                                                        "tickets carry it, e.g. A3区城市管理局.")] = None,
) -> None:
    """Add a user and print its token, once: only a hash of it is kept."""
    typer.echo(users_add(get_settings(), name, role, department))


def users_add(settings: Settings, name: str, role: str, department: str | None = None) -> str:
    """Add a user; returns the token (print it once). Raises typer.BadParameter on a refused user."""
    from api.users import UserError, add_user

    try:
        _principal, token = add_user(_store(settings), name, role, department)
    except UserError as error:
        raise typer.BadParameter(str(error)) from None
    return token


@users_app.command("list")
def users_list_command(
    revoked: Annotated[bool, typer.Option(help="Include revoked users.")] = False,
) -> None:
    """The API users (never their tokens)."""
    from api.users import list_users

    table = Table(title="API users")
    for column in ("name", "role", "department", "created", "revoked"):
        table.add_column(column)
    for user in list_users(_store(get_settings()), include_revoked=revoked):
        table.add_row(user.name, user.role, user.department or "-", f"{user.created_at:%Y-%m-%d %H:%M}",
                      f"{user.revoked_at:%Y-%m-%d %H:%M}" if user.revoked_at else "-")
    console.print(table)


@users_app.command("revoke")
def users_revoke_command(name: Annotated[str, typer.Argument()]) -> None:
    """Revoke a user's token."""
    from api.users import revoke_user

    if not revoke_user(_store(get_settings()), name):
        raise typer.BadParameter(f"no active user named {name.strip()!r}")
    console.print(f"revoked {name.strip()}")


@users_app.command("rotate")
def users_rotate_command(name: Annotated[str, typer.Argument()]) -> None:
    """Give a user a new token (printed once); the old one stops working. A revoked user is reactivated."""
    from api.users import UserError, rotate_token

    try:
        typer.echo(rotate_token(_store(get_settings()), name))
    except UserError as error:
        raise typer.BadParameter(str(error)) from None


def serve_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Serve the ticket API, Open311 and the consoles (/console; docs at /docs, schema at /openapi.json)."""
    serve(get_settings(), host, port)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    from api import create_app
    from hotline.pipeline import build_text_intelligence

    text = build_text_intelligence(settings)
    if isinstance(text, str):
        console.print(f"[yellow]agent assist unavailable:[/] {text}")
    app = create_app(settings, text_intelligence=None if isinstance(text, str) else text)
    redact_access_log()
    uvicorn.run(app, host=host, port=port, log_config=None)


class RedactSecrets(logging.Filter):
    """Keeps the access log, without the credentials a request line can carry in its query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def redact(line: str) -> str:
    return _TOKEN.sub(REDACTED, _SECRET_PARAMETER.sub(rf"\1{REDACTED}", line))


def redact_access_log() -> None:
    """uvicorn logs every request line, query string included, to `uvicorn.access`."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecrets) for f in access.filters):
        access.addFilter(RedactSecrets())


def escalate_overdue_command() -> None:
    """Run the 督办 sweep once: escalate every open ticket past its deadline (cron this, e.g. every 10 min)."""
    for ticket_id, level in escalate_overdue(get_settings()):
        console.print(f"{ticket_id}: escalation level {level}")


def relay_events_command() -> None:
    """Publish the ticket events waiting in the outbox (after a broker outage or a crash); prints how many."""
    from hotline.pipeline import open_transport
    from tickets.outbox import OutboxRelay

    settings = get_settings()
    transport = open_transport(settings)
    try:
        relay = OutboxRelay(_store(settings), transport)
        published = relay.relay()
        console.print(f"published {published} ticket event(s); {relay.pending()} pending")
    finally:
        transport.close()


def escalate_overdue(settings: Settings) -> list[tuple[str, int]]:
    from hotline.pipeline import open_transport
    from tickets.lifecycle import Lifecycle

    transport = open_transport(settings)
    try:
        results = Lifecycle(_store(settings), transport).escalate_overdue()
    finally:
        transport.close()
    return [(r.ticket.id, r.ticket.escalation_level) for r in results]


def _store(settings: Settings) -> TicketStore:
    """The settings' ticket store, migrated; the data folder is made when the database lives there."""
    from hotline.pipeline import open_store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return open_store(settings)
