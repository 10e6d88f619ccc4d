"""The ``rtsp`` camera driver: no vendor API, just the stream."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from valt_core.cameras import CameraDriver, Capability, DeviceInfo, StreamProfile, rtsp_url_with_credentials
from valt_core.errors import CameraAuthFailed, CameraUnreachable, ValidationFailed

from .config import RtspCameraConfig


class RtspCamera(CameraDriver):
    """A camera reached only through its RTSP URL."""

    name = "rtsp"
    Config = RtspCameraConfig
    capabilities = Capability.STREAM | Capability.AUDIO

    config: RtspCameraConfig

    async def stream_uri(self, profile: str = "main") -> str:
        """The main or sub URL with the credentials put in."""
        if profile == "main":
            url = self.config.url
        elif profile == "sub" and self.config.sub_url:
            url = self.config.sub_url
        else:
            raise ValidationFailed(f"unknown stream profile {profile!r} for this camera")
        return rtsp_url_with_credentials(url, self.config.username, self.config.password)

    async def streams(self) -> list[StreamProfile]:
        """What the camera sends, found by opening each stream."""
        profiles = ["main"] + (["sub"] if self.config.sub_url else [])
        return [await asyncio.to_thread(self._probe, p, await self.stream_uri(p)) for p in profiles]

    async def identify(self) -> DeviceInfo:
        """A generic identity (RTSP tells nothing about the device); checks the stream opens."""
        await asyncio.to_thread(self._probe, "main", await self.stream_uri("main"))
        host = urlsplit(self.config.url).hostname or ""
        return DeviceInfo(manufacturer="Unknown", model=f"RTSP camera at {host}")

    def _probe(self, profile: str, uri: str) -> StreamProfile:
        import av

        try:
            media = self.open_media(profile, uri)
        except av.error.HTTPUnauthorizedError as err:
            raise CameraAuthFailed(f"the camera refused the credentials for {self.config.url}") from err
        except (av.error.FFmpegError, OSError) as err:
            raise CameraUnreachable(f"cannot open {self.config.url}: {err}") from err
        try:
            v = media.streams.video[0]
            a = media.streams.audio[0] if media.streams.audio else None
            rate = float(v.average_rate or v.guessed_rate or 0)
            return StreamProfile(profile, v.codec_context.name, v.codec_context.width, v.codec_context.height,
                                 rate, a.codec_context.name if a is not None else None)
        finally:
            media.close()
