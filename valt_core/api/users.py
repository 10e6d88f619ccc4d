"""User management (admins)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field
from quart import jsonify
from sqlmodel import select

from ..context import get_context
from ..db.models import User
from ..errors import Conflict
from ..users import change_user, create_user, find_user, groups_of
from . import api
from .guard import RequestModel, body, caller, read_body, remote_addr, require, responds
from .schemas import UnlockOut, UserDetailOut, UserOut
from .serialize import user_json


class UserCreate(RequestModel):
    """Body of ``POST /api/v1/users``."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=150, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=1024)
    role: Literal["admin", "operator", "viewer"] | None = Field(
        "viewer", description="The built-in group to put the user in; null: none (give them groups of your own).")
    display_name: str = Field("", max_length=200)
    email: str = Field("", max_length=254)


@api.get("/users")
@require("users.manage")
@responds(200, list[UserOut], description="All users.")
async def list_users():
    """All users."""
    async with get_context().db.session() as s:
        users = (await s.exec(select(User).order_by(User.username))).all()
    groups = await groups_of(get_context(), [u.id for u in users])
    return jsonify([user_json(u, groups[u.id]) for u in users])


@api.post("/users")
@require("users.manage")
@body(UserCreate)
@responds(201, UserOut, description="The user, created.", errors=(409,))
async def add_user():
    """Create a user with a password (local auth)."""
    data = await read_body(UserCreate)
    ctx = get_context()
    user = await create_user(ctx, data.username, data.password, role=data.role,
                             display_name=data.display_name, email=data.email)
    await ctx.audit.record("user.create", actor=caller().user, target_type="user",
                           target_id=user.id, detail={"username": user.username, "role": data.role},
                           remote_addr=remote_addr())
    return jsonify(await _answer(user)), 201


class UserUpdate(RequestModel):
    """Body of ``PATCH /api/v1/users/{id}``: only the fields given change.

    Disabling a user or setting a password signs them out everywhere; a new role or disabling
    closes their live streams at once.
    """

    model_config = ConfigDict(extra="forbid")
    role: Literal["admin", "operator", "viewer"] | None = None
    disabled: bool | None = None
    password: str | None = Field(None, min_length=8, max_length=1024)
    display_name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=254)


@api.get("/users/<int:user_id>")
@require("users.manage")
@responds(200, UserDetailOut, description="The user and the addresses their name is locked for.")
async def get_user(user_id: int):
    """One user, and the client addresses their name is locked for now."""
    ctx = get_context()
    user = await find_user(ctx, user_id)
    return jsonify({**await _answer(user), "locked_for": await ctx.sessions.attempts.locked_addresses(user.username)})


@api.patch("/users/<int:user_id>")
@require("users.manage")
@body(UserUpdate)
@responds(200, UserOut, description="The user, changed.", errors=(409,))
async def update_user(user_id: int):
    """Change a user's role, enable or disable them, set a password or their details."""
    data = await read_body(UserUpdate)
    ctx = get_context()
    me = caller().user
    if user_id == me.id and (data.disabled or (data.role is not None and data.role != "admin")):
        # An admin locking themselves out leaves the site without one as easily as by accident.
        raise Conflict("you cannot disable yourself or take away your own admin role")
    fields = data.model_dump(exclude_unset=True)
    # Your own new password signs out your other sessions, not this one.
    keep = caller().token.id if user_id == me.id else None
    user = await change_user(ctx, user_id, keep_token_id=keep, **fields)
    await ctx.audit.record("user.update", actor=me, target_type="user", target_id=user_id,
                           detail={"username": user.username, "fields": sorted(fields)}, remote_addr=remote_addr())
    return jsonify(await _answer(user))


@api.post("/users/<int:user_id>/unlock")
@require("users.manage")
@responds(200, UnlockOut, description="The user; their sign-in locks are ended.")
async def unlock_user(user_id: int):
    """End every sign-in lock of the user's name (from any address)."""
    ctx = get_context()
    user = await find_user(ctx, user_id)
    cleared = await ctx.sessions.attempts.unlock(user.username)
    await ctx.audit.record("user.unlock", actor=caller().user, target_type="user", target_id=user_id,
                           detail={"username": user.username}, remote_addr=remote_addr())
    return jsonify({**await _answer(user), "cleared": cleared})


async def _answer(user: User) -> dict:
    return user_json(user, (await groups_of(get_context(), [user.id]))[user.id])
