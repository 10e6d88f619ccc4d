"""Groups (admins with ``users.manage``): members, rights and their room limits, video access.

A group's lists are replaced whole by ``PATCH``: the admin page sends the matrix it shows.
The three built-in groups can be given members and video access but not deleted, and the
Administrators' rights do not change (a site must not be able to lock every admin out).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pydantic import ConfigDict, Field, model_validator
from quart import jsonify
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from ..auth.access import RIGHTS, ROOM_RIGHTS
from ..context import get_context
from ..db.models import Group, GroupMember, Right, Room, User, VideoAccess
from ..errors import Conflict, NotFound, ValidationFailed
from . import api
from .guard import Id, RequestModel, body, caller, read_body, remote_addr, require, responds
from .schemas import Answer


class Grant(RequestModel):
    """One right, in one room or (``room_id`` null) in every room."""

    model_config = ConfigDict(extra="forbid")
    right: str = Field(max_length=40, description="One of `GET /api/v1/rights`.")
    room_id: Id | None = Field(None, description="Only in this room (rights that rooms can limit); null: every room.")


class AuthorAccess(RequestModel):
    """Whose recordings a group's members may see: one author, one group's members, or (both null) everyone's."""

    model_config = ConfigDict(extra="forbid")
    author_id: Id | None = None
    author_group_id: Id | None = None

    @model_validator(mode="after")
    def _one_or_none(self) -> "AuthorAccess":
        if self.author_id is not None and self.author_group_id is not None:
            raise ValueError("give author_id or author_group_id, not both (neither: every author)")
        return self


class GroupCreate(RequestModel):
    """Body of ``POST /api/v1/groups``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=150)
    description: str = Field("", max_length=500)
    members: list[Id] = Field(default_factory=list, max_length=10_000)
    rights: list[Grant] = Field(default_factory=list, max_length=1000)
    video_access: list[AuthorAccess] = Field(default_factory=list, max_length=1000)


class GroupChange(RequestModel):
    """Body of ``PATCH /api/v1/groups/{id}``: what is given is replaced, the rest stays."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=150)
    description: str | None = Field(None, max_length=500)
    members: list[Id] | None = Field(None, max_length=10_000)
    rights: list[Grant] | None = Field(None, max_length=1000)
    video_access: list[AuthorAccess] | None = Field(None, max_length=1000)


class GrantOut(Answer):
    """A right and its room (null: every room)."""

    right: str
    room_id: int | None


class AuthorAccessOut(Answer):
    """Whose recordings: one author, one group's members, or (both null) every author's."""

    author_id: int | None
    author_group_id: int | None


class GroupOut(Answer):
    """A group: who is in it, what it may do, whose recordings it sees."""

    id: int
    name: str
    description: str
    builtin: str
    members: list[int]
    rights: list[GrantOut]
    video_access: list[AuthorAccessOut]


class RightOut(Answer):
    """A right: its name, what it allows, and whether a grant can limit it to rooms."""

    name: str
    description: str
    rooms: bool


@api.get("/rights")
@require("users.manage")
@responds(200, list[RightOut], description="Every right there is.")
async def list_rights():
    """The rights a group or a user can be given, with what each allows."""
    return jsonify([{"name": name, "description": text, "rooms": name in ROOM_RIGHTS}
                    for name, text in RIGHTS.items()])


async def group_json(s, groups: list[Group]) -> list[dict[str, Any]]:
    """Groups with their members, rights and video access (three queries for any number)."""
    ids = [g.id for g in groups] or [0]
    members: dict[int, list[int]] = {}
    for gid, uid in (await s.exec(select(GroupMember.group_id, GroupMember.user_id)
                                  .where(GroupMember.group_id.in_(ids)).order_by(GroupMember.user_id))).all():
        members.setdefault(gid, []).append(uid)
    rights: dict[int, list[dict]] = {}
    grants = select(Right.group_id, Right.right, Right.room_id).where(Right.group_id.in_(ids))
    for gid, right, room_id in (await s.exec(grants.order_by(Right.right, Right.room_id))).all():
        rights.setdefault(gid, []).append({"right": right, "room_id": room_id})
    video: dict[int, list[dict]] = {}
    for gid, author, author_group in (await s.exec(select(VideoAccess.group_id, VideoAccess.author_id,
                                                          VideoAccess.author_group_id)
                                                   .where(VideoAccess.group_id.in_(ids))
                                                   .order_by(VideoAccess.id))).all():
        video.setdefault(gid, []).append({"author_id": author, "author_group_id": author_group})
    return [{"id": g.id, "name": g.name, "description": g.description, "builtin": g.builtin,
             "members": members.get(g.id, []), "rights": rights.get(g.id, []), "video_access": video.get(g.id, [])}
            for g in groups]


async def _check_refs(s, members: list[int] | None, rights: list[Grant] | None,
                      video: list[AuthorAccess] | None) -> None:
    # Every id named must exist, and every right be one there is, limited only where it can be.
    problems: dict[str, str] = {}
    if members:
        found = set((await s.exec(select(User.id).where(User.id.in_(members)))).all())
        if missing := sorted(set(members) - found):
            problems["members"] = f"no user {missing[0]}"
    for i, grant in enumerate(rights or []):
        if grant.right not in RIGHTS:
            problems[f"rights.{i}.right"] = f"no right {grant.right!r} (GET /api/v1/rights lists them)"
        elif grant.room_id is not None and grant.right not in ROOM_RIGHTS:
            problems[f"rights.{i}.room_id"] = f"{grant.right} cannot be limited to rooms"
    rooms = {g.room_id for g in rights or [] if g.room_id is not None}
    if rooms:
        found = set((await s.exec(select(Room.id).where(Room.id.in_(rooms)))).all())
        for i, grant in enumerate(rights or []):
            if grant.room_id is not None and grant.room_id not in found:
                problems[f"rights.{i}.room_id"] = f"no room {grant.room_id}"
    for i, entry in enumerate(video or []):
        if entry.author_id is not None and await s.get(User, entry.author_id) is None:
            problems[f"video_access.{i}.author_id"] = f"no user {entry.author_id}"
        if entry.author_group_id is not None and await s.get(Group, entry.author_group_id) is None:
            problems[f"video_access.{i}.author_group_id"] = f"no group {entry.author_group_id}"
    if problems:
        raise ValidationFailed("; ".join(problems.values()), fields=problems)


async def _replace(s, group: Group, members: list[int] | None, rights: list[Grant] | None,
                   video: list[AuthorAccess] | None) -> None:
    if members is not None:
        # Those who stay keep their membership's source: one a directory gave stays the
        # directory's (its sync may still take it away); newcomers are the admin's.
        wanted = set(members)
        await s.exec(sa.delete(GroupMember).where(GroupMember.group_id == group.id,
                                                  GroupMember.user_id.not_in(wanted)))
        kept = set((await s.exec(select(GroupMember.user_id).where(GroupMember.group_id == group.id))).all())
        s.add_all([GroupMember(group_id=group.id, user_id=uid) for uid in sorted(wanted - kept)])
    if rights is not None:
        await s.exec(sa.delete(Right).where(Right.group_id == group.id))
        unique = {(g.right, g.room_id) for g in rights}
        s.add_all([Right(group_id=group.id, right=r, room_id=room) for r, room in sorted(unique, key=str)])
    if video is not None:
        await s.exec(sa.delete(VideoAccess).where(VideoAccess.group_id == group.id))
        unique_v = {(v.author_id, v.author_group_id) for v in video}
        s.add_all([VideoAccess(group_id=group.id, author_id=a, author_group_id=g)
                   for a, g in sorted(unique_v, key=str)])


async def _audit(action: str, group_id: int, **detail: Any) -> None:
    await get_context().audit.record(action, actor=caller().user, target_type="group", target_id=group_id,
                                     detail=detail, remote_addr=remote_addr())


def _changed_people(ctx, user_ids: set[int]) -> None:
    # What they may watch changed: their open live streams are checked again at once.
    for uid in user_ids:
        ctx.live.user_changed(uid)


@api.get("/groups")
@require("users.manage")
@responds(200, list[GroupOut], description="Every group.")
async def list_groups():
    """Every group with its members, rights and video access (built-in groups first)."""
    async with get_context().db.session() as s:
        groups = list((await s.exec(select(Group).order_by(Group.builtin == "", Group.name))).all())
        return jsonify(await group_json(s, groups))


@api.post("/groups")
@require("users.manage")
@body(GroupCreate)
@responds(201, GroupOut, description="The group, created.", errors=(409,))
async def create_group():
    """Create a group, with its members, rights and video access if given."""
    ctx = get_context()
    data = await read_body(GroupCreate)
    async with ctx.db.session() as s:
        await _check_refs(s, data.members, data.rights, data.video_access)
        group = Group(name=data.name, description=data.description)
        s.add(group)
        try:
            await s.flush()
        except IntegrityError as err:
            raise Conflict(f"a group named {data.name!r} already exists") from err
        await _replace(s, group, data.members, data.rights, data.video_access)
        await s.commit()
        await s.refresh(group)
        (out,) = await group_json(s, [group])
    await _audit("group.create", group.id, name=group.name, members=out["members"], rights=out["rights"],
                 video_access=out["video_access"])
    return jsonify(out), 201


async def _group(s, group_id: int) -> Group:
    group = await s.get(Group, group_id)
    if group is None:
        raise NotFound(f"no group {group_id}")
    return group


@api.get("/groups/<int:group_id>")
@require("users.manage")
@responds(200, GroupOut, description="The group.")
async def get_group(group_id: int):
    """One group."""
    async with get_context().db.session() as s:
        (out,) = await group_json(s, [await _group(s, group_id)])
    return jsonify(out)


@api.patch("/groups/<int:group_id>")
@require("users.manage")
@body(GroupChange)
@responds(200, GroupOut, description="The group, changed.", errors=(409,))
async def change_group(group_id: int):
    """Rename a group, or replace its members, rights or video access."""
    ctx = get_context()
    data = await read_body(GroupChange)
    async with ctx.db.session() as s:
        group = await _group(s, group_id)
        if group.builtin == "admin" and data.rights is not None:
            raise Conflict("the Administrators group holds every right; make another group for fewer")
        if group.builtin == "admin" and data.members is not None and caller().user.id not in data.members:
            raise Conflict("you cannot take yourself out of the Administrators group")
        await _check_refs(s, data.members, data.rights, data.video_access)
        (before,) = await group_json(s, [group])
        if data.name is not None:
            group.name = data.name
        if data.description is not None:
            group.description = data.description
        s.add(group)
        await _replace(s, group, data.members, data.rights, data.video_access)
        try:
            await s.commit()
        except IntegrityError as err:
            raise Conflict(f"a group named {data.name!r} already exists") from err
        await s.refresh(group)
        (after,) = await group_json(s, [group])
    changed = {k: after[k] for k in ("name", "members", "rights", "video_access") if before[k] != after[k]}
    _changed_people(ctx, set(before["members"]) | set(after["members"]))
    await _audit("group.change", group_id, **changed)
    return jsonify(after)


@api.delete("/groups/<int:group_id>")
@require("users.manage")
@responds(204, media_type=None, description="The group is gone; its members keep their other groups.",
          errors=(409,))
async def delete_group(group_id: int):
    """Delete a group (not a built-in one): its members lose what it gave them."""
    ctx = get_context()
    async with ctx.db.session() as s:
        group = await _group(s, group_id)
        if group.builtin:
            raise Conflict(f"{group.name!r} is built in and cannot be deleted")
        (before,) = await group_json(s, [group])
        await s.delete(group)
        await s.commit()
    _changed_people(ctx, set(before["members"]))
    await _audit("group.delete", group_id, name=before["name"])
    return "", 204


class UserRights(RequestModel):
    """Body of ``PUT /api/v1/users/{id}/rights``: the user's own grants, replacing those they had."""

    model_config = ConfigDict(extra="forbid")
    rights: list[Grant] = Field(max_length=500, description="Rights given to this user alone, on top of their "
                                                            "groups' (own grants can only add).")


async def _own_rights(s, user_id: int) -> list[dict[str, Any]]:
    rows = (await s.exec(select(Right.right, Right.room_id).where(Right.user_id == user_id)
                         .order_by(Right.right, Right.room_id))).all()
    return [{"right": right, "room_id": room_id} for right, room_id in rows]


async def _user(s, user_id: int) -> User:
    user = await s.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


@api.get("/users/<int:user_id>/rights")
@require("users.manage")
@responds(200, list[GrantOut], description="The user's own grants (not those of their groups).")
async def get_user_rights(user_id: int):
    """The rights given to this user alone."""
    async with get_context().db.session() as s:
        await _user(s, user_id)
        return jsonify(await _own_rights(s, user_id))


@api.put("/users/<int:user_id>/rights")
@require("users.manage")
@body(UserRights)
@responds(200, list[GrantOut], description="The user's own grants, as now stored.")
async def set_user_rights(user_id: int):
    """Replace the rights given to this user alone (their groups' rights are not touched)."""
    ctx = get_context()
    data = await read_body(UserRights)
    async with ctx.db.session() as s:
        user = await _user(s, user_id)
        await _check_refs(s, None, data.rights, None)
        before = await _own_rights(s, user_id)
        await s.exec(sa.delete(Right).where(Right.user_id == user_id))
        unique = {(g.right, g.room_id) for g in data.rights}
        s.add_all([Right(user_id=user_id, right=r, room_id=room) for r, room in sorted(unique, key=str)])
        await s.commit()
        after = await _own_rights(s, user_id)
    _changed_people(ctx, {user_id})
    if before != after:
        await ctx.audit.record("user.rights", actor=caller().user, target_type="user", target_id=user_id,
                               detail={"username": user.username, "rights": after}, remote_addr=remote_addr())
    return jsonify(after)
