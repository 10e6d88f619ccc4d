"""Sign in and out."""

from __future__ import annotations

from pydantic import ConfigDict, Field
from quart import jsonify

from ..context import get_context
from ..users import groups_of
from . import api
from .guard import SIGNED_IN, RequestModel, body, caller, public, read_body, remote_addr, require, responds
from .schemas import LoginOut, MeOut
from .serialize import user_json


class LoginRequest(RequestModel):
    """Credentials for ``POST /api/v1/auth/login``."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=1024)


@api.post("/auth/login")
@public
@body(LoginRequest)
@responds(200, LoginOut, description="A bearer token and the user.", errors=(401, 429, 503))
async def login():
    """Sign in with a user name and password; answers a bearer token."""
    creds = await read_body(LoginRequest)
    issued = await get_context().sessions.login(creds.username, creds.password, remote_addr())
    return jsonify({
        "token": issued.token,
        "expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
        "user": user_json(issued.user, (await groups_of(get_context(), [issued.user.id]))[issued.user.id]),
    })


@api.post("/auth/logout")
@require(SIGNED_IN)
async def logout():
    """Revoke the token used for this request."""
    ctx = get_context()
    who = caller()
    await ctx.sessions.revoke(who.token.id)
    ctx.live.signed_out(who.token.id)
    await ctx.audit.record("auth.logout", actor=who.user, remote_addr=remote_addr())
    return jsonify({"status": "signed out"})


@api.get("/auth/me")
@require(SIGNED_IN)
@responds(200, MeOut, description="The signed-in user and their rights.")
async def me():
    """The signed-in user, their groups and the rights they hold (and in which rooms)."""
    who = caller()
    groups = (await groups_of(get_context(), [who.user.id]))[who.user.id]
    rights = {name: (None if rooms is None else sorted(rooms)) for name, rooms in sorted(who.access.rights.items())}
    return jsonify({**user_json(who.user, groups), "rights": rights})
