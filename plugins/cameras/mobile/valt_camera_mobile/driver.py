"""The ``mobile`` camera driver: its media comes from whatever publishes its stream key.

The driver holds its camera's endpoint in the core's push registry (:mod:`valt_core.push`) and
opens the endpoint's input for the engine; an ingest transport (``rtmp``) feeds the endpoint.
The two never import each other.
"""

from __future__ import annotations

from valt_core.cameras import CameraDriver, Capability, DeviceInfo, StreamProfile
from valt_core.errors import NotSupported, ValidationFailed
from valt_core.push import PushedInput, PushRegistry

from .config import MobileCameraConfig


class MobileCamera(CameraDriver):
    """A phone or tablet that publishes H.264 or H.265 (with AAC) to Valt."""

    name = "mobile"
    Config = MobileCameraConfig
    capabilities = Capability.STREAM | Capability.AUDIO
    secret_fields = frozenset({"key_hash", "revoked_key_hashes"})
    address_fields = frozenset()
    pushed = True

    config: MobileCameraConfig

    def __init__(self, config: MobileCameraConfig, registry: PushRegistry | None = None) -> None:
        super().__init__(config)
        self._registry = registry

    @property
    def registry(self) -> PushRegistry:
        """The push registry this driver's endpoint lives in (the process's, unless given)."""
        return self._registry or PushRegistry.for_process()

    def _endpoint(self):
        c = self.config
        return self.registry.endpoint(c.device, c.key_hash, tuple(c.revoked_key_hashes))

    async def identify(self) -> DeviceInfo:
        """What is known without asking the device: it is a mobile endpoint with this id."""
        return DeviceInfo(manufacturer="Valt", model="Mobile device", serial=self.config.device)

    async def streams(self) -> list[StreamProfile]:
        """What the device publishes, as its last input carried it (``NotSupported`` before it ever did).

        Read from the endpoint, never by opening a second input: that would take the device's
        media away from the engine.
        """
        media = self._endpoint().media
        if media is None:
            raise NotSupported("the device has not published yet: its stream is known once it does")
        codec, width, height, fps, audio = media
        return [StreamProfile("main", codec, width, height, fps, audio)]

    async def stream_uri(self, profile: str = "main") -> str:
        """A descriptive URI; the media itself comes from :meth:`open_media`."""
        if profile != "main":
            raise ValidationFailed(f"a mobile device has one stream, main (not {profile!r})")
        return f"push://{self.config.device}"

    def open_media(self, profile: str = "main", uri: str | None = None) -> PushedInput:
        """The input of the device's current publisher (blocking: waits about a second for one)."""
        if profile != "main":
            raise NotSupported("a mobile device has one stream, main")
        return self._endpoint().open(self.registry.grace_s)

    async def close(self) -> None:
        """Stop accepting the device's key here (the camera was changed or removed)."""
        self.registry.release(self.config.device, self.config.key_hash)
