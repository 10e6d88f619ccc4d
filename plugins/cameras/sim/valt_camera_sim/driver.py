"""The ``sim`` camera driver."""

from __future__ import annotations

import asyncio
import hashlib

from valt_core.cameras import (
    PTZ_CAPABILITIES,
    CameraDriver,
    Capability,
    DeviceInfo,
    Preset,
    PtzPosition,
    StreamProfile,
)
from valt_core.errors import NotSupported, ValidationFailed

from .config import SimCameraConfig
from .ptz import SimulatedPtz
from .source import SimulatedMediaInput, jpeg_snapshot

VERSION = "0.1.0"


class SimulatedCamera(CameraDriver):
    """A camera that exists only in software but sends real H.264 (and AAC)."""

    name = "sim"
    Config = SimCameraConfig
    capabilities = Capability.STREAM | Capability.SNAPSHOT | Capability.AUDIO | PTZ_CAPABILITIES

    config: SimCameraConfig

    def __init__(self, config: SimCameraConfig) -> None:
        super().__init__(config)
        self.ptz = SimulatedPtz() if config.ptz else None
        if self.ptz is None:
            self.capabilities = type(self).capabilities & ~PTZ_CAPABILITIES

    def _head(self) -> SimulatedPtz:
        if self.ptz is None:
            raise NotSupported("this simulated camera has no PTZ (its ptz setting is off)")
        return self.ptz

    def _size(self, profile: str) -> tuple[int, int]:
        if profile == "main":
            return self.config.width, self.config.height
        if profile == "sub":
            # Half size, rounded down: the width to even (4:2:0), the height to a multiple of 4
            # (the painter's need, as for the main size).
            return max(64, self.config.width // 2) & ~1, max(64, self.config.height // 2) & ~3
        raise ValidationFailed(f"unknown stream profile {profile!r} (main, sub)")

    async def identify(self) -> DeviceInfo:
        """A fixed identity; the serial is derived from the settings."""
        serial = hashlib.sha256(self.config.model_dump_json().encode()).hexdigest()[:12].upper()
        return DeviceInfo(manufacturer="Valt", model="Simulated camera", firmware=VERSION, serial=f"SIM-{serial}")

    async def streams(self) -> list[StreamProfile]:
        """``main`` at the configured size and ``sub`` at half size, both H.264."""
        audio = "aac" if self.config.audio else None
        return [
            StreamProfile(p, "h264", *self._size(p), float(self.config.fps), audio) for p in ("main", "sub")
        ]

    async def stream_uri(self, profile: str = "main") -> str:
        """A descriptive URI; the media itself comes from :meth:`open_media`."""
        w, h = self._size(profile)
        return f"sim://{profile}?size={w}x{h}&fps={self.config.fps}"

    def open_media(self, profile: str = "main", uri: str | None = None) -> SimulatedMediaInput:
        """Start the simulated encoder and return its live input (blocking; call in a thread)."""
        return SimulatedMediaInput(self.config, *self._size(profile), ptz=self.ptz)

    async def snapshot(self) -> bytes:
        """A JPEG of the current picture."""
        w, h = self._size("main")
        view = self.ptz.position() if self.ptz is not None else None
        return await asyncio.to_thread(jpeg_snapshot, w, h, self.config.fps, view)

    async def ptz_move(self, pan: float, tilt: float, zoom: float) -> None:
        """Start turning at these speeds."""
        self._head().move(pan, tilt, zoom)

    async def ptz_stop(self) -> None:
        """Stop turning."""
        self._head().stop()

    async def ptz_position(self) -> PtzPosition:
        """Where the simulated head points."""
        return self._head().position()

    async def ptz_absolute(self, pan: float, tilt: float, zoom: float) -> None:
        """Jump to a position."""
        self._head().go(pan, tilt, zoom)

    async def ptz_relative(self, pan: float, tilt: float, zoom: float) -> None:
        """Jump by a step."""
        self._head().go(pan, tilt, zoom, relative=True)

    async def presets(self) -> list[Preset]:
        """Presets saved since Valt started (a simulated head forgets them on restart)."""
        return self._head().presets()

    async def save_preset(self, name: str) -> Preset:
        """Store the position."""
        return self._head().save(name)

    async def goto_preset(self, token: str) -> None:
        """Jump to a preset."""
        self._head().goto(token)

    async def remove_preset(self, token: str) -> None:
        """Forget a preset."""
        self._head().remove(token)
