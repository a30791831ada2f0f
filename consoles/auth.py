"""Who is at the console: the bearer token from `hotline users add`, kept in an HttpOnly SameSite=Strict cookie.

Pages read the cookie and check the role (no cookie or a revoked token: to the login page; wrong role: 403).
The console's own fetch calls to /api/assist and /api/calls send the cookie too; they must also carry the
page's CSRF token (a hash of the session token, rendered into the page, unreadable cross-site) in the
X-CSRF-Token header. API clients keep using `Authorization: Bearer`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from api.deps import Context, bearer
from api.users import Principal, Role, authenticate

COOKIE = "hotline_console"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
COOKIE_MAX_AGE = 12 * 3600  # one working shift

AGENT_ROLES = (Role.AGENT, Role.MANAGER)
MANAGER_ROLES = (Role.MANAGER,)
ANALYST_ROLES = (Role.ANALYST, Role.MANAGER)
DEPARTMENT_ROLES = (Role.DEPARTMENT,)
HOME = {Role.AGENT: "/console/agent", Role.MANAGER: "/console/manager", Role.ANALYST: "/console/analyst",
        Role.DEPARTMENT: "/console/department"}


def csrf_token(session_token: str) -> str:
    """A value only a page served to the cookie's owner knows (the token itself never reaches the page)."""
    return hashlib.sha256(b"hotline-console-csrf\0" + session_token.encode()).hexdigest()[:40]


def csrf_ok(session_token: str, sent: str | None) -> bool:
    return bool(sent) and secrets.compare_digest(csrf_token(session_token), sent or "")


def session_token(request: Request) -> str | None:
    return request.cookies.get(COOKIE) or None


def set_session(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE, httponly=True, samesite="strict", secure=secure,
                        path="/")


def clear_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def safe_next(target: str | None) -> str | None:
    """Only same-site console paths are followed after logging in."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return None


def login_redirect(request: Request, form_page: str | None = None) -> RedirectResponse:
    """To the login page, which leads back here; a post leads back to `form_page` (the page holding its form),
    as the browser follows that redirect with a GET the post's URL does not answer."""
    if request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        target = form_page or "/console"
    return RedirectResponse(f"/console/login?next={quote(target, safe='')}", status_code=status.HTTP_303_SEE_OTHER)


def role_names(roles: tuple[Role, ...]) -> str:
    return " / ".join(r.value for r in roles)


def api_or_console_user(*roles: Role) -> Callable[..., Principal]:
    """A dependency for the assist API: a bearer token, or the console cookie plus its CSRF header."""
    names = ", ".join(r.value for r in roles)

    def check(
        request: Request,
        context: Context,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if credentials is not None:
            token = credentials.credentials
        else:
            cookie = session_token(request)
            if cookie is None:
                raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                                    "missing bearer token (Authorization: Bearer <token>)",
                                    headers={"WWW-Authenticate": "Bearer"})
            if not csrf_ok(cookie, request.headers.get(CSRF_HEADER)):
                raise HTTPException(status.HTTP_403_FORBIDDEN,
                                    f"console requests need the page's {CSRF_HEADER} header")
            token = cookie
        principal = authenticate(context.store, token)
        if principal is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked token",
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if principal.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"this needs the role {names}; {principal.name} is {principal.role.value}")
        return principal

    return check
