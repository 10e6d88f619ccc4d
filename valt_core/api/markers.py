"""Markers: moments marked in a recording, live while it runs or later in review.

A marker's ``time_s`` is recording time (paused time excluded), so it lines up with the
segments' ``start_s`` and the player's timeline. Who may see the recording decides who may see
its markers (:func:`~valt_core.api.recordings.visible_recording`: otherwise 404); operators add
markers and change or delete their own, ``markers.manage`` (admins) changes anyone's.
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import AfterValidator, Field
from quart import Response, jsonify
from sqlmodel import select

from ..context import get_context
from ..db.models import MARKER_COLORS, Marker, Recording, Segment, Track, User
from ..db.types import utcnow
from ..errors import Forbidden, NotFound, ValidationFailed
from ..events import MarkerAdded, MarkerChanged, MarkerRemoved
from . import api
from .guard import RequestModel, body, caller, read_body, remote_addr, require, responds
from .media import content_disposition
from .recordings import visible_recording
from .schemas import MarkerOut

#: Longest marker text, in characters (the column's size).
MAX_EVENT = 500
#: How far past a running recording's clock a marker may be put: the browser's idea of "now" is a
#: poll old, and the clock runs on while the request travels.
RUNNING_SLACK_S = 2.0
#: Clients round times to milliseconds; a stopped recording's end rounded up is still inside it.
ROUNDING_S = 0.001
#: A cell a spreadsheet would read as a formula (CSV injection) starts with one of these.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_HEADER = ("time_s", "time", "duration_s", "event", "color", "author", "created_at")


def _event_text(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("write what happened: the text is empty")
    return text


#: What happened: 1..500 characters, surrounding white space removed.
EventText = Annotated[str, Field(min_length=1, max_length=MAX_EVENT, json_schema_extra={"pattern": r"\S"},
                                 description="What happened (1 to 500 characters; not only white space)."),
                      AfterValidator(_event_text)]
#: One of the palette's colour names.
Color = Literal[tuple(MARKER_COLORS)]  # type: ignore[valid-type]
#: Seconds of recording time (paused time excluded) from its start.
RecordingTime = Annotated[float, Field(ge=0, description="Recording time in seconds, paused time excluded.")]
#: How long the marked moment lasts, in seconds.
Duration = Annotated[float, Field(gt=0, description="How long the moment lasts, in seconds.")]


class MarkerNew(RequestModel):
    """Body of ``POST /api/v1/recordings/{id}/markers``."""

    event: EventText
    time_s: RecordingTime
    duration_s: Duration | None = None
    color: Color = Field("blue", description="The marker's colour on the timeline.")


class MarkerChange(RequestModel):
    """Body of ``PATCH /api/v1/markers/{id}``: the fields to change.

    A field left out (or ``null``) stays as it is, except ``duration_s``, which ``null`` clears.
    """

    event: EventText | None = None
    time_s: RecordingTime | None = None
    duration_s: Duration | None = Field(None, description="How long the moment lasts, in seconds; null clears it.")
    color: Color | None = None


async def recording_end(rec: Recording) -> tuple[float, float]:
    """How long ``rec`` is now, in seconds of recording time, and how far past that a marker may go.

    A running recording (or a paused one) is as long as its session clock, with
    :data:`RUNNING_SLACK_S` for the browser's lag; a stopped one ends where its last finished
    segment ends, on any track, with :data:`ROUNDING_S`.
    """
    ctx = get_context()
    session = ctx.media.sessions.get(rec.id)
    if session is not None:
        return session.clock.now(), RUNNING_SLACK_S
    async with ctx.db.session() as s:
        end = (await s.exec(select(sa.func.max(Segment.start_s + Segment.duration_s))
                            .join(Track, Track.id == Segment.track_id)
                            .where(Track.recording_id == rec.id, Segment.complete == sa.true()))).one()
    return float(end or 0.0), ROUNDING_S


async def _check_times(rec: Recording, time_s: float, duration_s: float | None) -> None:
    end, slack = await recording_end(rec)
    if time_s > end + slack:
        raise ValidationFailed(f"time_s {time_s:g} is outside the recording",
                               fields={"time_s": f"must be within the recording: 0 to {end:.3f} s"})
    if duration_s is not None and time_s + duration_s > end + slack:
        raise ValidationFailed(f"the marker would end after the recording's end ({end:.3f} s)",
                               fields={"duration_s": f"time_s + duration_s = {time_s + duration_s:g} s is past "
                                                     f"the recording's end ({end:.3f} s)"})


def marker_json(m: Marker, username: str | None, display_name: str | None) -> dict[str, Any]:
    """A marker as the API answers it (``username``/``display_name`` of its author, if any)."""
    return {
        "id": m.id, "recording_id": m.recording_id, "time_s": m.time_s, "duration_s": m.duration_s,
        "event": m.event, "color": m.color, "hex_color": MARKER_COLORS.get(m.color, MARKER_COLORS["blue"]),
        "author_id": m.author_id, "author": (display_name or username) if username else None,
        "created_at": m.created_at.isoformat(), "updated_at": m.updated_at.isoformat() if m.updated_at else None,
    }


def _with_author():
    return select(Marker, User.username, User.display_name).join(User, User.id == Marker.author_id, isouter=True)


async def _markers_of(recording_id: int) -> list[tuple[Marker, str | None, str | None]]:
    async with get_context().db.session() as s:
        rows = (await s.exec(_with_author().where(Marker.recording_id == recording_id)
                             .order_by(Marker.time_s, Marker.id))).all()
    return list(rows)


async def _one_json(marker_id: int) -> dict[str, Any]:
    async with get_context().db.session() as s:
        row = (await s.exec(_with_author().where(Marker.id == marker_id))).first()
    if row is None:
        raise NotFound(f"no marker {marker_id}")
    return marker_json(*row)


async def _editable(marker_id: int) -> tuple[Marker, Recording]:
    """The marker and its recording, if the caller may see it (else 404) and change it (else 403)."""
    async with get_context().db.session() as s:
        marker = await s.get(Marker, marker_id)
    if marker is None:
        raise NotFound(f"no marker {marker_id}")
    try:
        rec = await visible_recording(marker.recording_id)
    except NotFound:
        raise NotFound(f"no marker {marker_id}") from None
    who = caller()
    if not who.access.allows("markers.write", rec.room_id or 0):
        raise Forbidden(f"you may not change markers of recordings in room {rec.room_id}")
    if marker.author_id != who.user.id and not who.access.allows("markers.manage"):
        raise Forbidden(f"only the marker's author, or someone with the right markers.manage, may change marker "
                        f"{marker_id}")
    return marker, rec


async def _audit(action: str, marker_id: int, **detail: Any) -> None:
    await get_context().audit.record(action, actor=caller().user, target_type="marker", target_id=marker_id,
                                     detail=detail, remote_addr=remote_addr())


@api.get("/recordings/<int:recording_id>/markers")
@require("recordings.view")
@responds(200, list[MarkerOut], description="The recording's markers in time order.")
async def list_markers(recording_id: int):
    """A recording's markers, ordered by time (then by when they were added)."""
    await visible_recording(recording_id)
    return jsonify([marker_json(*row) for row in await _markers_of(recording_id)])


@api.post("/recordings/<int:recording_id>/markers")
@require("markers.write")
@body(MarkerNew)
@responds(201, MarkerOut, description="The marker, added.")
async def add_marker(recording_id: int):
    """Mark a moment of a recording, running or stopped; ``time_s`` must lie within it."""
    ctx = get_context()
    data = await read_body(MarkerNew)
    rec = await visible_recording(recording_id)
    if not caller().access.allows("markers.write", rec.room_id or 0):
        raise Forbidden(f"you may not mark recordings in room {rec.room_id}")
    await _check_times(rec, data.time_s, data.duration_s)
    marker = Marker(recording_id=recording_id, author_id=caller().user.id, time_s=data.time_s,
                    duration_s=data.duration_s, event=data.event, color=data.color)
    async with ctx.db.session() as s:
        s.add(marker)
        await s.commit()
        await s.refresh(marker)
    await _audit("marker.add", marker.id, recording_id=recording_id, time_s=marker.time_s,
                 duration_s=marker.duration_s, color=marker.color, event=marker.event)
    await ctx.plugins.notify(MarkerAdded(marker_id=marker.id, recording_id=recording_id))
    return jsonify(await _one_json(marker.id)), 201


@api.patch("/markers/<int:marker_id>")
@require("markers.write")
@body(MarkerChange)
@responds(200, MarkerOut, description="The marker, changed.")
async def change_marker(marker_id: int):
    """Change a marker's text, time, duration or colour (its author, or ``markers.manage``)."""
    ctx = get_context()
    data = await read_body(MarkerChange)
    marker, rec = await _editable(marker_id)
    wanted = {name: value for name, value in data.model_dump(exclude_unset=True).items()
              if value is not None or name == "duration_s"}
    changes = {name: value for name, value in wanted.items() if getattr(marker, name) != value}
    if not changes:
        return jsonify(await _one_json(marker_id))
    if "time_s" in changes or "duration_s" in changes:
        await _check_times(rec, changes.get("time_s", marker.time_s), changes.get("duration_s", marker.duration_s))
    async with ctx.db.session() as s:
        row = await s.get(Marker, marker_id)
        if row is None:  # deleted meanwhile
            raise NotFound(f"no marker {marker_id}")
        before = {name: getattr(row, name) for name in changes}
        for name, value in changes.items():
            setattr(row, name, value)
        row.updated_at = utcnow()
        s.add(row)
        await s.commit()
    await _audit("marker.change", marker_id, recording_id=rec.id, fields=sorted(changes), before=before,
                 after=changes)
    await ctx.plugins.notify(MarkerChanged(marker_id=marker_id, recording_id=rec.id))
    return jsonify(await _one_json(marker_id))


@api.delete("/markers/<int:marker_id>")
@require("markers.write")
@responds(204, media_type=None, description="The marker is gone.")
async def delete_marker(marker_id: int):
    """Delete a marker (its author, or ``markers.manage``)."""
    ctx = get_context()
    marker, rec = await _editable(marker_id)
    async with ctx.db.session() as s:
        await s.exec(sa.delete(Marker).where(Marker.id == marker_id))
        await s.commit()
    # What was removed stays readable in the audit log.
    await _audit("marker.remove", marker_id, recording_id=rec.id, time_s=marker.time_s,
                 duration_s=marker.duration_s, color=marker.color, event=marker.event, author_id=marker.author_id)
    await ctx.plugins.notify(MarkerRemoved(marker_id=marker_id, recording_id=rec.id))
    return Response(status=204)


def clock_time(seconds: float) -> str:
    """``seconds`` as ``h:mm:ss.mmm`` (``3723.5`` is ``1:02:03.500``)."""
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours}:{minutes:02d}:{secs:02d}.{ms:03d}"


def safe_cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: one that would start a formula gets a leading ``'``."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def markers_csv(rows: list[tuple[Marker, str | None, str | None]]) -> str:
    """The markers as CSV text (RFC 4180, CRLF line ends): a header row, then one row each."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for marker, username, display_name in rows:
        item = marker_json(marker, username, display_name)
        duration = item["duration_s"]
        writer.writerow([safe_cell(cell) for cell in (
            f"{item['time_s']:.3f}", clock_time(item["time_s"]),
            "" if duration is None else f"{duration:.3f}",
            item["event"], item["color"], item["author"] or "", item["created_at"],
        )])
    return out.getvalue()


@api.get("/recordings/<int:recording_id>/markers.csv")
@require("recordings.view")
@responds(200, media_type="text/csv", description="A header row, then one row per marker in time order.",
          headers={"Content-Disposition": "attachment; filename recording-{id}-markers.csv"})
async def export_markers(recording_id: int):
    """The recording's markers as a CSV file for a spreadsheet (formula-like text neutralised)."""
    await visible_recording(recording_id)
    rows = await _markers_of(recording_id)
    # A download of the session's notes, like a clip's: worth an entry of its own.
    await get_context().audit.record("marker.export", actor=caller().user, target_type="recording",
                                     target_id=recording_id, detail={"markers": len(rows)},
                                     remote_addr=remote_addr())
    response = Response(markers_csv(rows), mimetype="text/csv")
    response.headers["Content-Disposition"] = content_disposition(f"recording-{recording_id}-markers.csv")
    return response
