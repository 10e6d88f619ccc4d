"""Mobile devices: enrol a phone or tablet as a camera that pushes RTMP, and manage its stream key.

A device is a camera (driver ``mobile``) plus a ``mobile_devices`` row. Its stream key is made
here and answered once, at enrolment and at each rotation; only its SHA-256 is kept, in the
camera's settings, which is what the media server checks a publish against. Admins (who manage
cameras) see and manage every device; a person with the upload right enrols devices for
themselves, into a room where they hold that right, and manages their own.
"""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import Field
from quart import jsonify
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from ..context import get_context
from ..db.models import Camera, MobileDevice, Room, User
from ..db.types import utcnow
from ..errors import Conflict, NotFound, ValidationFailed
from ..push import hash_stream_key, new_stream_key
from . import api
from .cameras import restart_ingest
from .guard import Id, RequestModel, body, caller, check_room, read_body, remote_addr, require, responds
from .schemas import Answer, RoomOut
from .serialize import room_json

UPLOAD = "uploads.create"
#: Revoked key hashes a device's camera keeps (so a refusal can tell whose old key was tried).
MAX_REVOKED = 8


class DeviceCreate(RequestModel):
    """Body of ``POST /api/v1/devices``."""

    name: str = Field(min_length=1, max_length=150, description="The device's camera name, e.g. \"iPad 3\".")
    room_id: Id | None = Field(None, description="The room it films in (null: none yet).")
    user_id: Id | None = Field(None, description="Whose device it is (admins only; default: the caller).")


class DeviceUpdate(RequestModel):
    """Body of ``PATCH /api/v1/devices/{id}``: only the fields given change."""

    room_id: Id | None = Field(None, description="Move the device to this room (null: no room).")


class DeviceOut(Answer):
    """A mobile device: its camera, whose it is, and how its stream key has been used."""

    id: int
    camera_id: int
    name: str
    room_id: int | None
    user_id: int | None
    device: str
    status: str
    status_reason: str
    key_active: bool
    key_created_at: str | None
    key_revoked_at: str | None
    refused_publishes: int
    last_refused_at: str | None
    last_published_at: str | None
    last_published_from: str
    publish_urls: list[str]


class DeviceKey(DeviceOut):
    """A device with its new stream key, shown this once (only its hash is kept)."""

    stream_key: str


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def publish_urls() -> list[str]:
    """Where devices publish to this server's own media server (empty when it runs none)."""
    ctx = get_context()
    return ctx.push.publish_urls() if ctx.push is not None else []


def device_json(row: MobileDevice, camera: Camera) -> dict[str, Any]:
    """A device as the API shows it (never its key or the key's hash)."""
    return {
        "id": row.id, "camera_id": camera.id, "name": camera.name, "room_id": camera.room_id,
        "user_id": row.user_id, "device": row.device, "status": camera.status,
        "status_reason": camera.status_reason, "key_active": bool((camera.config or {}).get("key_hash")),
        "key_created_at": _iso(row.key_created_at), "key_revoked_at": _iso(row.key_revoked_at),
        "refused_publishes": row.refused_publishes, "last_refused_at": _iso(row.last_refused_at),
        "last_published_at": _iso(row.last_published_at), "last_published_from": row.last_published_from,
        "publish_urls": publish_urls(),
    }


def _manages_all() -> bool:
    return caller().access.allows("cameras.manage")


async def _device(device_id: int) -> tuple[MobileDevice, Camera]:
    # A device someone may not manage is not found (its existence is none of their business).
    async with get_context().db.session() as s:
        row = await s.get(MobileDevice, device_id)
        camera = await s.get(Camera, row.camera_id) if row is not None else None
    if row is None or camera is None or not (_manages_all() or row.user_id == caller().user.id):
        raise NotFound(f"no device {device_id}")
    return row, camera


def _not_recording(camera: Camera, doing: str) -> None:
    # The key's hash is part of the camera's settings, which cannot change under a recording.
    if camera.room_id is not None and get_context().media.session_for_room(camera.room_id) is not None:
        raise Conflict(f"device {camera.name!r} is recording; stop the recording before you {doing}")


@api.get("/devices")
@require(UPLOAD)
@responds(200, list[DeviceOut], description="The caller's devices (every device, for those who manage cameras).")
async def list_devices():
    """The mobile devices the caller may manage."""
    async with get_context().db.session() as s:
        query = select(MobileDevice, Camera).where(Camera.id == MobileDevice.camera_id).order_by(Camera.name)
        if not _manages_all():
            query = query.where(MobileDevice.user_id == caller().user.id)
        rows = (await s.exec(query)).all()
    return jsonify([device_json(d, c) for d, c in rows])


@api.post("/devices")
@require(UPLOAD)
@body(DeviceCreate)
@responds(201, DeviceKey, description="Enrolled; its stream key is shown this once.", errors=(409,))
async def create_device():
    """Enrol a mobile device: a camera (driver ``mobile``) and a new stream key, answered once."""
    data = await read_body(DeviceCreate)
    ctx = get_context()
    me = caller()
    if data.room_id is not None:
        check_room(UPLOAD, data.room_id)
    elif not me.access.allows(UPLOAD, 0):
        raise ValidationFailed("choose a room: you may enrol devices only into rooms where you may upload",
                               fields={"room_id": "required"})
    owner = data.user_id if data.user_id is not None else me.user.id
    if owner != me.user.id and not _manages_all():
        raise ValidationFailed("only someone who manages cameras enrols a device for another person",
                               fields={"user_id": "yours only"})
    if "mobile" not in ctx.plugins.camera_drivers:
        raise Conflict("mobile devices need the camera plugin 'mobile' (valt-camera-mobile), which is not loaded")
    key = new_stream_key()
    device_id = secrets.token_urlsafe(12)
    driver = ctx.plugins.build_camera_driver("mobile", {"device": device_id, "key_hash": hash_stream_key(key)})
    async with ctx.db.session() as s:
        if data.room_id is not None and await s.get(Room, data.room_id) is None:
            raise ValidationFailed(f"no room {data.room_id}", fields={"room_id": "unknown room"})
        if await s.get(User, owner) is None:
            raise ValidationFailed(f"no user {owner}", fields={"user_id": "unknown user"})
        camera = Camera(name=data.name, driver="mobile", room_id=data.room_id,
                        config=driver.config.model_dump(mode="json"), status="offline",
                        status_reason="waiting for the device to publish")
        s.add(camera)
        try:
            await s.flush()
        except IntegrityError as err:
            raise Conflict(f"a camera named {data.name!r} already exists") from err
        row = MobileDevice(camera_id=camera.id, device=device_id, user_id=owner, key_created_at=utcnow())
        s.add(row)
        await s.commit()
        await s.refresh(row)
        await s.refresh(camera)
    await restart_ingest(camera)
    await ctx.audit.record("device.create", actor=me.user, target_type="device", target_id=row.id,
                           detail={"name": camera.name, "camera_id": camera.id, "room_id": camera.room_id,
                                   "user_id": owner}, remote_addr=remote_addr())
    return jsonify({**device_json(row, camera), "stream_key": key}), 201


@api.get("/devices/<int:device_id>")
@require(UPLOAD)
@responds(200, DeviceOut, description="The device.")
async def get_device(device_id: int):
    """One mobile device."""
    row, camera = await _device(device_id)
    return jsonify(device_json(row, camera))


@api.patch("/devices/<int:device_id>")
@require(UPLOAD)
@body(DeviceUpdate)
@responds(200, DeviceOut, description="The device.", errors=(409,))
async def update_device(device_id: int):
    """Move the device to another room (one where the caller may upload), e.g. from the app before recording."""
    data = await read_body(DeviceUpdate)
    ctx = get_context()
    row, camera = await _device(device_id)
    if "room_id" in data.model_fields_set and data.room_id != camera.room_id:
        if data.room_id is not None:
            check_room(UPLOAD, data.room_id)
        _not_recording(camera, "move it")
        async with ctx.db.session() as s:
            if data.room_id is not None and await s.get(Room, data.room_id) is None:
                raise ValidationFailed(f"no room {data.room_id}", fields={"room_id": "unknown room"})
            cam = await s.get(Camera, camera.id)
            if cam is None:
                raise NotFound(f"no device {device_id}")
            cam.room_id = data.room_id
            s.add(cam)
            await s.commit()
            await s.refresh(cam)
            camera = cam
        await ctx.audit.record("device.update", actor=caller().user, target_type="device", target_id=row.id,
                               detail={"room_id": data.room_id}, remote_addr=remote_addr())
    return jsonify(device_json(row, camera))


async def _set_key(row: MobileDevice, camera: Camera, new_hash: str) -> tuple[MobileDevice, Camera]:
    ctx = get_context()
    async with ctx.db.session() as s:
        dev = await s.get(MobileDevice, row.id)
        cam = await s.get(Camera, camera.id)
        if dev is None or cam is None:
            raise NotFound(f"no device {row.id}")
        config = dict(cam.config or {})
        old = config.get("key_hash", "")
        revoked = [h for h in config.get("revoked_key_hashes", []) if h != old]
        config["revoked_key_hashes"] = ([old] if old else []) + revoked[:MAX_REVOKED - 1]
        config["key_hash"] = new_hash
        cam.config = ctx.plugins.build_camera_driver("mobile", config).config.model_dump(mode="json")
        now = utcnow()
        if new_hash:
            dev.key_created_at, dev.key_revoked_at = now, None
        else:
            dev.key_revoked_at = now
        s.add(cam)
        s.add(dev)
        await s.commit()
        await s.refresh(dev)
        await s.refresh(cam)
    # The media server is given the new hash; the publisher of the old key is disconnected.
    await restart_ingest(cam)
    return dev, cam


@api.post("/devices/<int:device_id>/key")
@require(UPLOAD)
@responds(200, DeviceKey, description="A new stream key, shown this once; the old one is revoked.", errors=(409,))
async def rotate_device_key(device_id: int):
    """Give the device a new stream key (the old one stops working at once)."""
    row, camera = await _device(device_id)
    _not_recording(camera, "change its key")
    key = new_stream_key()
    row, camera = await _set_key(row, camera, hash_stream_key(key))
    await get_context().audit.record("device.key.rotate", actor=caller().user, target_type="device",
                                     target_id=row.id, detail={"name": camera.name}, remote_addr=remote_addr())
    return jsonify({**device_json(row, camera), "stream_key": key})


@api.delete("/devices/<int:device_id>/key")
@require(UPLOAD)
@responds(200, DeviceOut, description="The device, its key revoked.", errors=(409,))
async def revoke_device_key(device_id: int):
    """Revoke the device's stream key: publishes with it are refused (and counted) until a new one is made."""
    row, camera = await _device(device_id)
    _not_recording(camera, "revoke its key")
    row, camera = await _set_key(row, camera, "")
    await get_context().audit.record("device.key.revoke", actor=caller().user, target_type="device",
                                     target_id=row.id, detail={"name": camera.name}, remote_addr=remote_addr())
    return jsonify(device_json(row, camera))


@api.get("/devices/<int:device_id>/rooms")
@require(UPLOAD)
@responds(200, list[RoomOut], description="The rooms the device's user may record in.")
async def device_rooms(device_id: int):
    """The rooms where the device's user may record (what the app offers before it starts recording).

    Recording itself goes through ``POST /api/v1/rooms/{id}/record/start`` (``pause``,
    ``resume``, ``stop``) with the user's own token, like from the web page.
    """
    from ..auth.access import load_access

    ctx = get_context()
    row, _camera = await _device(device_id)
    async with ctx.db.session() as s:
        user = await s.get(User, row.user_id) if row.user_id is not None else None
    if user is None or user.disabled:
        return jsonify([])
    access = await load_access(ctx.db, user)
    allowed = access.rooms("recordings.record")
    async with ctx.db.session() as s:
        query = select(Room).order_by(Room.name)
        rooms = (await s.exec(query if allowed is None else query.where(Room.id.in_(allowed or {-1})))).all()
    return jsonify([room_json(r, None, None, ctx.media.session_for_room(r.id)) for r in rooms])
