"""Rooms: create and list them, and move their cameras to another media server."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from quart import jsonify
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from ..context import get_context
from ..db.models import Camera, MediaServer, Room
from ..errors import Conflict, NotFound, ValtError
from . import api
from .cameras import assign_media_server, restart_ingest
from .guard import Id, RequestModel, body, caller, check_room, read_body, remote_addr, require, responds
from .schemas import RoomOut
from .serialize import cameras_by_room, room_json

log = logging.getLogger(__name__)


class RoomCreate(RequestModel):
    """Body of ``POST /api/v1/rooms``."""

    name: str = Field(min_length=1, max_length=150)
    description: str = Field("", max_length=500)


def _integral(value: Any) -> Any:
    # JSON has one kind of number: to a JSON schema, and so to the OpenAPI document's clients,
    # 2.0 is the integer 2. It is here too; 2.5 and "2" are still refused by the strict check.
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: A media server's id in a body.
ServerId = Annotated[Id, BeforeValidator(_integral)]


class RoomUpdate(RequestModel):
    """Body of ``PATCH /api/v1/rooms/{id}``: only the fields given change."""

    media_server_id: ServerId | None = Field(
        None, description="Move every camera of the room to this media server (null: the app server's own, "
                          "or the least loaded one).")


@api.get("/rooms")
@require("rooms.view")
@responds(200, list[RoomOut], description="All rooms.")
async def list_rooms():
    """The rooms the caller may see, each with its cameras."""
    ctx = get_context()
    visible = caller().access.rooms("rooms.view")
    async with ctx.db.session() as s:
        query = select(Room).order_by(Room.name)
        rooms = (await s.exec(query if visible is None else query.where(Room.id.in_(visible)))).all()
        cameras = (await s.exec(select(Camera).order_by(Camera.name))).all()
    by_room = cameras_by_room(list(cameras))
    return jsonify([room_json(r, by_room.get(r.id, []), ctx.cameras, ctx.media.session_for_room(r.id))
                    for r in rooms])


@api.post("/rooms")
@require("rooms.manage")
@body(RoomCreate)
@responds(201, RoomOut, description="The room, created.", errors=(409,))
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
@responds(200, RoomOut, description="The room.")
async def get_room(room_id: int):
    """One room with its cameras."""
    ctx = get_context()
    check_room("rooms.view", room_id)
    async with ctx.db.session() as s:
        room = await s.get(Room, room_id)
        if room is None:
            raise NotFound(f"no room {room_id}")
        cameras = (await s.exec(select(Camera).where(Camera.room_id == room_id).order_by(Camera.name))).all()
    return jsonify(room_json(room, list(cameras), ctx.cameras, ctx.media.session_for_room(room_id)))


@api.patch("/rooms/<int:room_id>")
@require("servers.manage")
@body(RoomUpdate)
@responds(200, RoomOut, description="The room, its cameras on their media server.", errors=(409,))
async def update_room(room_id: int):
    """Move every camera of a room to another media server (one audit event for them all).

    Each camera moves as ``PATCH /cameras/{id}`` moves it: released where it is, assigned, and
    ingested there. Refused (409) while the room is recording.
    """
    data = await read_body(RoomUpdate)
    ctx = get_context()
    moved: list[Camera] = []
    async with ctx.db.session() as s:
        room = await s.get(Room, room_id)
        if room is None:
            raise NotFound(f"no room {room_id}")
        cameras = list((await s.exec(select(Camera).where(Camera.room_id == room_id).order_by(Camera.name))).all())
        if "media_server_id" in data.model_fields_set:
            target = data.media_server_id
            if target is not None and await s.get(MediaServer, target) is None:
                raise NotFound(f"no media server {target}")
            if ctx.media.session_for_room(room_id) is not None:
                raise Conflict(f"room {room.name!r} is recording; stop the recording before you move its cameras")
            for camera in cameras:
                if await assign_media_server(s, camera, target):
                    moved.append(camera)
            await s.commit()
    if moved:
        # Audited once the move is stored, before ingest restarts (which may fail camera by camera).
        await ctx.audit.record("room.move", actor=caller().user, target_type="room", target_id=room_id,
                               detail={"name": room.name, "media_server_id": data.media_server_id,
                                       "cameras": [c.id for c in moved]}, remote_addr=remote_addr())
    for camera in moved:
        try:
            await restart_ingest(camera)
        except ValtError as err:
            # One camera that cannot start (its status says why) must not keep the rest where they were.
            log.error("camera %s did not start on its new media server: %s", camera.name, err.message)
    if moved:
        async with ctx.db.session() as s:  # read again: a camera that did not start says so in its status
            cameras = list((await s.exec(select(Camera).where(Camera.room_id == room_id)
                                         .order_by(Camera.name))).all())
    return jsonify(room_json(room, cameras, ctx.cameras, ctx.media.session_for_room(room_id)))
