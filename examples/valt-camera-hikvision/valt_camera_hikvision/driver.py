"""The ``hikvision`` camera driver: a thin layer over :mod:`.client`."""

from __future__ import annotations

import asyncio

from valt_core.cameras import CameraDriver, Capability, DeviceInfo, StreamProfile
from valt_core.errors import ValidationFailed

from .client import IsapiClient, rtsp_url
from .config import HikvisionConfig

#: Valt's profile names -> Hikvision stream numbers (the last two digits of ``101``, ``102``).
PROFILES = {"main": 1, "sub": 2}


class HikvisionCamera(CameraDriver):
    """A Hikvision IP camera: ISAPI over HTTP for identity and stills, RTSP for live media."""

    name = "hikvision"
    Config = HikvisionConfig
    capabilities = Capability.STREAM | Capability.SNAPSHOT
    # The core masks "password" by name anyway; listing it keeps the driver's secrets explicit.
    secret_fields = frozenset({"password"})

    config: HikvisionConfig

    def _client(self) -> IsapiClient:
        cfg = self.config
        return IsapiClient(cfg.host, cfg.http_port, cfg.username, cfg.password)

    def _stream(self, profile: str) -> int:
        try:
            return PROFILES[profile]
        except KeyError:
            raise ValidationFailed(f"unknown stream profile {profile!r} (main, sub)") from None

    async def identify(self) -> DeviceInfo:
        """Ask the camera's ISAPI who it is (``/ISAPI/System/deviceInfo``)."""
        info = await asyncio.to_thread(self._client().device_info)
        return DeviceInfo(
            manufacturer=info.manufacturer or "Hikvision",
            model=info.model,
            firmware=info.firmware,
            serial=info.serial,
        )

    async def streams(self) -> list[StreamProfile]:
        """``main`` (stream ``<channel>01``) and ``sub`` (``<channel>02``).

        Asks the camera nothing: H.264 is assumed and the size and rate are reported as 0
        (unknown); the real values are in the stream itself.
        """
        return [StreamProfile(name=p, codec="h264", width=0, height=0, fps=0.0) for p in PROFILES]

    async def stream_uri(self, profile: str = "main") -> str:
        """``rtsp://USER:PASS@HOST:PORT/Streaming/Channels/<channel>01`` (or ``02`` for ``sub``)."""
        cfg = self.config
        return rtsp_url(cfg.host, cfg.rtsp_port, cfg.channel, self._stream(profile), cfg.username, cfg.password)

    async def snapshot(self) -> bytes:
        """A JPEG of the main stream, from ``/ISAPI/Streaming/channels/<channel>01/picture``."""
        return await asyncio.to_thread(self._client().snapshot, self.config.channel, PROFILES["main"])
