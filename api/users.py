"""API users: a role, a department for department users, and a bearer token of which only a hash is kept.

Tokens are 256-bit random strings, so a plain SHA-256 is the right hash for them (no password stretching
needed: there is nothing to guess); the token itself is shown once, when the user is added.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tickets.models import ApiUser, Open311Request, TicketAttachment, TicketTransition, column_length
from tickets.store import TicketStore

TOKEN_PREFIX = "hl_"



# the audit columns that keep a user's actor name (the consoles' and the assist store's are as long);
# PostgreSQL refuses a longer one, so every action of such a user would fail
_ACTOR_COLUMNS = (TicketTransition.__table__.c.actor, TicketAttachment.__table__.c.created_by,
                  Open311Request.__table__.c.submitted_by)
ACTOR_LENGTH = min(column_length(c) for c in _ACTOR_COLUMNS)


class Role(StrEnum):
    AGENT = "agent"  # call centre: takes calls, records the citizen's callback, closes
    MANAGER = "manager"  # dispatcher / supervisor: search, assign, reassign, escalate, merge
    DEPARTMENT = "department"  # a handling body: its own queue only
    ANALYST = "analyst"  # read-only, and the rates


class UserError(ValueError):
    """Adding or changing a user was refused; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the API user behind a token."""

    user_id: int
    name: str
    role: Role
    department: str | None

    @property
    def actor(self) -> str:
        """How the audit trail names this user."""
        where = f"@{self.department}" if self.department else ""
        return f"{self.role.value}:{self.name}{where}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def add_user(store: TicketStore, name: str, role: Role | str, department: str | None = None) -> tuple[Principal, str]:
    """Create a user; returns it with its token (the only time the token is available)."""
    name = name.strip()
    try:
        role = Role(role)
    except ValueError:
        raise UserError(f"unknown role {role!r}: one of {', '.join(r.value for r in Role)}") from None
    department = department.strip() if department else None
    if not name:
        raise UserError("a user needs a name")
    if role is Role.DEPARTMENT and not department:
        raise UserError("a department user needs --department (the department's name as tickets carry it)")
    if role is not Role.DEPARTMENT and department:
        raise UserError(f"only department users belong to a department, not {role.value} users")
    _check_actor_length(Principal(0, name, role, department))
    token = new_token()
    user = ApiUser(name=name, role=role.value, department=department, token_hash=hash_token(token),
                   created_at=datetime.now(UTC))
    try:
        with store.session() as session, session.begin():
            session.add(user)
    except IntegrityError:
        raise UserError(_taken(store, name)) from None
    return _principal(user), token


def _taken(store: TicketStore, name: str) -> str:
    """Why a name cannot be added: a revoked user keeps it (its audit trail names it) and can be brought back."""
    with store.session() as session:
        user = session.scalars(select(ApiUser).where(ApiUser.name == name)).first()
    if user is not None and user.revoked_at is not None:
        return (f"a user named {name!r} was revoked (`hotline users list --revoked`); names are not reused, so "
                f"`hotline users rotate {name}` gives that user (role {user.role}) a new token and reactivates it")
    return f"a user named {name!r} exists already"


def _check_actor_length(principal: Principal) -> None:
    actor = principal.actor
    if len(actor) > ACTOR_LENGTH:
        what = "name and department" if principal.department else "name"
        raise UserError(f"{what} too long: the audit trail names this user {actor!r}, {len(actor)} characters, "
                        f"and keeps at most {ACTOR_LENGTH}; shorten the {what} by {len(actor) - ACTOR_LENGTH}")


def authenticate(store: TicketStore, token: str) -> Principal | None:
    if not token:
        return None
    digest = hash_token(token)
    with store.session() as session:
        user = session.scalars(select(ApiUser).where(ApiUser.token_hash == digest)).first()
    if user is None or user.revoked_at is not None or not secrets.compare_digest(user.token_hash, digest):
        return None
    return _principal(user)


def list_users(store: TicketStore, include_revoked: bool = False) -> list[ApiUser]:
    query = select(ApiUser).order_by(ApiUser.id)
    if not include_revoked:
        query = query.where(ApiUser.revoked_at.is_(None))
    with store.session() as session:
        return list(session.scalars(query))


def revoke_user(store: TicketStore, name: str) -> bool:
    """Revoke a user's token; False when there is no such active user."""
    name = name.strip()
    with store.session() as session, session.begin():
        user = session.scalars(select(ApiUser).where(ApiUser.name == name, ApiUser.revoked_at.is_(None))).first()
        if user is None:
            return False
        user.revoked_at = datetime.now(UTC)
    return True


def rotate_token(store: TicketStore, name: str) -> str:
    """A new token for a user; the old one stops working. A revoked user is reactivated with it."""
    name = name.strip()
    token = new_token()
    with store.session() as session, session.begin():
        user = session.scalars(select(ApiUser).where(ApiUser.name == name)).first()
        if user is None:
            raise UserError(f"no user named {name!r}")
        user.token_hash = hash_token(token)
        user.revoked_at = None
    return token


def _principal(user: ApiUser) -> Principal:
    return Principal(user_id=user.id, name=user.name, role=Role(user.role), department=user.department)
