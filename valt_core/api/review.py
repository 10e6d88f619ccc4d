"""Finding and looking after recordings: the Review page's list and search, renaming, notes,
deleting, thumbnails, and the per-track segment lists the player streams from.

Who may see a recording is asked of :mod:`valt_core.auth.access` only: lists add its SQL
condition, single recordings go through :func:`~valt_core.api.recordings.visible_recording`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from pydantic import Field
from quart import Response, jsonify
from sqlmodel import select

from ..auth.access import recording_filter, shared_with_filter
from ..context import get_context
from ..db.models import Clip, ClipFile, Gap, Marker, Recording, Room, Segment, Track, User
from ..errors import Conflict, Forbidden, NotFound, StorageError, ValidationFailed
from ..media.stills import jpeg_from_media
from . import api
from .guard import (
    Id,
    QueryModel,
    RequestModel,
    body,
    caller,
    query,
    read_body,
    read_query,
    remote_addr,
    require,
    responds,
)
from .media import send_storage_object
from .recordings import clip_json, recording_json, visible_recording
from .schemas import ClipOut, RecordingOut, RecordingPage, TrackSegmentsOut

log = logging.getLogger(__name__)

RECORDING_STATES = ("recording", "paused", "stopped", "interrupted", "failed")
RUNNING_STATES = ("recording", "paused")
#: Longest side of a thumbnail, in pixels.
THUMBNAIL_WIDTH = 480


class RecordingSearch(QueryModel):
    """Query of ``GET /api/v1/recordings``: search, filters and the page."""

    q: str | None = Field(None, max_length=200,
                          description="Words in the name, notes, room, author or a marker's text.")
    room_id: Id | None = Field(None, description="Only this room's recordings.")
    author_id: Id | None = Field(None, description="Only recordings made by this user.")
    state: Literal[RECORDING_STATES] | None = Field(None, description="Only recordings in this state.")  # type: ignore[valid-type]
    from_: datetime | None = Field(None, alias="from", description="Started at or after this time.")
    to: datetime | None = Field(None, description="Started before this time.")
    shared: Literal["me"] | None = Field(None, description="`me`: only recordings shared with me (or my groups).")
    limit: int = Field(50, ge=1, le=200, description="Recordings per page.")
    offset: int = Field(0, ge=0, le=10_000_000, description="Recordings to skip.")


class RecordingChange(RequestModel):
    """Body of ``PATCH /api/v1/recordings/{id}``: the fields to change."""

    name: str | None = Field(None, max_length=200)
    notes: str | None = Field(None, max_length=20_000)
    author_id: Id | None = Field(None, description="A new author (needs `recordings.change_author`): "
                                                   "who sees the recording changes with it.")


def _like(text: str) -> str:
    # The words are matched literally: % and _ typed by a person are not wildcards.
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _search_conditions(wanted: RecordingSearch) -> list:
    access = caller().access
    conditions = [recording_filter(access)]
    if wanted.shared == "me":
        conditions.append(shared_with_filter(access))
    if wanted.room_id is not None:
        conditions.append(Recording.room_id == wanted.room_id)
    if wanted.author_id is not None:
        conditions.append(Recording.author_id == wanted.author_id)
    if wanted.state is not None:
        conditions.append(Recording.state == wanted.state)
    if wanted.from_ is not None:
        conditions.append(Recording.started_at >= wanted.from_)
    if wanted.to is not None:
        conditions.append(Recording.started_at < wanted.to)
    # Every word must appear somewhere: "smith door" finds a recording of Smith with a marker "door".
    for word in (wanted.q or "").split()[:10]:
        pattern = _like(word)
        # Uncorrelated IN (...) subqueries: each table is scanned once per word, not once per recording.
        # LIKE ignores case on both databases (SQLite for ASCII; MariaDB's _ci collations), and
        # ILIKE's lower() on every row would cost more than the match.
        conditions.append(sa.or_(
            Recording.name.like(pattern, escape="\\"),
            Recording.notes.like(pattern, escape="\\"),
            Recording.room_id.in_(select(Room.id).where(Room.name.like(pattern, escape="\\"))),
            Recording.author_id.in_(select(User.id).where(sa.or_(User.username.like(pattern, escape="\\"),
                                                                 User.display_name.like(pattern, escape="\\")))),
            Recording.id.in_(select(Marker.recording_id).where(Marker.event.like(pattern, escape="\\"))),
        ))
    return conditions


async def _page_details(s, ids: list[int]) -> dict[str, dict[int, object]]:
    """Per recording of a page: cameras, recorded length, gap and marker counts (four queries)."""
    tracks = (await s.exec(select(Track.recording_id, Track.camera_name)
                           .where(Track.recording_id.in_(ids)).order_by(Track.id))).all()
    ends = (await s.exec(select(Track.recording_id, sa.func.max(Segment.start_s + Segment.duration_s))
                         .join(Segment, Segment.track_id == Track.id)
                         .where(Track.recording_id.in_(ids), Segment.complete == sa.true())
                         .group_by(Track.recording_id))).all()
    gaps = (await s.exec(select(Track.recording_id, sa.func.count(Gap.id)).join(Gap, Gap.track_id == Track.id)
                         .where(Track.recording_id.in_(ids)).group_by(Track.recording_id))).all()
    markers = (await s.exec(select(Marker.recording_id, sa.func.count(Marker.id))
                            .where(Marker.recording_id.in_(ids)).group_by(Marker.recording_id))).all()
    cameras: dict[int, list[str]] = {}
    for rec_id, name in tracks:
        cameras.setdefault(rec_id, []).append(name)
    return {"cameras": cameras, "ends": dict(ends), "gaps": dict(gaps), "markers": dict(markers)}


@api.get("/recordings")
@require("recordings.view")
@query(RecordingSearch)
@responds(200, RecordingPage, description="One page of recordings, newest first, and how many match.")
async def list_recordings():
    """Recordings the caller may see, newest first: search (``q``), filters and pages."""
    ctx = get_context()
    wanted = read_query(RecordingSearch)
    conditions = _search_conditions(wanted)
    page = (select(Recording, Room.name, User.username, User.display_name)
            .join(Room, Room.id == Recording.room_id, isouter=True)
            .join(User, User.id == Recording.author_id, isouter=True)
            .where(*conditions)
            .order_by(Recording.started_at.desc(), Recording.id.desc())
            .limit(wanted.limit).offset(wanted.offset))
    async with ctx.db.session() as s:
        rows = (await s.exec(page)).all()
        if 0 < len(rows) < wanted.limit or (not rows and wanted.offset == 0):
            # A short page is the last one, so it tells the total: a search scans the tables once, not twice.
            total = wanted.offset + len(rows)
        else:
            total = (await s.exec(select(sa.func.count()).select_from(Recording).where(*conditions))).one()
        details = await _page_details(s, [r.id for r, *_ in rows]) if rows else {}
    items = []
    for rec, room_name, username, display_name in rows:
        session = ctx.media.sessions.get(rec.id)
        length = session.clock.now() if session else details["ends"].get(rec.id) or 0.0
        items.append({
            "id": rec.id, "name": rec.name, "room_id": rec.room_id, "room": room_name,
            "author_id": rec.author_id, "author": (display_name or username) if username else None,
            "state": rec.state, "started_at": rec.started_at.isoformat(),
            "stopped_at": rec.stopped_at.isoformat() if rec.stopped_at else None,
            "duration_s": round(float(length), 3), "cameras": details["cameras"].get(rec.id, []),
            "gaps": details["gaps"].get(rec.id, 0), "markers": details["markers"].get(rec.id, 0),
            "notes": rec.notes, "legal_hold": rec.legal_hold,
            "thumbnail_url": f"/api/v1/recordings/{rec.id}/thumbnail",
        })
    return jsonify({"items": items, "total": total, "limit": wanted.limit, "offset": wanted.offset})


@api.patch("/recordings/<int:recording_id>")
@require("recordings.edit")
@body(RecordingChange)
@responds(200, RecordingOut, description="The recording, changed.")
async def change_recording(recording_id: int):
    """Rename a recording, edit its notes, or give it another author."""
    ctx = get_context()
    data = await read_body(RecordingChange)
    rec = await visible_recording(recording_id)
    if not caller().access.allows("recordings.edit", rec.room_id or 0):
        raise Forbidden(f"you may not change recordings in room {rec.room_id}")
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if "author_id" in changes and not caller().access.allows("recordings.change_author"):
        raise Forbidden("changing a recording's author needs the right 'recordings.change_author'")
    if changes:
        async with ctx.db.session() as s:
            rec = await s.get(Recording, recording_id)
            if rec is None:
                raise NotFound(f"no recording {recording_id}")
            if "author_id" in changes and await s.get(User, changes["author_id"]) is None:
                raise ValidationFailed(f"no user {changes['author_id']}", fields={"author_id": "unknown user"})
            before = {name: getattr(rec, name) for name in changes}
            for name, value in changes.items():
                setattr(rec, name, value)
            s.add(rec)
            await s.commit()
        # The new name is worth keeping; notes may be long and sensitive: only that they changed.
        detail = {"fields": sorted(changes)}
        if "name" in changes:
            detail.update(name_before=before["name"], name=changes["name"])
        if "author_id" in changes:
            detail.update(author_before=before["author_id"], author_id=changes["author_id"])
        await ctx.audit.record("recording.change", actor=caller().user, target_type="recording",
                               target_id=recording_id, detail=detail, remote_addr=remote_addr())
    return jsonify(await recording_json(recording_id))


@api.delete("/recordings/<int:recording_id>")
@require("recordings.delete")
@responds(204, media_type=None, description="The recording and its media are gone.", errors=(409, 507))
async def delete_recording(recording_id: int):
    """Delete a stopped recording: its segments, clips and thumbnail leave storage, then its rows.

    Refused while it records or while it is under legal hold. When storage fails to delete an
    object the recording is kept (with what could not be deleted) and the call may be repeated.
    """
    ctx = get_context()
    rec = await visible_recording(recording_id)
    if rec.state in RUNNING_STATES or recording_id in ctx.media.sessions:
        raise Conflict(f"recording {recording_id} is {rec.state}: stop it before deleting it")
    if rec.legal_hold:
        raise Conflict(f"recording {recording_id} is under legal hold and cannot be deleted")
    async with ctx.db.session() as s:
        track_ids = list((await s.exec(select(Track.id).where(Track.recording_id == recording_id))).all())
        keys = list((await s.exec(select(Segment.key).where(Segment.track_id.in_(track_ids))))) if track_ids else []
        clip_keys = list((await s.exec(select(ClipFile.key).join(Clip, Clip.id == ClipFile.clip_id)
                                       .where(Clip.recording_id == recording_id))).all())
        sizes = (await s.exec(select(sa.func.count(Segment.id), sa.func.coalesce(sa.func.sum(Segment.bytes), 0))
                              .where(Segment.track_id.in_(track_ids or [0])))).one()
    failed = []
    for key in [*keys, *clip_keys]:
        try:
            await ctx.media.storage.delete_everywhere(key)
        except Exception as err:  # noqa: BLE001 - counted and answered below, never half-silent
            log.warning("recording %s: could not delete %s: %s", recording_id, key, err)
            failed.append(key)
    if failed:
        raise StorageError(f"{len(failed)} of {len(keys) + len(clip_keys)} stored objects of recording "
                           f"{recording_id} could not be deleted; the recording is kept: try again")
    ctx.review.forget_recording(recording_id, track_ids)
    async with ctx.db.session() as s:
        # Child rows first: SQLite connections made by a migration may have foreign keys off.
        for table, column, values in ((Segment, Segment.track_id, track_ids), (Gap, Gap.track_id, track_ids)):
            if values:
                await s.exec(sa.delete(table).where(column.in_(values)))
        clip_ids = list((await s.exec(select(Clip.id).where(Clip.recording_id == recording_id))).all())
        if clip_ids:
            await s.exec(sa.delete(ClipFile).where(ClipFile.clip_id.in_(clip_ids)))
        for table, column in ((Clip, Clip.recording_id), (Marker, Marker.recording_id), (Track, Track.recording_id)):
            await s.exec(sa.delete(table).where(column == recording_id))
        await s.exec(sa.delete(Recording).where(Recording.id == recording_id))
        await s.commit()
    await ctx.audit.record("recording.delete", actor=caller().user, target_type="recording",
                           target_id=recording_id, remote_addr=remote_addr(),
                           detail={"name": rec.name, "room_id": rec.room_id, "segments": sizes[0],
                                   "bytes": int(sizes[1]), "clip_files": len(clip_keys)})
    return Response(status=204)


class LegalHold(RequestModel):
    """Body of ``PUT /api/v1/recordings/{id}/legal-hold``."""

    held: bool = Field(description="true: under legal hold (nobody can delete it); false: lifted.")


@api.put("/recordings/<int:recording_id>/legal-hold")
@require("recordings.hold")
@body(LegalHold)
@responds(200, RecordingOut, description="The recording, with its hold as now set.", errors=(507,))
async def set_legal_hold(recording_id: int):
    """Put a recording under legal hold, or lift it; a running one too.

    While held, Valt refuses to delete it; a store that can hold objects itself (S3 with Object
    Lock) holds each of its segments and clip files too, so not even a delete made directly at
    the store removes them. Segments a running recording finishes later are held as they are
    indexed.
    """
    ctx = get_context()
    data = await read_body(LegalHold)
    rec = await visible_recording(recording_id)
    if not caller().access.allows("recordings.hold", rec.room_id or 0):
        raise Forbidden(f"you may not hold recordings in room {rec.room_id}")
    held_in_store = 0
    if data.held:
        # The flag first: from here on Valt refuses to delete it, whatever the store does, and
        # the index holds every segment finished after this (see RecordingIndex._hold).
        await _set_hold_flag(recording_id, True)
    keys = await _held_objects(recording_id)
    try:
        for key in keys:
            held_in_store += bool(await ctx.media.storage.set_legal_hold(key, data.held))
        if not data.held:
            await _set_hold_flag(recording_id, False)
            # A running recording may have finished a segment (held by the index) meanwhile.
            for key in sorted(set(await _held_objects(recording_id)) - set(keys)):
                await ctx.media.storage.set_legal_hold(key, False)
    except StorageError as err:
        if not data.held:
            await _set_hold_flag(recording_id, True)
        raise StorageError(f"recording {recording_id}: the store did not {'hold' if data.held else 'release'} "
                           f"every object ({err.message}); Valt's hold is {'on' if data.held else 'still on'}: "
                           "try again") from err
    await ctx.audit.record("recording.legal_hold" if data.held else "recording.legal_hold_lifted",
                           actor=caller().user, target_type="recording", target_id=recording_id,
                           remote_addr=remote_addr(),
                           detail={"objects": len(keys), "held_in_store": held_in_store})
    return jsonify(await recording_json(recording_id))


async def _held_objects(recording_id: int) -> list[str]:
    # The finished segments and the clip files: a segment still being written is not an object yet.
    async with get_context().db.session() as s:
        track_ids = list((await s.exec(select(Track.id).where(Track.recording_id == recording_id))).all())
        keys = list((await s.exec(select(Segment.key).where(Segment.track_id.in_(track_ids or [0]),
                                                            Segment.complete == sa.true()))).all())
        keys += list((await s.exec(select(ClipFile.key).join(Clip, Clip.id == ClipFile.clip_id)
                                   .where(Clip.recording_id == recording_id))).all())
    return keys


async def _set_hold_flag(recording_id: int, held: bool) -> None:
    async with get_context().db.session() as s:
        row = await s.get(Recording, recording_id)
        if row is None:
            raise NotFound(f"no recording {recording_id}")
        row.legal_hold = held
        s.add(row)
        await s.commit()


async def _first_segment(recording_id: int) -> Segment | None:
    # The still comes from the first track that has a finished segment, from its first one.
    async with get_context().db.session() as s:
        return (await s.exec(select(Segment).join(Track, Track.id == Segment.track_id)
                             .where(Track.recording_id == recording_id, Segment.complete == sa.true())
                             .order_by(Track.id, Segment.seq).limit(1))).first()


@api.get("/recordings/<int:recording_id>/thumbnail")
@require("recordings.view")
@responds(200, media_type="image/jpeg", description="A JPEG of the first track's first keyframe.")
async def recording_thumbnail(recording_id: int):
    """A still picture of the recording (the first track's first keyframe), made once and cached."""
    ctx = get_context()
    await visible_recording(recording_id)
    seg = await _first_segment(recording_id)
    if seg is None:
        raise NotFound(f"recording {recording_id} has no finished video yet")

    async def make() -> bytes:
        data = b"".join([chunk async for chunk in ctx.media.storage.read(seg.key)])
        return await asyncio.to_thread(jpeg_from_media, data, THUMBNAIL_WIDTH)

    jpeg = await ctx.review.thumbnail(recording_id, seg.key, make)
    response = Response(jpeg, mimetype="image/jpeg")
    # A person's browser may keep it for a while; no shared cache may (it shows the session).
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


@api.get("/recordings/<int:recording_id>/tracks/<int:track_id>/segments")
@require("recordings.view")
@responds(200, TrackSegmentsOut, description="The track's finished segments in order, with their times.")
async def track_segment_list(recording_id: int, track_id: int):
    """A track's segments as the player streams them: each a whole fMP4 placed at its ``start_s``."""
    ctx = get_context()
    await visible_recording(recording_id)
    async with ctx.db.session() as s:
        track = await s.get(Track, track_id)
        if track is None or track.recording_id != recording_id:
            raise NotFound(f"recording {recording_id} has no track {track_id}")
        # Columns, not objects: a two-hour track has over a thousand segments.
        segs = (await s.exec(select(Segment.seq, Segment.start_s, Segment.duration_s, Segment.bytes, Segment.key)
                             .where(Segment.track_id == track_id, Segment.complete == sa.true())
                             .order_by(Segment.seq))).all()
        gaps = (await s.exec(select(Gap).where(Gap.track_id == track_id).order_by(Gap.start_s))).all()
    mime = await ctx.review.mime_type(segs[0].key, ctx.media.storage) if segs else None
    return jsonify({
        "recording_id": recording_id, "track_id": track_id, "camera_name": track.camera_name,
        "mime_type": mime, "has_audio": bool(track.audio_codec),
        "segments": [{"seq": x.seq, "start_s": round(x.start_s, 3), "duration_s": round(x.duration_s, 3),
                      "bytes": x.bytes,
                      "url": f"/api/v1/recordings/{recording_id}/tracks/{track_id}/segments/{x.seq}"}
                     for x in segs],
        "gaps": [{"start_s": round(g.start_s, 3), "end_s": None if g.end_s is None else round(g.end_s, 3),
                  "reason": g.reason} for g in gaps],
    })


@api.get("/recordings/<int:recording_id>/tracks/<int:track_id>/segments/<int:seq>")
@require("recordings.view")
@responds(200, media_type=("video/mp4", "video/quicktime"), description="The segment as it is stored.")
@responds(206, media_type=("video/mp4", "video/quicktime"), description="A byte range of it.", errors=(416,))
@responds(302, media_type=None, description="With `[storage] presigned_playback_s`: the segment, from the "
                                            "store by a short-lived signed URL.")
async def track_segment(recording_id: int, track_id: int, seq: int):
    """One stored segment, byte for byte (a fragmented MP4 with its own initialisation)."""
    ctx = get_context()
    await visible_recording(recording_id)
    async with ctx.db.session() as s:
        seg = (await s.exec(select(Segment).join(Track, Track.id == Segment.track_id)
                            .where(Segment.track_id == track_id, Segment.seq == seq,
                                   Track.recording_id == recording_id, Segment.complete == sa.true()))).first()
    if seg is None:
        raise NotFound(f"track {track_id} of recording {recording_id} has no finished segment {seq}")
    await ctx.review.note_playback(caller().user, recording_id, track_id, seg.start_s,
                                        seg.start_s + seg.duration_s, remote_addr())
    mimetype = "video/quicktime" if seg.key.endswith(".mov") else "video/mp4"
    # With presigned playback the store sends the bytes (a 302); Valt's checks and audit are done.
    return await send_storage_object(ctx.media.storage, seg.key, mimetype,
                                     presigned_s=ctx.settings.storage.presigned_playback_s)


@api.get("/recordings/<int:recording_id>/clips")
@require("recordings.view")
@responds(200, list[ClipOut], description="The recording's clips, newest first, with who made them.")
async def list_recording_clips(recording_id: int):
    """The clips cut from a recording: state, author, when, and each file's size and SHA-256."""
    ctx = get_context()
    await visible_recording(recording_id)
    async with ctx.db.session() as s:
        rows = (await s.exec(select(Clip.id, User.username, User.display_name)
                             .join(User, User.id == Clip.author_id, isouter=True)
                             .where(Clip.recording_id == recording_id).order_by(Clip.id.desc()).limit(500))).all()
    out = []
    for clip_id, username, display_name in rows:
        item = await clip_json(clip_id)
        item["author"] = (display_name or username) if username else None
        out.append(item)
    return jsonify(out)
