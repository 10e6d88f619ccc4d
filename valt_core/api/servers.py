"""Media servers: their state and load, enrolment, pool and live mode."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from quart import jsonify
from sqlmodel import select

from .. import __version__
from ..context import get_context
from ..db.models import Camera, MediaServer
from ..db.types import utcnow
from ..errors import NotFound
from . import api
from .guard import RequestModel, body, caller, read_body, remote_addr, require, responds
from .schemas import MediaServerEnrolled, MediaServerOut


class MediaServerListed(MediaServerOut):
    """A media server in the list: an enrolled one, or the app server's own (``id`` null, ``embedded``)."""

    id: int | None  # type: ignore[assignment]  # the embedded media server has no row
    embedded: bool = False
    events_waiting: int | None = None


class MediaServerCreate(RequestModel):
    """Body of ``POST /api/v1/media-servers``."""

    name: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_]+$")
    pool: str = Field("", max_length=150)
    live_mode: Literal["relayed", "direct"] = "relayed"


class MediaServerUpdate(RequestModel):
    """Body of ``PATCH /api/v1/media-servers/{id}``: only the fields given change."""

    pool: str | None = Field(None, max_length=150)
    live_mode: Literal["relayed", "direct"] | None = None


def server_json(row: MediaServer, cameras: list[int], present: dict[str, Any] | None) -> dict[str, Any]:
    """A media server as the API shows it: its row, its cameras, and what its presence says now."""
    load = present or {}
    return {
        "id": row.id, "name": row.name, "embedded": False, "pool": row.pool, "live_mode": row.live_mode,
        "status": "online" if present is not None else row.status, "version": load.get("version", row.version),
        "last_seen_at": row.last_seen_at.isoformat() if row.last_seen_at else None, "cameras": cameras,
        "ingesting": load.get("cameras", []), "recordings": load.get("recordings", []),
        "cpu_percent": load.get("cpu_percent"), "ingest_kbps": load.get("ingest_kbps"),
        "free_bytes": load.get("free_bytes"), "events_waiting": load.get("events_waiting"),
        "storage_status": (load.get("storage") or {}).get("status"),
        "storage_message": (load.get("storage") or {}).get("message"),
        "storage_pending": (load.get("storage") or {}).get("pending"),
    }


def embedded_json(name: str, cameras: list[int], present: dict[str, Any] | None) -> dict[str, Any]:
    """The app server's own media server (``valt serve``), which has no row: it records the
    cameras assigned to no other server, and its live view is served by this process."""
    load = present or {}
    return {
        **server_json(MediaServer(name=name, live_mode="direct"), cameras, present),
        "id": None, "embedded": True, "version": load.get("version", __version__),
        "status": "online" if present is not None else "starting",
        "last_seen_at": utcnow().isoformat() if present is not None else None,
    }


async def _assigned() -> dict[int | None, list[int]]:
    # Camera ids by media server id; None holds the cameras assigned to no enrolled server.
    async with get_context().db.session() as s:
        rows = (await s.exec(select(Camera.id, Camera.media_server_id))).all()
    out: dict[int | None, list[int]] = {}
    for camera_id, server_id in rows:
        out.setdefault(server_id, []).append(camera_id)
    return out


@api.get("/media-servers")
@require("system.view")
@responds(200, list[MediaServerListed], description="The app server's own media server, when it runs one, "
                                                   "then every enrolled one, with its state and load.")
async def list_media_servers():
    """The media servers: state, last seen, version, cameras, load and free storage.

    With ``[media] embedded`` (``valt serve`` on one machine) the first is the app server's own,
    ``embedded`` and without an id, holding the cameras assigned to no enrolled server.
    """
    ctx = get_context()
    async with ctx.db.session() as s:
        rows = (await s.exec(select(MediaServer).order_by(MediaServer.name))).all()
    assigned = await _assigned()
    present = ctx.media.cluster.present
    listed = [server_json(r, sorted(assigned.get(r.id, [])), present.get(r.name)) for r in rows]
    if ctx.media.engine is not None:
        name = ctx.media.engine.name
        listed.insert(0, embedded_json(name, sorted(assigned.get(None, [])), present.get(name)))
    return jsonify(listed)


@api.post("/media-servers")
@require("servers.manage")
@body(MediaServerCreate)
@responds(201, MediaServerEnrolled, description="Enrolled; its NATS nkey seed is shown this once.", errors=(409,))
async def create_media_server():
    """Enrol a media server: its row and a NATS nkey whose seed is answered once, never stored."""
    from ..mediaserver import enrol

    data = await read_body(MediaServerCreate)
    ctx = get_context()
    row, seed = await enrol(ctx, data.name, data.pool, data.live_mode)
    await ctx.audit.record("media_server.create", actor=caller().user, target_type="media_server",
                           target_id=row.id, detail={"name": row.name, "nkey": row.nkey}, remote_addr=remote_addr())
    return jsonify({**server_json(row, [], None), "nkey": row.nkey, "nkey_seed": seed.decode()}), 201


@api.patch("/media-servers/<int:server_id>")
@require("servers.manage")
@body(MediaServerUpdate)
@responds(200, MediaServerOut, description="The media server.")
async def update_media_server(server_id: int):
    """Change a media server's pool or live mode."""
    data = await read_body(MediaServerUpdate)
    ctx = get_context()
    async with ctx.db.session() as s:
        row = await s.get(MediaServer, server_id)
        if row is None:
            raise NotFound(f"no media server {server_id}")
        if data.pool is not None:
            row.pool = data.pool
        if data.live_mode is not None:
            row.live_mode = data.live_mode
        s.add(row)
        await s.commit()
        await s.refresh(row)
    await ctx.audit.record("media_server.update", actor=caller().user, target_type="media_server",
                           target_id=row.id, detail={"fields": sorted(data.model_fields_set)},
                           remote_addr=remote_addr())
    return jsonify(server_json(row, sorted((await _assigned()).get(row.id, [])),
                               ctx.media.cluster.present.get(row.name)))
