"""The ``onvif`` camera driver: Valt's contract on top of :mod:`.device`."""

from __future__ import annotations

from valt_core.cameras import (
    PTZ_CAPABILITIES,
    CameraDriver,
    Capability,
    DeviceInfo,
    Preset,
    PtzPosition,
    StreamProfile,
    rtsp_url_with_credentials,
)
from valt_core.errors import NotFound, NotSupported, ValidationFailed

from .config import OnvifCameraConfig
from .device import MediaProfile, OnvifDevice


class OnvifCamera(CameraDriver):
    """An ONVIF Profile S camera: identity, streams, snapshots, PTZ and presets."""

    name = "onvif"
    Config = OnvifCameraConfig
    capabilities = Capability.STREAM | Capability.AUDIO | Capability.SNAPSHOT | Capability.DISCOVERY | PTZ_CAPABILITIES

    config: OnvifCameraConfig

    def __init__(self, config: OnvifCameraConfig) -> None:
        super().__init__(config)
        self.device = OnvifDevice(config.host, config.port, config.username, config.password,
                                  config.clock_warning_s)

    async def _profile(self, name: str) -> MediaProfile:
        profiles = await self.device.profiles()
        if not profiles:
            raise NotSupported(f"the ONVIF device at {self.device.where} has no media profiles")
        wanted = {"main": self.config.main_profile, "sub": self.config.sub_profile}.get(name)
        if wanted is None:
            raise ValidationFailed(f"unknown stream profile {name!r} (main, sub)")
        if wanted:
            for p in profiles:
                if p.token == wanted:
                    return p
            raise NotFound(f"the ONVIF device at {self.device.where} has no media profile {wanted!r} "
                           f"(it has {', '.join(p.token for p in profiles)})")
        index = 0 if name == "main" else 1
        if index >= len(profiles):
            raise NotFound(f"the ONVIF device at {self.device.where} has only one media profile, no sub stream")
        return profiles[index]

    async def _ptz_profile(self) -> str:
        if not await self.device.has_ptz():
            self.capabilities = type(self).capabilities & ~PTZ_CAPABILITIES
            raise NotSupported(f"the ONVIF device at {self.device.where} has no PTZ")
        return (await self._profile("main")).token

    async def identify(self) -> DeviceInfo:
        """GetDeviceInformation; also narrows the capabilities to what this device has."""
        info = await self.device.call("devicemgmt", "GetDeviceInformation")
        if not await self.device.has_ptz():
            self.capabilities = type(self).capabilities & ~PTZ_CAPABILITIES
        return DeviceInfo(manufacturer=str(info.Manufacturer or ""), model=str(info.Model or ""),
                          firmware=str(info.FirmwareVersion or ""), serial=str(info.SerialNumber or ""),
                          warnings=tuple(self.device.warnings))

    async def streams(self) -> list[StreamProfile]:
        """``main`` and (when the device has a second profile) ``sub``, as the device describes them."""
        out = []
        for name in ("main", "sub"):
            try:
                p = await self._profile(name)
            except NotFound:
                if name == "main":
                    raise
                continue
            out.append(StreamProfile(name, p.encoding, p.width, p.height, p.fps, p.audio_encoding))
        return out

    async def stream_uri(self, profile: str = "main") -> str:
        """GetStreamUri for the profile, with the account's credentials put in."""
        uri = await self.device.stream_uri((await self._profile(profile)).token)
        return rtsp_url_with_credentials(uri, self.config.username, self.config.password)

    async def snapshot(self) -> bytes:
        """The main profile's snapshot URI, fetched with HTTP digest auth."""
        return await self.device.snapshot((await self._profile("main")).token)

    async def ptz_move(self, pan: float, tilt: float, zoom: float) -> None:
        """ContinuousMove in the generic velocity space."""
        await self.device.call("ptz", "ContinuousMove", {
            "ProfileToken": await self._ptz_profile(),
            "Velocity": {"PanTilt": {"x": pan, "y": tilt}, "Zoom": {"x": zoom}},
        })

    async def ptz_stop(self) -> None:
        """Stop pan, tilt and zoom."""
        await self.device.call("ptz", "Stop", {"ProfileToken": await self._ptz_profile(),
                                               "PanTilt": True, "Zoom": True})

    async def ptz_position(self) -> PtzPosition:
        """GetStatus: the position and whether either axis group is moving."""
        status = await self.device.call("ptz", "GetStatus", {"ProfileToken": await self._ptz_profile()})
        pos = status.Position
        move = getattr(status, "MoveStatus", None)
        moving = any(str(getattr(move, axis, "") or "").upper() == "MOVING" for axis in ("PanTilt", "Zoom"))
        return PtzPosition(pan=float(pos.PanTilt.x), tilt=float(pos.PanTilt.y),
                           zoom=float(pos.Zoom.x) if pos.Zoom is not None else 0.0, moving=moving)

    async def ptz_absolute(self, pan: float, tilt: float, zoom: float) -> None:
        """AbsoluteMove in the generic position space."""
        await self.device.call("ptz", "AbsoluteMove", {
            "ProfileToken": await self._ptz_profile(),
            "Position": {"PanTilt": {"x": pan, "y": tilt}, "Zoom": {"x": zoom}},
        })

    async def ptz_relative(self, pan: float, tilt: float, zoom: float) -> None:
        """RelativeMove in the generic translation space."""
        await self.device.call("ptz", "RelativeMove", {
            "ProfileToken": await self._ptz_profile(),
            "Translation": {"PanTilt": {"x": pan, "y": tilt}, "Zoom": {"x": zoom}},
        })

    async def presets(self) -> list[Preset]:
        """GetPresets."""
        answer = await self.device.call("ptz", "GetPresets", {"ProfileToken": await self._ptz_profile()})
        return [Preset(token=str(p.token), name=str(getattr(p, "Name", "") or p.token)) for p in answer or []]

    async def save_preset(self, name: str) -> Preset:
        """SetPreset; a preset of the same name is overwritten, not duplicated."""
        params = {"ProfileToken": await self._ptz_profile(), "PresetName": name}
        for existing in await self.presets():
            if existing.name == name:
                params["PresetToken"] = existing.token
        token = await self.device.call("ptz", "SetPreset", params)
        return Preset(token=str(token), name=name)

    async def goto_preset(self, token: str) -> None:
        """GotoPreset."""
        await self.device.call("ptz", "GotoPreset", {"ProfileToken": await self._ptz_profile(),
                                                     "PresetToken": token})

    async def remove_preset(self, token: str) -> None:
        """RemovePreset."""
        await self.device.call("ptz", "RemovePreset", {"ProfileToken": await self._ptz_profile(),
                                                       "PresetToken": token})

    async def close(self) -> None:
        """Close the ONVIF sessions."""
        await self.device.close()
