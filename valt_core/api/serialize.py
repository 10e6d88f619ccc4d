"""How database rows are shown in API answers (never with secrets)."""

from __future__ import annotations

from typing import Any

from ..cameras.base import SECRET_FIELD_NAMES
from ..cameras.service import CameraService
from ..db.models import ROLES, Camera, Group, Room, User
from ..redact import redact

MASK = "********"


def cameras_by_room(cameras: list[Camera]) -> dict[int | None, list[Camera]]:
    """Cameras grouped by room id (``None``: not in a room), keeping their order."""
    grouped: dict[int | None, list[Camera]] = {}
    for cam in cameras:
        grouped.setdefault(cam.room_id, []).append(cam)
    return grouped


def user_json(user: User, groups: list[Group]) -> dict[str, Any]:
    """A user and their groups, without the password hash or lockout internals. ``role`` is the
    most powerful built-in group they are in ("" when none)."""
    builtin = {g.builtin for g in groups}
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "role": next((r for r in ROLES if r in builtin), ""),
        "groups": [{"id": g.id, "name": g.name} for g in groups],
        "auth_backend": user.auth_backend,
        "disabled": user.disabled,
        "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
    }


def room_json(room: Room, cameras: list[Camera] | None = None, service: CameraService | None = None,
              recording: Any = None) -> dict[str, Any]:
    """A room, with its cameras when given, and its running recording (``None`` when idle)."""
    out: dict[str, Any] = {"id": room.id, "name": room.name, "description": room.description}
    out["recording"] = None if recording is None else {
        "id": recording.recording_id, "state": recording.state, "elapsed_s": round(recording.clock.now(), 3)}
    if cameras is not None:
        out["cameras"] = [camera_json(c, service) for c in cameras]
    return out


def camera_json(camera: Camera, service: CameraService | None = None) -> dict[str, Any]:
    """A camera with secret config fields masked and its capabilities.

    The capabilities are the driver's, narrowed to what the device itself offers once the
    driver has spoken to it (an ONVIF camera without PTZ shows no PTZ controls).
    """
    secret_fields = SECRET_FIELD_NAMES
    capabilities: list[str] = []
    if service is not None and camera.driver in service.plugins.camera_drivers:
        klass = service.plugins.camera_drivers[camera.driver]
        secret_fields = secret_fields | klass.secret_fields
        capabilities = service.capabilities(camera).names()
    # Secret fields masked; a password typed into a URL field is masked inside the URL.
    config = {k: (MASK if k in secret_fields and v else redact(v) if isinstance(v, str) else v)
              for k, v in (camera.config or {}).items()}
    return {
        "id": camera.id,
        "name": camera.name,
        "room_id": camera.room_id,
        "driver": camera.driver,
        "config": config,
        "enabled": camera.enabled,
        "media_server_id": camera.media_server_id,
        "status": camera.status,
        # Why it is not online, in plain words ("wrong credentials", "unreachable", ...).
        "status_reason": camera.status_reason,
        "capabilities": capabilities,
    }
