"""Every hook Valt calls, declared once, typed, with when it is called and what it returns.

Plugins implement these with ``@valt_core.hookimpl``. Registration hooks return lists of
classes (the datasette pattern); event hooks are notifications whose return value is ignored.
An event hook may be ``async def``: the core awaits the results in registration order.
Every hook here must be described in ``docs/hooks.md`` (a test checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable

import pluggy

if TYPE_CHECKING:
    from .auth.base import AuthBackend
    from .cameras.base import CameraDriver, DiscoveredCamera
    from .storage.base import StorageBackend
    from .transports.base import Transport

PROJECT_NAME = "valt"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --- registration ------------------------------------------------------------------------

@hookspec
def valt_register_camera_drivers() -> list[type["CameraDriver"]]:
    """Return the camera driver classes this plugin provides.

    Called once when the plugin host starts. Each class names itself with ``name``; two drivers
    with one name are an error.
    """


@hookspec
def valt_register_transports() -> list[type["Transport"]]:
    """Return the transport classes (live delivery or ingest) this plugin provides.

    Called once when the plugin host starts.
    """


@hookspec
def valt_register_storage_backends() -> list[type["StorageBackend"]]:
    """Return the storage backend classes this plugin provides.

    Called once when the plugin host starts; ``[storage] driver`` picks one by name.
    """


@hookspec
def valt_register_auth_backends() -> list[type["AuthBackend"]]:
    """Return the authentication backend classes this plugin provides.

    Called once when the plugin host starts; ``[auth] backends`` lists those in use, in the
    order they are asked.
    """


# --- discovery ---------------------------------------------------------------------------

@hookspec
def valt_discover_cameras(
    timeout_s: float, addresses: list[str]
) -> "Awaitable[list[DiscoveredCamera]] | list[DiscoveredCamera]":
    """Look for cameras on the network for at most ``timeout_s`` seconds.

    Called when a person asks Valt to look for cameras. ``addresses`` are the local IPv4
    addresses to send probes from, one per camera network (``[cameras] discovery_addresses``);
    empty means the system's default interface. Probe only from those: a site's office LAN is
    not the camera network. Return (or resolve to) the devices found; the core merges every
    plugin's answers. A plugin whose probe fails logs it and returns what it has.
    """


# --- lifecycle events --------------------------------------------------------------------

@hookspec
def valt_camera_status_changed(camera_id: int, status: str, previous: str) -> Any:
    """A camera's ingest state changed (``online``, ``offline``, ``no_frames``)."""


@hookspec
def valt_recording_started(recording_id: int, room_id: int) -> Any:
    """A recording of a room started."""


@hookspec
def valt_recording_paused(recording_id: int) -> Any:
    """A running recording was paused; paused time is not recorded."""


@hookspec
def valt_recording_resumed(recording_id: int) -> Any:
    """A paused recording was resumed."""


@hookspec
def valt_recording_stopped(recording_id: int, state: str) -> Any:
    """A recording ended; ``state`` is ``stopped``, or ``interrupted`` when the next start
    found it cut off by an unclean stop. An uploaded recording is announced this way once it is
    made (``stopped``)."""


@hookspec
def valt_segment_written(recording_id: int, track_id: int, segment_id: int, key: str) -> Any:
    """A segment of a track was written to storage and indexed."""


@hookspec
def valt_clip_ready(clip_id: int) -> Any:
    """A clip job finished and its files can be downloaded."""


# --- markers -----------------------------------------------------------------------------

@hookspec
def valt_marker_added(marker_id: int, recording_id: int) -> Any:
    """A marker was added to a recording (``POST /api/v1/recordings/{id}/markers``).

    Called after the row is stored and the addition audited; read it from the ``markers`` table.
    """


@hookspec
def valt_marker_changed(marker_id: int, recording_id: int) -> Any:
    """A marker's event text, time, duration or colour changed (``PATCH /api/v1/markers/{id}``).

    Called after the change is stored and audited; a request that changes nothing calls nothing.
    """


@hookspec
def valt_marker_removed(marker_id: int, recording_id: int) -> Any:
    """A marker was deleted (``DELETE /api/v1/markers/{id}``); its row is already gone."""
