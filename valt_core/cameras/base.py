"""The camera driver contract: what every driver in ``valt.cameras`` offers.

A driver is a thin class: it declares ``name``, a pydantic ``Config`` model and its
``capabilities``, and answers the methods below. Anything the device does not do raises
:class:`~valt_core.errors.NotSupported` (the default here), and the UI only shows what the
capability flags promise.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel

from ..errors import NotSupported

#: Config keys treated as secrets whatever the driver says (safe by default).
SECRET_FIELD_NAMES = frozenset({"password", "passphrase", "secret", "token", "api_key", "private_key"})
#: Settings that say where a camera is. When one changes, a stored secret is kept only if the
#: request enters it again: a masked password must never follow a camera to a new address.
ADDRESS_FIELD_NAMES = frozenset({"host", "port", "http_port", "rtsp_port", "url", "sub_url", "uri", "address"})


class Capability(enum.Flag):
    """What a driver can do with its device."""

    NONE = 0
    STREAM = enum.auto()
    """Gives live media (a stream URI or an in-process media input)."""
    AUDIO = enum.auto()
    """The stream may carry audio."""
    SNAPSHOT = enum.auto()
    """Takes a JPEG still."""
    PTZ = enum.auto()
    """Continuous pan, tilt and zoom moves, stop, and the current position."""
    PTZ_ABSOLUTE = enum.auto()
    """Moves to a given position."""
    PTZ_RELATIVE = enum.auto()
    """Moves by a given step from where it is."""
    PRESETS = enum.auto()
    """Stored PTZ positions: list, save, go to, delete."""
    DISCOVERY = enum.auto()
    """Finds devices of its kind on the network."""

    def names(self) -> list[str]:
        """The flag names set, lower case, for JSON answers."""
        return [c.name.lower() for c in Capability if c and c in self and c.name]


#: Every PTZ-related flag: what a driver drops when the device turns out to have no PTZ.
PTZ_CAPABILITIES = Capability.PTZ | Capability.PTZ_ABSOLUTE | Capability.PTZ_RELATIVE | Capability.PRESETS


@dataclass(frozen=True)
class DeviceInfo:
    """Identity of a device, as the device reports it."""

    manufacturer: str
    model: str
    firmware: str = ""
    serial: str = ""
    warnings: tuple[str, ...] = ()
    """Things a person should fix on the device (a clock far off, say), shown when testing it."""


@dataclass(frozen=True)
class StreamProfile:
    """One stream a camera offers, e.g. ``main`` (full size) or ``sub`` (small)."""

    name: str
    codec: str
    width: int
    height: int
    fps: float
    audio_codec: str | None = None


@dataclass(frozen=True)
class PtzPosition:
    """Where a PTZ camera points, in Valt's normalised units.

    ``pan`` and ``tilt`` run from -1.0 to 1.0 over the device's range and ``zoom`` from 0.0
    (widest) to 1.0 (closest), the way ONVIF's generic spaces do; drivers of devices that speak
    degrees or steps convert at their edge.
    """

    pan: float
    tilt: float
    zoom: float
    moving: bool = False


@dataclass(frozen=True)
class Preset:
    """A stored PTZ position: ``token`` addresses it on the device, ``name`` is for people."""

    token: str
    name: str


@dataclass(frozen=True)
class DiscoveredCamera:
    """A device found on the network, enough to add it as a camera.

    ``config`` holds the driver settings the device's answer told (host, ports); the person
    adding it fills in the rest (credentials).
    """

    driver: str
    address: str
    name: str = ""
    manufacturer: str = ""
    model: str = ""
    serial: str = ""
    config: dict[str, Any] = field(default_factory=dict)


def rtsp_url_with_credentials(url: str, username: str, password: str) -> str:
    """``url`` with percent-encoded credentials in its authority part (unchanged without a user)."""
    if not username:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class MediaInput(Protocol):
    """Something the media engine reads packets from, shaped like a PyAV input container.

    An RTSP camera's input *is* a PyAV container; a simulated camera offers the same three
    members, so everything downstream of ingest handles both alike.
    """

    streams: Any
    """The container's streams (``.video``, ``.audio``), each with its codec context."""

    def demux(self, *streams: Any) -> Iterator[Any]:
        """Yield encoded ``av.Packet`` objects, in decode order, until the source ends."""

    def close(self) -> None:
        """Release the source."""

    # An input whose ``demux()`` may wait a long time for media that is pushed to it (a phone
    # over RTMP) also offers ``interrupt()``: called from another thread when the engine stops,
    # it makes a waiting ``demux()`` end at once. Opened inputs need none (FFmpeg's socket
    # timeout ends them).


class CameraDriver(ABC):
    """Base class of every camera driver.

    Drivers are built with their validated ``Config`` and must not do network I/O in
    ``__init__``: connecting happens in the async methods, each under a timeout.
    """

    name: ClassVar[str]
    """Short name used in settings and the API (``onvif``, ``axis``, ``sim``)."""
    Config: ClassVar[type[BaseModel]]
    """Pydantic model of the driver's per-camera settings."""
    capabilities: ClassVar[Capability] = Capability.STREAM
    """What this driver can do; the UI and API offer only these."""
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    """Config fields that hold secrets, besides the usual names in :data:`SECRET_FIELD_NAMES`:
    stored, never returned by the API or logged."""
    address_fields: ClassVar[frozenset[str]] = ADDRESS_FIELD_NAMES
    """Config fields that say where the camera is (see :data:`ADDRESS_FIELD_NAMES`)."""
    pushed: ClassVar[bool] = False
    """True when the device sends its media to Valt (RTMP from a phone) instead of being opened:
    :meth:`open_media` waits a moment for it and raises :class:`~valt_core.push.NotPublishing`
    when nothing is publishing, and the engine asks again at once rather than backing off."""

    def __init__(self, config: BaseModel) -> None:
        self.config = config

    @abstractmethod
    async def identify(self) -> DeviceInfo:
        """Ask the device who it is."""

    @abstractmethod
    async def streams(self) -> list[StreamProfile]:
        """List the streams the device offers, main first."""

    async def stream_uri(self, profile: str = "main") -> str:
        """The URI the media engine opens for ``profile`` (usually ``rtsp://...``)."""
        raise NotSupported(f"camera driver {self.name!r} gives no stream URI")

    def open_media(self, profile: str = "main", uri: str | None = None) -> MediaInput:
        """Open the live media of ``profile``; blocking, so the engine calls it in a thread.

        The default opens ``uri`` (from :meth:`stream_uri`) with PyAV, RTSP over TCP with
        FFmpeg's own socket timeout. Drivers with an in-process source override this.
        """
        if uri is None:
            raise NotSupported(f"camera driver {self.name!r} needs a stream URI to open media")
        import av  # imported here: only the media path needs PyAV

        options = {"rtsp_transport": "tcp", "timeout": "5000000"} if uri.startswith("rtsp") else {}
        return av.open(uri, options=options)

    async def snapshot(self) -> bytes:
        """A JPEG still of the main stream."""
        raise NotSupported(f"camera driver {self.name!r} takes no snapshots")

    async def ptz_move(self, pan: float, tilt: float, zoom: float) -> None:
        """Start a continuous move; speeds from -1.0 to 1.0 (0 leaves that axis still)."""
        raise NotSupported(f"camera driver {self.name!r} has no PTZ")

    async def ptz_stop(self) -> None:
        """Stop any PTZ move."""
        raise NotSupported(f"camera driver {self.name!r} has no PTZ")

    async def ptz_position(self) -> PtzPosition:
        """Where the camera points now (see :class:`PtzPosition` for the units)."""
        raise NotSupported(f"camera driver {self.name!r} has no PTZ")

    async def ptz_absolute(self, pan: float, tilt: float, zoom: float) -> None:
        """Move to a position (pan and tilt -1.0 to 1.0, zoom 0.0 to 1.0)."""
        raise NotSupported(f"camera driver {self.name!r} cannot move to a position")

    async def ptz_relative(self, pan: float, tilt: float, zoom: float) -> None:
        """Move by a step in the same units as :meth:`ptz_absolute`."""
        raise NotSupported(f"camera driver {self.name!r} cannot move by a step")

    async def presets(self) -> list[Preset]:
        """The stored positions."""
        raise NotSupported(f"camera driver {self.name!r} has no presets")

    async def save_preset(self, name: str) -> Preset:
        """Store the current position as ``name`` (replacing a preset of that name)."""
        raise NotSupported(f"camera driver {self.name!r} has no presets")

    async def goto_preset(self, token: str) -> None:
        """Move to a stored position; :class:`~valt_core.errors.NotFound` for an unknown token."""
        raise NotSupported(f"camera driver {self.name!r} has no presets")

    async def remove_preset(self, token: str) -> None:
        """Delete a stored position; :class:`~valt_core.errors.NotFound` for an unknown token."""
        raise NotSupported(f"camera driver {self.name!r} has no presets")

    async def close(self) -> None:  # noqa: B027 - optional: a driver without connections has nothing to do
        """Release connections held by the driver."""
