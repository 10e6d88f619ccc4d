"""User management (admins)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from quart import jsonify
from sqlmodel import select

from ..context import get_context
from ..db.models import User
from ..users import create_user
from . import api
from .guard import body, caller, read_body, remote_addr, require
from .serialize import user_json


class UserCreate(BaseModel):
    """Body of ``POST /api/v1/users``."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=150, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=1024)
    role: Literal["admin", "operator", "viewer"] = "viewer"
    display_name: str = Field("", max_length=200)
    email: str = Field("", max_length=254)


@api.get("/users")
@require("users.manage")
async def list_users():
    """All users."""
    async with get_context().db.session() as s:
        users = (await s.exec(select(User).order_by(User.username))).all()
    return jsonify([user_json(u) for u in users])


@api.post("/users")
@require("users.manage")
@body(UserCreate)
async def add_user():
    """Create a user with a password (local auth)."""
    data = await read_body(UserCreate)
    ctx = get_context()
    user = await create_user(ctx, data.username, data.password, role=data.role,
                             display_name=data.display_name, email=data.email)
    await ctx.audit.record("user.create", actor=caller().user, target_type="user",
                           target_id=user.id, detail={"username": user.username, "role": user.role},
                           remote_addr=remote_addr())
    return jsonify(user_json(user)), 201
