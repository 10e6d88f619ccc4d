"""Route guards: who may call a route, and how request bodies are read.

Every ``/api/v1`` view is wrapped by exactly one of :func:`require` or :func:`public`; a test
walks the routes and fails on any that has neither.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeVar

from pydantic import BaseModel, ValidationError
from quart import g, request

from ..auth.access import ALL_PERMISSIONS, role_allows
from ..context import get_context
from ..db.models import ApiToken, User
from ..errors import Forbidden, NotAuthenticated, ValidationFailed, validation_problems

SESSION_COOKIE = "valt_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Caller:
    """Who is calling: the user, their token, and whether it came in a cookie."""

    user: User
    token: ApiToken
    via_cookie: bool


async def authenticate() -> Caller:
    """The caller of the current request, from ``Authorization: Bearer`` or the session cookie.

    A cookie-borne session must present its CSRF token on state-changing requests.
    """
    ctx = get_context()
    header = request.headers.get("Authorization", "")
    via_cookie = False
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("send Authorization: Bearer <token>")
        token = token.strip()
    else:
        token = request.cookies.get(SESSION_COOKIE, "")
        via_cookie = True
    if not token:
        raise NotAuthenticated("sign in first: POST /api/v1/auth/login")
    found = await ctx.sessions.user_for_token(token)
    if found is None:
        raise NotAuthenticated("the token is invalid or has expired; sign in again")
    if via_cookie and request.method in UNSAFE_METHODS:
        presented = request.headers.get(CSRF_HEADER) or (await request.form).get("csrf_token")
        if not ctx.sessions.csrf_ok(token, presented):
            raise Forbidden("missing or wrong CSRF token")
    user, row = found
    return Caller(user=user, token=row, via_cookie=via_cookie)


def require(permission: str) -> Callable[[F], F]:
    """Allow the route only to signed-in callers whose role grants ``permission``."""
    if permission not in ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def wrap(view: F) -> F:
        @functools.wraps(view)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            caller = await authenticate()
            if not role_allows(caller.user.role, permission):
                raise Forbidden(f"your role ({caller.user.role}) may not do this ({permission})")
            g.caller = caller
            return await view(*args, **kwargs)

        guarded.valt_permission = permission  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return wrap


def public(view: F) -> F:
    """Mark a route as open to anyone (login, health, the OpenAPI document)."""
    view.valt_public = True  # type: ignore[attr-defined]
    return view


def body(model: type[M]) -> Callable[[F], F]:
    """Document that the route takes a JSON body of ``model`` (read it with :func:`read_body`)."""

    def wrap(view: F) -> F:
        view.valt_body = model  # type: ignore[attr-defined]
        return view

    return wrap


async def read_body(model: type[M]) -> M:
    """The request's JSON body validated into ``model``; :class:`ValidationFailed` if not."""
    data = await request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationFailed("send a JSON object with Content-Type: application/json")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ValidationFailed("invalid request body", fields=validation_problems(err, "unknown field")) from err


def caller() -> Caller:
    """The authenticated caller of the current request (inside a :func:`require` route)."""
    return g.caller


def remote_addr() -> str:
    """The client address, for the audit log."""
    return request.remote_addr or ""
