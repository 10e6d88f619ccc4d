"""Rooms and cameras."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import jsonify
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from ..auth.media_tokens import issue_media_token
from ..context import get_context
from ..db.models import Camera, Room
from ..errors import Conflict, NotFound, ValidationFailed
from . import api
from .guard import body, caller, read_body, remote_addr, require
from .serialize import camera_json, cameras_by_room, room_json


class RoomCreate(BaseModel):
    """Body of ``POST /api/v1/rooms``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=150)
    description: str = Field("", max_length=500)


class CameraCreate(BaseModel):
    """Body of ``POST /api/v1/cameras``: the driver's name and its settings."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=150)
    driver: str = Field(min_length=1, max_length=50)
    room_id: int | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


@api.get("/rooms")
@require("rooms.view")
async def list_rooms():
    """All rooms, each with its cameras."""
    ctx = get_context()
    async with ctx.db.session() as s:
        rooms = (await s.exec(select(Room).order_by(Room.name))).all()
        cameras = (await s.exec(select(Camera).order_by(Camera.name))).all()
    by_room = cameras_by_room(list(cameras))
    return jsonify([room_json(r, by_room.get(r.id, []), ctx.plugins, ctx.media.session_for_room(r.id))
                    for r in rooms])


@api.post("/rooms")
@require("rooms.manage")
@body(RoomCreate)
async def create_room():
    """Create a room."""
    data = await read_body(RoomCreate)
    ctx = get_context()
    room = Room(name=data.name, description=data.description)
    async with ctx.db.session() as s:
        s.add(room)
        try:
            await s.commit()
        except IntegrityError as err:
            raise Conflict(f"a room named {data.name!r} already exists") from err
    await ctx.audit.record("room.create", actor=caller().user, target_type="room", target_id=room.id,
                           detail={"name": room.name}, remote_addr=remote_addr())
    return jsonify(room_json(room, [])), 201


@api.get("/rooms/<int:room_id>")
@require("rooms.view")
async def get_room(room_id: int):
    """One room with its cameras."""
    ctx = get_context()
    async with ctx.db.session() as s:
        room = await s.get(Room, room_id)
        if room is None:
            raise NotFound(f"no room {room_id}")
        cameras = (await s.exec(select(Camera).where(Camera.room_id == room_id).order_by(Camera.name))).all()
    return jsonify(room_json(room, list(cameras), ctx.plugins, ctx.media.session_for_room(room_id)))


@api.get("/cameras")
@require("cameras.view")
async def list_cameras():
    """All cameras."""
    ctx = get_context()
    async with ctx.db.session() as s:
        cameras = (await s.exec(select(Camera).order_by(Camera.name))).all()
    return jsonify([camera_json(c, ctx.plugins) for c in cameras])


@api.post("/cameras")
@require("cameras.manage")
@body(CameraCreate)
async def create_camera():
    """Add a camera: the driver checks its settings before anything is stored."""
    data = await read_body(CameraCreate)
    ctx = get_context()
    driver = ctx.plugins.build_camera_driver(data.driver, data.config)
    # Store what the driver's model made of the input (defaults filled in, types coerced).
    config = driver.config.model_dump(mode="json")
    async with ctx.db.session() as s:
        if data.room_id is not None and await s.get(Room, data.room_id) is None:
            raise ValidationFailed(f"no room {data.room_id}", fields={"room_id": "unknown room"})
        camera = Camera(name=data.name, driver=data.driver, room_id=data.room_id,
                        config=config, enabled=data.enabled)
        s.add(camera)
        try:
            await s.commit()
        except IntegrityError as err:
            raise Conflict(f"a camera named {data.name!r} already exists") from err
    if ctx.media.started and camera.enabled and ctx.settings.media.always_on:
        await ctx.media.pipeline(camera)
    await ctx.audit.record("camera.create", actor=caller().user, target_type="camera",
                           target_id=camera.id, detail={"name": camera.name, "driver": camera.driver},
                           remote_addr=remote_addr())
    return jsonify(camera_json(camera, ctx.plugins)), 201


@api.get("/cameras/<int:camera_id>")
@require("cameras.view")
async def get_camera(camera_id: int):
    """One camera."""
    ctx = get_context()
    async with ctx.db.session() as s:
        camera = await s.get(Camera, camera_id)
    if camera is None:
        raise NotFound(f"no camera {camera_id}")
    return jsonify(camera_json(camera, ctx.plugins))


@api.get("/cameras/<int:camera_id>/live")
@require("live.watch")
async def camera_live(camera_id: int):
    """A short-lived token to watch the camera live, and where each transport serves it."""
    ctx = get_context()
    async with ctx.db.session() as s:
        camera = await s.get(Camera, camera_id)
    if camera is None:
        raise NotFound(f"no camera {camera_id}")
    token, expires = issue_media_token(ctx.secret, camera_id, caller().user.id, ctx.settings.live.token_ttl_s)
    endpoints = {}
    for name, transport in ctx.transports.items():
        url = transport.viewer_url(camera_id, token)
        if url:
            endpoints[name] = url
    return jsonify({"camera_id": camera_id, "status": camera.status, "token": token,
                    "expires_at": datetime.fromtimestamp(expires, timezone.utc).isoformat(),
                    "endpoints": endpoints})
