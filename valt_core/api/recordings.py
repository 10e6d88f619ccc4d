"""Recording rooms, reviewing recordings, and cutting clips."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import sqlalchemy as sa
from pydantic import AfterValidator, Field
from quart import jsonify, request
from sqlmodel import select

from ..auth.access import recording_reach
from ..context import get_context
from ..db.models import Clip, ClipFile, Gap, Marker, Recording, Segment, Track, User
from ..errors import Conflict, Forbidden, NotFound
from . import api
from .guard import (
    Id,
    QueryModel,
    RequestModel,
    body,
    caller,
    check_room,
    query,
    read_body,
    read_query,
    remote_addr,
    require,
    responds,
)
from .media import opens_playback, send_local_file, send_storage_object, send_stream
from .schemas import ClipOut, RecordingOut


class RecordStart(RequestModel):
    """Body of ``POST /api/v1/rooms/{id}/record/start`` (optional)."""

    name: str = Field("", max_length=200)


def _each_once(ids: list[int]) -> list[int]:
    if len(set(ids)) != len(ids):
        raise ValueError("list each track once")
    return ids


#: The tracks a clip is cut from: at least one, each once.
TrackIds = Annotated[list[Id], Field(min_length=1, max_length=64, json_schema_extra={"uniqueItems": True}),
                     AfterValidator(_each_once)]


class ClipRequest(RequestModel):
    """Body of ``POST /api/v1/recordings/{id}/clips``: seconds from the recording start."""

    start_s: float
    end_s: float
    exact: bool = False
    track_ids: TrackIds | None = Field(None, description="The tracks to cut, each once; all tracks when left out.")


class ClipDownload(QueryModel):
    """Query of ``GET /api/v1/clips/{id}/download``."""

    format: Literal["auto", "zip"] = Field("auto", description="`auto`: the MP4 itself for a one-file clip, "
                                                              "a zip for several; `zip`: always a zip.")


class MediaRange(QueryModel):
    """Query of a track's media: a part of the recording, in seconds on its clock."""

    start: float | None = Field(None, description="From this second (the keyframe at or before it).")
    end: float | None = Field(None, description="Up to this second.")


async def visible_recording(recording_id: int, *, download: bool = False) -> Recording:
    """The recording, if the caller may see it; otherwise 404 (its existence is not revealed).

    With ``download``, the caller must also be allowed its media as files (403 otherwise: a
    view-only share shows the recording but does not hand it out).
    """
    ctx = get_context()
    async with ctx.db.session() as s:
        rec = await s.get(Recording, recording_id)
    reach = None if rec is None else await recording_reach(ctx.db, caller().access, rec)
    if reach is None:
        raise NotFound(f"no recording {recording_id}")
    if download and reach != "download":
        raise Forbidden(f"you may watch recording {recording_id} but not download it")
    return rec


async def recording_json(recording_id: int) -> dict:
    """A recording with its tracks, their segments summary and gaps."""
    ctx = get_context()
    async with ctx.db.session() as s:
        rec = await s.get(Recording, recording_id)
        if rec is None:
            raise NotFound(f"no recording {recording_id}")
        tracks = (await s.exec(select(Track).where(Track.recording_id == recording_id).order_by(Track.id))).all()
        # Summed in SQL: a two-hour recording has thousands of segments per track.
        sums = {row[0]: row[1:] for row in (await s.exec(
            select(Segment.track_id, sa.func.count(Segment.id), sa.func.coalesce(sa.func.sum(Segment.bytes), 0),
                   sa.func.min(Segment.start_s), sa.func.max(Segment.start_s + Segment.duration_s),
                   sa.func.coalesce(sa.func.sum(Segment.duration_s), 0.0))
            .where(Segment.track_id.in_([t.id for t in tracks] or [0]), Segment.complete == sa.true())
            .group_by(Segment.track_id))).all()}
        gaps_of: dict[int, list[Gap]] = {}
        for g in (await s.exec(select(Gap).where(Gap.track_id.in_([t.id for t in tracks] or [0]))
                               .order_by(Gap.start_s, Gap.id))).all():
            gaps_of.setdefault(g.track_id, []).append(g)
        out_tracks = []
        for t in tracks:
            count, size, first, last, length = sums.get(t.id, (0, 0, None, None, 0.0))
            out_tracks.append({
                "id": t.id, "camera_id": t.camera_id, "camera_name": t.camera_name, "state": t.state,
                "video_codec": t.video_codec, "audio_codec": t.audio_codec, "width": t.width, "height": t.height,
                "segments": count, "bytes": int(size),
                "start_s": round(first or 0.0, 3), "end_s": round(last or 0.0, 3), "duration_s": round(length, 3),
                "gaps": [{"start_s": round(g.start_s, 3), "end_s": None if g.end_s is None else round(g.end_s, 3),
                          "reason": g.reason} for g in gaps_of.get(t.id, [])],
            })
    session = ctx.media.sessions.get(recording_id)
    spooling = ctx.media.cluster.storage_of_recording(recording_id) if rec.state in ("recording", "paused") else None
    return {
        "id": rec.id, "room_id": rec.room_id, "name": rec.name, "state": rec.state, "author_id": rec.author_id,
        "started_at": rec.started_at.isoformat(), "stopped_at": rec.stopped_at.isoformat() if rec.stopped_at else None,
        "elapsed_s": round(session.clock.now(), 3) if session else None,
        "notes": rec.notes, "legal_hold": rec.legal_hold, "tracks": out_tracks,
        # While the store is away the recording goes on into the media server's spool: said here.
        "storage_status": "spooling" if spooling else "ok",
        "storage_message": spooling.get("message") if spooling else None,
    }


async def _audit(action: str, recording_id: int, **detail) -> None:
    await get_context().audit.record(action, actor=caller().user, target_type="recording",
                                     target_id=recording_id, detail=detail, remote_addr=remote_addr())


def _running(room_id: int):
    session = get_context().media.session_for_room(room_id)
    if session is None:
        raise NotFound(f"room {room_id} is not being recorded")
    return session


@api.post("/rooms/<int:room_id>/record/start")
@require("recordings.record")
@body(RecordStart, optional=True)
@responds(201, RecordingOut, description="The recording, started.", errors=(409, 507))
async def record_start(room_id: int):
    """Start recording every camera of the room."""
    data = await read_body(RecordStart, optional=True)
    check_room("recordings.record", room_id)
    rec = await get_context().media.start_recording(room_id, caller().user, data.name)
    await _audit("recording.start", rec.id, room_id=room_id)
    return jsonify(await recording_json(rec.id)), 201


async def _act_on_running(room_id: int, action: str):
    # pause, resume and stop all act on the room's running recording the same way.
    check_room("recordings.record", room_id)
    session = _running(room_id)
    await getattr(get_context().media, f"{action}_recording")(session.recording_id)
    await _audit(f"recording.{action}", session.recording_id)
    return jsonify(await recording_json(session.recording_id))


@api.post("/rooms/<int:room_id>/record/pause")
@require("recordings.record")
@responds(200, RecordingOut, description="The recording.", errors=(409,))
async def record_pause(room_id: int):
    """Pause the room's recording (paused time is not recorded)."""
    return await _act_on_running(room_id, "pause")


@api.post("/rooms/<int:room_id>/record/resume")
@require("recordings.record")
@responds(200, RecordingOut, description="The recording.", errors=(409,))
async def record_resume(room_id: int):
    """Resume the room's paused recording."""
    return await _act_on_running(room_id, "resume")


@api.post("/rooms/<int:room_id>/record/stop")
@require("recordings.record")
@responds(200, RecordingOut, description="The recording.")
async def record_stop(room_id: int):
    """Stop the room's recording; every track's last segment is finished and indexed."""
    return await _act_on_running(room_id, "stop")


@api.get("/recordings/<int:recording_id>")
@require("recordings.view")
@responds(200, RecordingOut, description="The recording.")
async def get_recording(recording_id: int):
    """One recording: state, times, tracks, gaps."""
    await visible_recording(recording_id)
    return jsonify(await recording_json(recording_id))


@api.get("/recordings/<int:recording_id>/tracks/<int:track_id>/media")
@require("recordings.view")
@query(MediaRange)
@responds(200, media_type="video/mp4", description="The whole file.")
@responds(206, media_type="video/mp4", description="The byte range asked for.", errors=(409, 416))
async def track_media(recording_id: int, track_id: int):
    """The track as an MP4 a browser plays (Range supported); ``?start=&end=`` in seconds."""
    ctx = get_context()
    part = read_query(MediaRange)
    await visible_recording(recording_id, download=True)
    async with ctx.db.session() as s:
        track = await s.get(Track, track_id)
    if track is None or track.recording_id != recording_id:
        raise NotFound(f"recording {recording_id} has no track {track_id}")
    path = await ctx.media.playback.file_for(track_id, part.start, part.end)
    # A player fetches many ranges while seeking; the audit log notes the opening request.
    if opens_playback(request.headers.get("Range")):
        await ctx.audit.record("recording.play", actor=caller().user, target_type="track", target_id=track_id,
                               detail={"recording_id": recording_id}, remote_addr=remote_addr())
    return await send_local_file(path, "video/mp4")


async def clip_json(clip_id: int) -> dict:
    """A clip job: state, progress, and the files with their SHA-256."""
    ctx = get_context()
    async with ctx.db.session() as s:
        clip = await s.get(Clip, clip_id)
        if clip is None:
            raise NotFound(f"no clip {clip_id}")
        files = (await s.exec(select(ClipFile).where(ClipFile.clip_id == clip_id).order_by(ClipFile.id))).all()
    try:
        await visible_recording(clip.recording_id)
    except NotFound:
        raise NotFound(f"no clip {clip_id}") from None
    return {
        "id": clip.id, "recording_id": clip.recording_id, "start_s": clip.start_s, "end_s": clip.end_s,
        "exact": clip.exact, "state": clip.state, "progress": clip.progress, "error": clip.error or None,
        "queue_position": ctx.media.clips.queue_position(clip_id),
        "author_id": clip.author_id, "created_at": clip.created_at.isoformat(),
        "finished_at": clip.finished_at.isoformat() if clip.finished_at else None,
        "track_ids": [f.track_id for f in files],
        "files": [{"track_id": f.track_id, "name": f.key.rsplit("/", 1)[-1], "bytes": f.bytes, "sha256": f.sha256}
                  for f in files],
    }


@api.post("/recordings/<int:recording_id>/clips")
@require("clips.create")
@body(ClipRequest)
@responds(202, ClipOut, description="The clip job, queued.", errors=(409,))
async def create_clip(recording_id: int):
    """Start a clip job over all tracks (or ``track_ids``); poll ``GET /clips/{id}``."""
    data = await read_body(ClipRequest)
    rec = await visible_recording(recording_id, download=True)
    if not caller().access.allows("clips.create", rec.room_id or 0):
        raise Forbidden(f"you may not cut clips of recordings in room {rec.room_id}")
    clip = await get_context().media.clips.create(recording_id, data.start_s, data.end_s, data.exact,
                                                  data.track_ids, caller().user.id)
    await _audit("clip.create", recording_id, clip_id=clip.id, start_s=data.start_s, end_s=data.end_s)
    return jsonify(await clip_json(clip.id)), 202


@api.get("/clips/<int:clip_id>")
@require("recordings.view")
@responds(200, ClipOut, description="The clip job.")
async def get_clip(clip_id: int):
    """A clip job's state and progress, then its files' SHA-256."""
    return jsonify(await clip_json(clip_id))


@api.get("/clips/<int:clip_id>/download")
@require("recordings.view")
@query(ClipDownload)
@responds(200, media_type=("video/mp4", "application/zip"), errors=(409,),
          description="`video/mp4` for one file, `application/zip` for several.",
          headers={"Content-Disposition": "attachment, with filename and filename*"})
@responds(206, media_type="video/mp4", description="A byte range of the one MP4.", errors=(416,))
@responds(302, media_type=None, description="With `[storage] presigned_downloads_s`: the one MP4, "
                                            "from the store by a short-lived signed URL.")
async def download_clip(clip_id: int):
    """The clip: one MP4 for one track, a zip (with ``markers.json``) for several or with ``?format=zip``."""
    ctx = get_context()
    async with ctx.db.session() as s:
        clip = await s.get(Clip, clip_id)
        if clip is None:
            raise NotFound(f"no clip {clip_id}")
        files = (await s.exec(select(ClipFile).where(ClipFile.clip_id == clip_id).order_by(ClipFile.id))).all()
    try:
        await visible_recording(clip.recording_id, download=True)
    except NotFound:
        raise NotFound(f"no clip {clip_id}") from None
    if clip.state != "done":
        raise Conflict(f"clip {clip_id} is {clip.state}, not ready to download")
    # A player or download manager fetches a file in many ranges: one download, one entry.
    if opens_playback(request.headers.get("Range")):
        await ctx.audit.record("clip.download", actor=caller().user, target_type="clip", target_id=clip_id,
                               remote_addr=remote_addr())
    if len(files) == 1 and read_query(ClipDownload).format == "auto":
        return await send_storage_object(ctx.storage, files[0].key, "video/mp4",
                                         download_name=f"clip-{clip_id}-{files[0].key.rsplit('/', 1)[-1]}",
                                         presigned_s=ctx.settings.storage.presigned_downloads_s)
    # Streamed as it is packed: no copy of the clip in memory or in a cache file.
    extra = {"markers.json": await _clip_markers_json(clip)}
    return send_stream(ctx.media.clips.zip_stream(list(files), extra), "application/zip",
                       download_name=f"clip-{clip_id}.zip")


async def _clip_markers_json(clip: Clip) -> bytes:
    # The markers within the clip's range (a marker with a duration: any overlap), with their
    # times both on the recording's clock and from the clip's start.
    async with get_context().db.session() as s:
        rows = (await s.exec(select(Marker, User.username, User.display_name)
                             .join(User, User.id == Marker.author_id, isouter=True)
                             .where(Marker.recording_id == clip.recording_id, Marker.time_s < clip.end_s)
                             .order_by(Marker.time_s, Marker.id))).all()
    markers = [{"id": m.id, "event": m.event, "color": m.color, "time_s": m.time_s, "duration_s": m.duration_s,
                "clip_time_s": round(max(0.0, m.time_s - clip.start_s), 3),
                "author": (display or username) if username else None, "created_at": m.created_at.isoformat()}
               for m, username, display in rows if m.time_s + (m.duration_s or 0.0) >= clip.start_s]
    return json.dumps({"recording_id": clip.recording_id, "clip_id": clip.id, "start_s": clip.start_s,
                       "end_s": clip.end_s, "markers": markers}, indent=2, ensure_ascii=False).encode()
