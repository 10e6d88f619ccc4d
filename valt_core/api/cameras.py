"""Cameras: add, edit and remove them, find them on the network, and steer them.

Every device call goes through :class:`~valt_core.cameras.service.CameraService`, so a camera
that does not answer becomes a clear 502 within ``[cameras] control_timeout_s`` and a driver
that lacks a capability answers 501 without touching the device.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator
from quart import Response, jsonify
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..auth.media_tokens import camera_key, issue_media_token
from ..bus.base import BusUnavailable
from ..bus.messages import ControlCamera, SnapshotCamera
from ..cameras.base import (
    ADDRESS_FIELD_NAMES,
    SECRET_FIELD_NAMES,
    CameraDriver,
    Capability,
    DiscoveredCamera,
    Preset,
    PtzPosition,
)
from ..context import get_context
from ..db.models import Camera, MediaServer, Room
from ..db.types import utcnow
from ..errors import CameraDisabled, Conflict, NotFound, NotSupported, ValidationFailed
from ..media_control import camera_spec
from ..redact import redact
from . import api
from .guard import RequestModel, body, caller, check_room, read_body, remote_addr, require, responds
from .schemas import CameraOut
from .serialize import MASK, camera_json

log = logging.getLogger(__name__)


class CameraCreate(RequestModel):
    """Body of ``POST /api/v1/cameras``: the driver's name and its settings."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=150)
    driver: str = Field(min_length=1, max_length=50)
    room_id: int | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    media_server_id: int | None = Field(None, description="The media server that records it (none: the app "
                                                        "server's own, or the least loaded one).")
    media_server_pool: str | None = Field(
        None, max_length=150, description="Instead of `media_server_id`: give it to the least loaded media server "
                                          "of this pool present now (409 when none is).")

    @model_validator(mode="after")
    def _one_way_to_place(self) -> "CameraCreate":
        if self.media_server_id is not None and self.media_server_pool is not None:
            raise ValueError("give media_server_id or media_server_pool, not both")
        return self


class CameraUpdate(RequestModel):
    """Body of ``PATCH /api/v1/cameras/{id}``: only the fields given change.

    In ``config``, a secret sent back as ``********`` (as the API shows it) keeps its value,
    unless the camera's address changes in the same request: then it must be entered again.
    """

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=150)
    room_id: int | None = None
    config: dict[str, Any] | None = None
    enabled: bool | None = None
    media_server_id: int | None = Field(None, description="Move it to this media server (null: the app "
                                                        "server's own, or the least loaded one).")


class CameraProbe(RequestModel):
    """Body of ``POST /api/v1/cameras/probe``: settings to try before adding a camera."""

    model_config = ConfigDict(extra="forbid")
    driver: str = Field(min_length=1, max_length=50)
    config: dict[str, Any] = Field(default_factory=dict)


class DiscoverRequest(RequestModel):
    """Body of ``POST /api/v1/cameras/discover``."""

    model_config = ConfigDict(extra="forbid")
    timeout_s: float | None = Field(None, gt=0, le=30, description="Defaults to [cameras] discovery_timeout_s.")


class PtzRequest(RequestModel):
    """Body of ``POST /api/v1/cameras/{id}/ptz``.

    ``move``: continuous, speeds -1..1; ``absolute``: pan/tilt -1..1, zoom 0..1; ``relative``:
    steps in the same units; ``stop``; ``goto_preset`` with ``preset`` (a preset token).
    """

    model_config = ConfigDict(extra="forbid")
    action: Literal["move", "stop", "absolute", "relative", "goto_preset"]
    pan: float = Field(0.0, ge=-1, le=1)
    tilt: float = Field(0.0, ge=-1, le=1)
    zoom: float = Field(0.0, ge=-1, le=1)
    preset: str | None = Field(None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _action_fields(self) -> "PtzRequest":
        if self.action == "goto_preset" and not self.preset:
            raise ValueError("goto_preset needs 'preset' (a token from GET /presets)")
        if self.action == "absolute" and self.zoom < 0:
            raise ValueError("an absolute zoom runs from 0 (widest) to 1")
        return self


class PresetCreate(RequestModel):
    """Body of ``POST /api/v1/cameras/{id}/presets``: store where the camera points now."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)


# --- helpers -----------------------------------------------------------------------------

async def _camera(camera_id: int, right: str | None = None) -> Camera:
    # With a right: one the caller must hold in the camera's room (a camera of a room they may
    # not see is not found).
    async with get_context().db.session() as s:
        camera = await s.get(Camera, camera_id)
    if camera is None:
        raise NotFound(f"no camera {camera_id}")
    if right is not None:
        try:
            check_room(right, camera.room_id)
        except NotFound:
            raise NotFound(f"no camera {camera_id}") from None
    return camera


async def _enabled_camera(camera_id: int, right: str) -> Camera:
    camera = await _camera(camera_id, right)
    if not camera.enabled:
        # Disabled means nobody sees the room through it: no live view, no still.
        raise CameraDisabled(f"camera {camera.name!r} is disabled; enable it first")
    return camera


def merge_config(camera: Camera, incoming: dict[str, Any]) -> dict[str, Any]:
    """New settings for ``camera``: a secret sent back masked keeps its stored value.

    Only while the camera stays where it is: when an address field changes, a masked secret is
    refused (a stored password must not be sent to a new host that nobody typed it for).
    """
    klass = get_context().plugins.camera_drivers.get(camera.driver)
    secrets = _secret_fields(camera.driver)
    address_fields = klass.address_fields if klass is not None else ADDRESS_FIELD_NAMES
    old = camera.config or {}
    moved = sorted(k for k in address_fields if k in incoming and incoming[k] != old.get(k)
                   and not _same_redacted(incoming[k], old.get(k)))
    merged: dict[str, Any] = {}
    for key, value in incoming.items():
        kept = (key in secrets and value == MASK) or _same_redacted(value, old.get(key))
        if kept and moved:
            raise ValidationFailed(
                f"the camera's address changed ({', '.join(moved)}): enter {key} again",
                fields={f"config.{key}": "re-enter it: the camera's address changed"})
        merged[key] = old.get(key, "") if kept else value
    return merged


def _same_redacted(value: Any, stored: Any) -> bool:
    # A URL the API showed with its password masked, sent back unchanged.
    return isinstance(value, str) and isinstance(stored, str) and value != stored and value == redact(stored)


def _secret_fields(driver: str) -> frozenset[str]:
    klass = get_context().plugins.camera_drivers.get(driver)
    return SECRET_FIELD_NAMES | (klass.secret_fields if klass else frozenset())


async def _audit(action: str, camera: Camera, **detail: Any) -> None:
    await get_context().audit.record(action, actor=caller().user, target_type="camera", target_id=camera.id,
                                     detail={"name": camera.name, **detail}, remote_addr=remote_addr())


def _not_recording(camera: Camera, doing: str) -> None:
    # Swapping a camera's driver under a running recording would cut its track short.
    if camera.room_id is not None and get_context().media.session_for_room(camera.room_id) is not None:
        raise Conflict(f"camera {camera.name!r} is recording; stop the recording before you {doing}")


async def _least_loaded_of(session: AsyncSession, pool: str) -> int | None:
    """The id of the least loaded media server of ``pool`` present now (``None``: this server's own);
    :class:`Conflict` when none is present."""
    ctx = get_context()
    name = ctx.media.cluster.least_loaded(pool)
    if name is not None and ctx.engine is not None and name == ctx.engine.name:
        return None
    row = (await session.exec(select(MediaServer).where(MediaServer.name == name))).first() if name else None
    if row is None:
        raise Conflict(f"no media server of the pool {pool!r} is present to take the camera")
    return row.id


async def assign_media_server(session: AsyncSession, camera: Camera, media_server_id: int | None) -> bool:
    """Release ``camera`` where it is recorded and assign it to ``media_server_id``, in ``session``.

    ``None`` is the app server's own media server (or, without one, the least loaded present
    one). False, and nothing done, when it is assigned there already. The caller commits, then
    calls :func:`restart_ingest`; the camera PATCH and the room move both come through here.
    """
    if media_server_id == camera.media_server_id:
        return False
    if media_server_id is not None and await session.get(MediaServer, media_server_id) is None:
        raise ValidationFailed(f"no media server {media_server_id}", fields={"media_server_id": "unknown"})
    # Released where it is before it is assigned elsewhere (its lease given back).
    await get_context().media.remove_camera(camera.id)
    camera.media_server_id = media_server_id
    return True


async def restart_ingest(camera: Camera) -> None:
    """Stop ``camera``'s ingest and start it again, with its stored settings, where it is assigned."""
    ctx = get_context()
    await ctx.media.remove_camera(camera.id)
    await ctx.cameras.forget(camera.id)
    await _start_ingest(camera)


async def _start_ingest(camera: Camera) -> None:
    ctx = get_context()
    if not (ctx.media.started and camera.enabled and ctx.settings.media.always_on):
        return
    try:
        await ctx.media.ingest(camera)
    except Conflict as err:
        # A media server that is away when it is given a camera takes it when it comes: the
        # app server tells each arriving server to ingest its cameras. The change is stored,
        # so answering an error for it would say it failed when it did not.
        if camera.media_server_id is None or not isinstance(err.__cause__, BusUnavailable):
            raise
        log.warning("camera %s waits for its media server: %s", camera.name, err.message)


async def _identity(driver: CameraDriver) -> dict[str, Any]:
    info = await driver.identify()
    streams = await driver.streams()
    return {
        "identity": {"manufacturer": info.manufacturer, "model": info.model, "firmware": info.firmware,
                     "serial": info.serial, "warnings": list(info.warnings)},
        "streams": [{"name": p.name, "codec": p.codec, "width": p.width, "height": p.height, "fps": p.fps,
                     "audio_codec": p.audio_codec} for p in streams],
        "capabilities": driver.capabilities.names(),
    }


def _preset_json(preset: Preset) -> dict[str, str]:
    return {"token": preset.token, "name": preset.name}


def _discovered_json(found: DiscoveredCamera, known: dict[tuple[str, str], int]) -> dict[str, Any]:
    host = str(found.config.get("host", found.address))
    return {"driver": found.driver, "address": found.address, "name": found.name,
            "manufacturer": found.manufacturer, "model": found.model, "serial": found.serial,
            "config": found.config, "camera_id": known.get((found.driver, host))}


# --- the camera list ---------------------------------------------------------------------

@api.get("/camera-drivers")
@require("cameras.view")
async def list_camera_drivers():
    """The installed camera drivers: capabilities, secret fields, and the JSON schema of settings.

    The web UI builds its add-camera form from ``config_schema``.
    """
    drivers = get_context().plugins.camera_drivers
    return jsonify([{
        "name": name,
        "capabilities": klass.capabilities.names(),
        "secret_fields": sorted(_secret_fields(name) & set(klass.Config.model_fields)),
        "config_schema": klass.Config.model_json_schema(),
        "description": (klass.__doc__ or "").strip().splitlines()[0] if klass.__doc__ else "",
    } for name, klass in sorted(drivers.items())])


@api.get("/cameras")
@require("cameras.view")
@responds(200, list[CameraOut], description="All cameras.")
async def list_cameras():
    """The cameras of the rooms the caller may see (all, for a grant of every room)."""
    ctx = get_context()
    visible = caller().access.rooms("cameras.view")
    async with ctx.db.session() as s:
        query = select(Camera).order_by(Camera.name)
        cameras = (await s.exec(query if visible is None else query.where(Camera.room_id.in_(visible)))).all()
    return jsonify([camera_json(c, ctx.cameras) for c in cameras])


@api.post("/cameras")
@require("cameras.manage")
@body(CameraCreate)
@responds(201, CameraOut, description="The camera, added.", errors=(409,))
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
        if data.media_server_id is not None and await s.get(MediaServer, data.media_server_id) is None:
            raise ValidationFailed(f"no media server {data.media_server_id}", fields={"media_server_id": "unknown"})
        server_id = data.media_server_id
        if data.media_server_pool is not None:
            server_id = await _least_loaded_of(s, data.media_server_pool)
        camera = Camera(name=data.name, driver=data.driver, room_id=data.room_id, media_server_id=server_id,
                        config=config, enabled=data.enabled, status="unknown" if data.enabled else "disabled")
        s.add(camera)
        try:
            await s.commit()
        except IntegrityError as err:
            raise Conflict(f"a camera named {data.name!r} already exists") from err
    await _start_ingest(camera)
    await _audit("camera.create", camera, driver=camera.driver)
    return jsonify(camera_json(camera, ctx.cameras)), 201


@api.get("/cameras/<int:camera_id>")
@require("cameras.view")
@responds(200, CameraOut, description="The camera.")
async def get_camera(camera_id: int):
    """One camera."""
    return jsonify(camera_json(await _camera(camera_id, "cameras.view"), get_context().cameras))


@api.patch("/cameras/<int:camera_id>")
@require("cameras.manage")
@body(CameraUpdate)
@responds(200, CameraOut, description="The camera.", errors=(409,))
async def update_camera(camera_id: int):
    """Rename, move, enable or disable a camera, or change its driver settings.

    New settings are validated by the driver before they are stored, and ingest restarts
    with them. Refused (409) while the camera's room is recording.
    """
    data = await read_body(CameraUpdate)
    ctx = get_context()
    changed = data.model_fields_set
    async with ctx.db.session() as s:
        camera = await s.get(Camera, camera_id)
        if camera is None:
            raise NotFound(f"no camera {camera_id}")
        if changed & {"config", "enabled", "media_server_id"}:
            _not_recording(camera, "change its settings")
        moving = "media_server_id" in changed and await assign_media_server(s, camera, data.media_server_id)
        # Look the room up before changing anything: the lookup would flush a new name early,
        # and a taken name would then fail there instead of as the 409 below.
        if "room_id" in changed and data.room_id is not None and await s.get(Room, data.room_id) is None:
            raise ValidationFailed(f"no room {data.room_id}", fields={"room_id": "unknown room"})
        if data.name is not None:
            camera.name = data.name
        if "room_id" in changed:
            camera.room_id = data.room_id
        if data.enabled is not None and data.enabled != camera.enabled:
            camera.enabled = data.enabled
            camera.status = "starting" if data.enabled else "disabled"
            camera.status_reason = ""
            camera.status_changed_at = utcnow()
        if data.config is not None:
            merged = merge_config(camera, data.config)
            driver = ctx.plugins.build_camera_driver(camera.driver, merged)
            camera.config = driver.config.model_dump(mode="json")
        s.add(camera)
        try:
            await s.commit()
        except IntegrityError as err:
            raise Conflict(f"a camera named {data.name!r} already exists") from err
    if changed & {"config", "enabled"} or moving:
        if not camera.enabled:
            ctx.live.camera_closed(camera.id, f"camera {camera.name!r} was disabled")
        await restart_ingest(camera)
    await _audit("camera.update", camera, fields=sorted(changed))
    return jsonify(camera_json(camera, ctx.cameras))


@api.delete("/cameras/<int:camera_id>")
@require("cameras.manage")
@responds(204, media_type=None, description="Removed.", errors=(409,))
async def delete_camera(camera_id: int):
    """Remove a camera. Its past recordings stay; refused (409) while its room is recording."""
    ctx = get_context()
    camera = await _camera(camera_id)
    _not_recording(camera, "remove it")
    ctx.live.camera_closed(camera_id, f"camera {camera.name!r} was removed")
    await ctx.media.remove_camera(camera_id)
    await ctx.cameras.forget(camera_id)
    async with ctx.db.session() as s:
        row = await s.get(Camera, camera_id)
        if row is not None:
            await s.delete(row)
            await s.commit()
    await _audit("camera.delete", camera, driver=camera.driver)
    return "", 204


# --- talking to devices ------------------------------------------------------------------

@api.post("/cameras/probe")
@require("cameras.manage")
@body(CameraProbe)
@responds(200, description="What the device says.", errors=(501, 502))
async def probe_camera():
    """Try settings before adding a camera: the device's identity, streams and capabilities."""
    data = await read_body(CameraProbe)
    return jsonify(await get_context().cameras.trial(data.driver, data.config, _identity))


@api.post("/cameras/<int:camera_id>/test")
@require("cameras.manage")
@responds(200, description="What the device says.", errors=(501, 502))
async def test_camera(camera_id: int):
    """Test the connection to a camera: its identity, streams and capabilities."""
    ctx = get_context()
    camera = await _camera(camera_id)
    return jsonify(await ctx.cameras.call(camera, _identity, what="be reached"))


@api.post("/cameras/discover")
@require("cameras.manage")
@body(DiscoverRequest)
async def discover_cameras():
    """Look for cameras on the camera networks (``[cameras] discovery_addresses``).

    Each device found says which driver speaks to it and the settings it told; ``camera_id``
    is set when a camera with that driver and host is already added.
    """
    data = await read_body(DiscoverRequest)
    ctx = get_context()
    timeout_s = data.timeout_s or ctx.settings.cameras.discovery_timeout_s
    started = time.monotonic()
    found = await ctx.plugins.discover_cameras(timeout_s, ctx.settings.cameras.discovery_addresses)
    async with ctx.db.session() as s:
        cameras = (await s.exec(select(Camera))).all()
    known = {(c.driver, str((c.config or {}).get("host", ""))): c.id for c in cameras}
    await ctx.audit.record("camera.discover", actor=caller().user, detail={"found": len(found)},
                           remote_addr=remote_addr())
    return jsonify({"found": [_discovered_json(f, known) for f in found],
                    "took_s": round(time.monotonic() - started, 3)})


@api.get("/cameras/<int:camera_id>/snapshot")
@require("live.watch")
@responds(200, media_type="image/jpeg", description="A JPEG still.", errors=(409, 501, 502))
async def camera_snapshot(camera_id: int):
    """A JPEG still from the camera (audited: it shows the room).

    The driver takes it when it can; otherwise it is the newest keyframe of the live stream.
    """
    ctx = get_context()
    camera = await _enabled_camera(camera_id, "live.watch")
    if Capability.SNAPSHOT in ctx.cameras.capabilities(camera):
        jpeg = await _control(camera, "snapshot", Capability.SNAPSHOT, "take snapshots")
    else:
        jpeg = await ctx.media.still(camera)
    await _audit("camera.snapshot", camera)
    return Response(jpeg, mimetype="image/jpeg", headers={"Cache-Control": "no-store"})


@api.get("/cameras/<int:camera_id>/live")
@require("live.watch")
@responds(200, description="A live token and where each transport serves the camera.", errors=(409,))
async def camera_live(camera_id: int):
    """A short-lived token to watch the camera live, and where each transport serves it (audited).

    A camera on a media server whose live mode is ``direct`` is watched on that server: the
    endpoints are absolute addresses of its live port, and the token is one only it accepts.
    Otherwise the endpoints are on this server, which relays the camera when it is elsewhere.
    """
    ctx = get_context()
    camera = await _enabled_camera(camera_id, "live.watch")
    server, base, key = await _live_route(camera)
    token, expires = issue_media_token(key, camera_id, caller().user.id, ctx.settings.live.token_ttl_s,
                                       camera_created=camera_key(camera.created_at), session_id=caller().token.id)
    # Watching a room is an access like playing a recording: who, which camera, when. Opening
    # the stream with the token is audited again (camera.live.open) by the transport's host.
    await _audit("camera.live", camera)
    endpoints = {}
    for name, transport in ctx.transports.items():
        url = transport.viewer_url(camera_id, token)
        if url:
            endpoints[name] = base + url
    return jsonify({"camera_id": camera_id, "status": camera.status, "token": token,
                    "expires_at": datetime.fromtimestamp(expires, timezone.utc).isoformat(),
                    "endpoints": endpoints, "media_server": server, "live_mode": "direct" if base else "relayed"})


async def _control(camera: Camera, action: str, needs: Capability, what: str, **args: Any) -> Any:
    """Call the camera's driver where the camera is reached: here, or on its media server over the bus.

    The answer is what the driver returned as JSON (dataclasses as dicts), or the bytes of a snapshot.
    """
    ctx = get_context()
    if needs and needs not in ctx.cameras.capabilities(camera):
        raise NotSupported(f"camera {camera.name!r} ({camera.driver}) cannot {what}")
    server = None if camera.media_server_id is None and ctx.engine is not None else await ctx.media.server_for(camera)
    if server is None or (ctx.engine is not None and server == ctx.engine.name):
        result = await ctx.cameras.call(camera, lambda d: getattr(d, action)(**args), needs, what)
        if isinstance(result, list):
            return [dataclasses.asdict(r) for r in result]
        return dataclasses.asdict(result) if dataclasses.is_dataclass(result) else result
    spec = camera_spec(camera)
    command = SnapshotCamera(camera=spec) if action == "snapshot" else ControlCamera(camera=spec, action=action,
                                                                                      args=args)
    answer = await ctx.media.command(command, server, timeout_s=ctx.settings.cameras.control_timeout_s + 5)
    return answer if isinstance(answer, bytes) else answer.value  # type: ignore[union-attr]


async def _live_route(camera: Camera) -> tuple[str | None, str, bytes]:
    """(media server, address prefix of the endpoints, key the token is signed with) for live view."""
    ctx = get_context()
    if camera.media_server_id is None:
        return (ctx.engine.name if ctx.engine else None), "", ctx.secret
    async with ctx.db.session() as s:
        row = await s.get(MediaServer, camera.media_server_id)
    if row is None:
        return None, "", ctx.secret
    live_url = str((ctx.media.cluster.present.get(row.name) or {}).get("live_url") or "")
    if row.live_mode != "direct" or not live_url:
        # Relayed, or a direct server that has no live port (or is away): through this server.
        return row.name, "", ctx.secret
    return row.name, live_url.rstrip("/"), ctx.media.live_key(row.name)


@api.get("/cameras/<int:camera_id>/ptz")
@require("cameras.view")
@responds(200, description="Where the camera points.", errors=(409, 501, 502))
async def camera_ptz_position(camera_id: int):
    """Where a PTZ camera points: pan and tilt -1..1, zoom 0..1, and whether it is moving."""
    camera = await _camera(camera_id, "cameras.view")
    pos = PtzPosition(**await _control(camera, "ptz_position", Capability.PTZ, "pan, tilt or zoom"))
    return jsonify({"pan": pos.pan, "tilt": pos.tilt, "zoom": pos.zoom, "moving": pos.moving})


@api.post("/cameras/<int:camera_id>/ptz")
@require("cameras.control")
@body(PtzRequest)
@responds(204, media_type=None, description="Done.", errors=(409, 501, 502))
async def camera_ptz(camera_id: int):
    """Steer a PTZ camera: ``move`` (press and hold), ``stop``, ``absolute``, ``relative``, ``goto_preset``."""
    data = await read_body(PtzRequest)
    camera = await _camera(camera_id, "cameras.control")
    where = {"pan": data.pan, "tilt": data.tilt, "zoom": data.zoom}
    if data.action == "move":
        await _control(camera, "ptz_move", Capability.PTZ, "pan, tilt or zoom", **where)
    elif data.action == "stop":
        await _control(camera, "ptz_stop", Capability.PTZ, "pan, tilt or zoom")
    elif data.action == "absolute":
        await _control(camera, "ptz_absolute", Capability.PTZ_ABSOLUTE, "move to a position", **where)
    elif data.action == "relative":
        await _control(camera, "ptz_relative", Capability.PTZ_RELATIVE, "move by a step", **where)
    else:
        preset = data.preset or ""
        await _control(camera, "goto_preset", Capability.PRESETS, "use presets", token=preset)
        await _audit("camera.preset.goto", camera, preset=preset)
    return "", 204


@api.get("/cameras/<int:camera_id>/presets")
@require("cameras.view")
@responds(200, description="The presets.", errors=(409, 501, 502))
async def camera_presets(camera_id: int):
    """The camera's stored positions."""
    camera = await _camera(camera_id, "cameras.view")
    presets = await _control(camera, "presets", Capability.PRESETS, "use presets")
    return jsonify([_preset_json(Preset(**p)) for p in presets])


@api.post("/cameras/<int:camera_id>/presets")
@require("cameras.control")
@body(PresetCreate)
@responds(201, description="The preset.", errors=(409, 501, 502))
async def save_camera_preset(camera_id: int):
    """Store where the camera points now under a name (replacing a preset of that name)."""
    data = await read_body(PresetCreate)
    camera = await _camera(camera_id, "cameras.control")
    preset = Preset(**await _control(camera, "save_preset", Capability.PRESETS, "use presets", name=data.name))
    await _audit("camera.preset.save", camera, preset=preset.token, preset_name=preset.name)
    return jsonify(_preset_json(preset)), 201


@api.delete("/cameras/<int:camera_id>/presets/<token>")
@require("cameras.control")
@responds(204, media_type=None, description="Deleted.", errors=(409, 501, 502))
async def delete_camera_preset(camera_id: int, token: str):
    """Delete a stored position."""
    camera = await _camera(camera_id, "cameras.control")
    await _control(camera, "remove_preset", Capability.PRESETS, "use presets", token=token)
    await _audit("camera.preset.delete", camera, preset=token)
    return "", 204
