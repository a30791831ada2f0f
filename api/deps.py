"""Request dependencies: the context, the active routing rules, the caller (bearer token) and role checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.context import ApiContext
from api.users import Principal, Role, authenticate
from dispatch_rules.router import DecisionTableRouter

bearer = HTTPBearer(auto_error=False, description="A token from `hotline users add` (shown once when added).")


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(get_context)]


def dispatch_router(request: Request, context: Context) -> DecisionTableRouter:
    """One router per app: it keeps the compiled active rules and re-checks the version every few seconds."""
    state = request.app.state
    found: DecisionTableRouter | None = getattr(state, "assist_dispatch_router", None)
    if found is None:
        found = DecisionTableRouter.published(context.store.engine,
                                              refresh_seconds=context.settings.rules_refresh_seconds)
        state.assist_dispatch_router = found
    return found


Routing = Annotated[DecisionTableRouter, Depends(dispatch_router)]


def get_principal(
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token (Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": "Bearer"})
    principal = authenticate(context.store, credentials.credentials)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked token",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return principal


def require(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency letting only the given roles through (403 for the others)."""
    names = ", ".join(r.value for r in roles)

    def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"this needs the role {names}; {principal.name} is {principal.role.value}")
        return principal

    return check


AnyUser = Annotated[Principal, Depends(get_principal)]
Manager = Annotated[Principal, Depends(require(Role.MANAGER))]
Department = Annotated[Principal, Depends(require(Role.DEPARTMENT))]
CallCentre = Annotated[Principal, Depends(require(Role.AGENT, Role.MANAGER))]
Reader = Annotated[Principal, Depends(require(Role.MANAGER, Role.ANALYST))]
