"""Rooms."""

from __future__ import annotations

from pydantic import Field
from quart import jsonify
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from ..context import get_context
from ..db.models import Camera, Room
from ..errors import Conflict, NotFound
from . import api
from .guard import RequestModel, body, caller, read_body, remote_addr, require, responds
from .schemas import RoomOut
from .serialize import cameras_by_room, room_json


class RoomCreate(RequestModel):
    """Body of ``POST /api/v1/rooms``."""

    name: str = Field(min_length=1, max_length=150)
    description: str = Field("", max_length=500)


@api.get("/rooms")
@require("rooms.view")
@responds(200, list[RoomOut], description="All rooms.")
async def list_rooms():
    """All rooms, each with its cameras."""
    ctx = get_context()
    async with ctx.db.session() as s:
        rooms = (await s.exec(select(Room).order_by(Room.name))).all()
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
    async with ctx.db.session() as s:
        room = await s.get(Room, room_id)
        if room is None:
            raise NotFound(f"no room {room_id}")
        cameras = (await s.exec(select(Camera).where(Camera.room_id == room_id).order_by(Camera.name))).all()
    return jsonify(room_json(room, list(cameras), ctx.cameras, ctx.media.session_for_room(room_id)))
