"""Sharing a recording with users and groups, view-only or with download, maybe until a date.

Who may share: someone with ``recordings.share`` who sees the recording other than through a
share (a share is not passed on). Sharing with download needs the sharer's own download. The
recording's shares are listed to those who may share it; a share is ended by its sharer or by
anyone who may share the recording. Everything is audited.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, ConfigDict, Field, model_validator
from quart import jsonify
from sqlmodel import select

from ..auth.access import may_share, recording_reach
from ..context import get_context
from ..db.models import Group, Recording, RecordingShare, User
from ..db.types import utcnow
from ..errors import Forbidden, NotFound, ValidationFailed
from . import api
from .guard import Id, RequestModel, body, caller, read_body, remote_addr, require, responds
from .recordings import visible_recording
from .schemas import Answer


class ShareCreate(RequestModel):
    """Body of ``POST /api/v1/recordings/{id}/shares``: with one user or one group."""

    model_config = ConfigDict(extra="forbid")
    user_id: Id | None = None
    group_id: Id | None = None
    can_download: bool = Field(False, description="View and download; false: view only.")
    until: Annotated[AwareDatetime, Field(strict=False)] | None = Field(
        None, description="The share ends then (ISO 8601 with a zone); null: no end.")

    @model_validator(mode="after")
    def _exactly_one(self) -> "ShareCreate":
        if (self.user_id is None) == (self.group_id is None):
            raise ValueError("give user_id or group_id (one of them)")
        return self


class ShareTargetsOut(Answer):
    """Who one may share with: people (not oneself) and groups, by name."""

    users: list[dict]
    groups: list[dict]


class ShareOut(Answer):
    """A share of a recording."""

    id: int
    recording_id: int
    user_id: int | None
    group_id: int | None
    name: str
    can_download: bool
    until: str | None
    shared_by_id: int | None
    created_at: str


def _share_json(share: RecordingShare, name: str) -> dict:
    return {"id": share.id, "recording_id": share.recording_id, "user_id": share.user_id,
            "group_id": share.group_id, "name": name, "can_download": share.can_download,
            "until": share.until.isoformat() if share.until else None, "shared_by_id": share.shared_by_id,
            "created_at": share.created_at.isoformat()}


async def _shareable(recording_id: int) -> Recording:
    # Seen (else 404) and shareable by the caller (else 403).
    rec = await visible_recording(recording_id)
    if not await may_share(get_context().db, caller().access, rec):
        raise Forbidden(f"you may not share recording {recording_id}")
    return rec


@api.get("/share-targets")
@require("recordings.share")
@responds(200, ShareTargetsOut, description="The people and groups one may share with.")
async def share_targets():
    """Everyone enabled but the caller, and every group, by name: what a share form offers."""
    me = caller().user.id
    async with get_context().db.session() as s:
        users = (await s.exec(select(User.id, User.username, User.display_name)
                              .where(User.disabled == False, User.id != me)  # noqa: E712
                              .order_by(User.username))).all()
        groups = (await s.exec(select(Group.id, Group.name).order_by(Group.name))).all()
    return jsonify({"users": [{"id": i, "name": d or u, "username": u} for i, u, d in users],
                    "groups": [{"id": i, "name": n} for i, n in groups]})


@api.get("/recordings/<int:recording_id>/shares")
@require("recordings.share")
@responds(200, list[ShareOut], description="Who the recording is shared with.")
async def list_shares(recording_id: int):
    """The recording's shares, ended ones included (their ``until`` is past)."""
    await _shareable(recording_id)
    async with get_context().db.session() as s:
        rows = (await s.exec(select(RecordingShare, User.display_name, User.username, Group.name)
                             .join(User, User.id == RecordingShare.user_id, isouter=True)
                             .join(Group, Group.id == RecordingShare.group_id, isouter=True)
                             .where(RecordingShare.recording_id == recording_id)
                             .order_by(RecordingShare.id))).all()
    return jsonify([_share_json(share, group or display or username or "")
                    for share, display, username, group in rows])


@api.post("/recordings/<int:recording_id>/shares")
@require("recordings.share")
@body(ShareCreate)
@responds(201, ShareOut, description="The share.")
async def create_share(recording_id: int):
    """Share the recording with a user or a group (again with the same one: the new terms replace the old)."""
    ctx = get_context()
    data = await read_body(ShareCreate)
    rec = await _shareable(recording_id)
    who = caller()
    if data.can_download and await recording_reach(ctx.db, who.access, rec) != "download":
        raise Forbidden("you may not download this recording, so you cannot share it with download")
    if data.until is not None and data.until <= utcnow():
        raise ValidationFailed("the share would end before it starts", fields={"until": "must be in the future"})
    async with ctx.db.session() as s:
        target = await s.get(User, data.user_id) if data.user_id else await s.get(Group, data.group_id)
        if target is None:
            field = "user_id" if data.user_id else "group_id"
            raise ValidationFailed(f"no {field[:-3]} {data.user_id or data.group_id}", fields={field: "unknown"})
        name = target.name if isinstance(target, Group) else (target.display_name or target.username)
        same = (RecordingShare.user_id == data.user_id) if data.user_id else (RecordingShare.group_id == data.group_id)
        share = (await s.exec(select(RecordingShare).where(RecordingShare.recording_id == recording_id, same))).first()
        share = share or RecordingShare(recording_id=recording_id, user_id=data.user_id, group_id=data.group_id)
        share.can_download, share.until, share.shared_by_id = data.can_download, data.until, who.user.id
        s.add(share)
        await s.commit()
        await s.refresh(share)
    await ctx.audit.record("recording.share", actor=who.user, target_type="recording", target_id=recording_id,
                           detail={"share_id": share.id, "user_id": data.user_id, "group_id": data.group_id,
                                   "can_download": data.can_download,
                                   "until": data.until.isoformat() if data.until else None},
                           remote_addr=remote_addr())
    return jsonify(_share_json(share, name)), 201


@api.delete("/shares/<int:share_id>")
@require("recordings.share")
@responds(204, media_type=None, description="The share has ended.")
async def delete_share(share_id: int):
    """End a share: its sharer, or anyone who may share the recording."""
    ctx = get_context()
    async with ctx.db.session() as s:
        share = await s.get(RecordingShare, share_id)
    if share is None:
        raise NotFound(f"no share {share_id}")
    try:
        rec = await visible_recording(share.recording_id)
    except NotFound:
        raise NotFound(f"no share {share_id}") from None
    who = caller()
    if share.shared_by_id != who.user.id and not await may_share(ctx.db, who.access, rec):
        raise Forbidden(f"only its sharer, or someone who may share the recording, may end share {share_id}")
    async with ctx.db.session() as s:
        row = await s.get(RecordingShare, share_id)
        if row is not None:
            await s.delete(row)
            await s.commit()
    await ctx.audit.record("recording.unshare", actor=who.user, target_type="recording",
                           target_id=share.recording_id,
                           detail={"share_id": share_id, "user_id": share.user_id, "group_id": share.group_id},
                           remote_addr=remote_addr())
    return "", 204
