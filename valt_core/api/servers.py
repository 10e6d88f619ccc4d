"""Media servers: their state and load, enrolment, pool and live mode."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from quart import jsonify
from sqlmodel import select

from ..context import get_context
from ..db.models import Camera, MediaServer
from ..errors import NotFound
from . import api
from .guard import RequestModel, body, caller, read_body, remote_addr, require, responds
from .schemas import MediaServerEnrolled, MediaServerOut


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
        "id": row.id, "name": row.name, "pool": row.pool, "live_mode": row.live_mode,
        "status": "online" if present is not None else row.status, "version": load.get("version", row.version),
        "last_seen_at": row.last_seen_at.isoformat() if row.last_seen_at else None, "cameras": cameras,
        "ingesting": load.get("cameras", []), "recordings": load.get("recordings", []),
        "cpu_percent": load.get("cpu_percent"), "ingest_kbps": load.get("ingest_kbps"),
        "free_bytes": load.get("free_bytes"), "events_waiting": load.get("events_waiting"),
    }


async def _assigned() -> dict[int, list[int]]:
    async with get_context().db.session() as s:
        rows = (await s.exec(select(Camera.id, Camera.media_server_id).where(Camera.media_server_id != None))).all()  # noqa: E711
    out: dict[int, list[int]] = {}
    for camera_id, server_id in rows:
        out.setdefault(server_id, []).append(camera_id)
    return out


@api.get("/media-servers")
@require("system.view")
@responds(200, list[MediaServerOut], description="Every enrolled media server, with its state and load.")
async def list_media_servers():
    """The media servers: state, last seen, version, cameras, load and free storage."""
    ctx = get_context()
    async with ctx.db.session() as s:
        rows = (await s.exec(select(MediaServer).order_by(MediaServer.name))).all()
    assigned = await _assigned()
    present = ctx.media.cluster.present
    return jsonify([server_json(r, sorted(assigned.get(r.id, [])), present.get(r.name)) for r in rows])


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
