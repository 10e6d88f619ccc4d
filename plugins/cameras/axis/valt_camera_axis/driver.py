"""The ``axis`` camera driver: Valt's contract on top of :mod:`.vapix`.

Axis PTZ works in degrees (pan, tilt) and zoom steps (1..9999); Valt's units are -1..1 and
0..1. The camera's own limits (``PTZ.Limit.L1``) map one to the other, so a camera whose tilt
runs from -90 to 20 degrees still has tilt -1 at its lowest and 1 at its highest.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

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
from valt_core.errors import NotSupported, ValidationFailed

from .config import AxisCameraConfig
from .vapix import VapixClient, key_values

#: Limits assumed when a camera does not publish ``PTZ.Limit.L1`` (typical of Axis domes).
DEFAULT_LIMITS = {"pan": (-180.0, 180.0), "tilt": (-90.0, 0.0), "zoom": (1.0, 9999.0)}


class AxisCamera(CameraDriver):
    """An Axis network camera: identity, RTSP streams, snapshots, PTZ and server presets."""

    name = "axis"
    Config = AxisCameraConfig
    capabilities = Capability.STREAM | Capability.AUDIO | Capability.SNAPSHOT | Capability.DISCOVERY | PTZ_CAPABILITIES

    config: AxisCameraConfig

    def __init__(self, config: AxisCameraConfig) -> None:
        super().__init__(config)
        self.vapix = VapixClient(config.host, config.http_port, config.username, config.password)
        self._limits: dict[str, tuple[float, float]] | None = None
        self._lock = asyncio.Lock()

    # --- identity and streams ---------------------------------------------------------

    async def identify(self) -> DeviceInfo:
        """Basic device information; also learns whether this model has PTZ."""
        info = await self.vapix.device_info()
        await self._ptz_limits(required=False)
        return DeviceInfo(manufacturer=info.get("Brand", "AXIS"),
                          model=info.get("ProdFullName") or info.get("ProdNbr", ""),
                          firmware=info.get("Version", ""), serial=info.get("SerialNumber", ""))

    async def streams(self) -> list[StreamProfile]:
        """``main`` (the profile or the camera's largest resolution) and ``sub``, both H.264."""
        props = await self.vapix.params("Properties.Image.Resolution")
        resolutions = props.get("Properties.Image.Resolution", "").split(",")
        main = resolutions[0] if resolutions and "x" in resolutions[0] else "0x0"
        fps = 0.0
        if self.config.main_profile:
            for profile in await self.vapix.stream_profiles():
                if profile.get("name") == self.config.main_profile:
                    values = dict(p.partition("=")[::2] for p in profile.get("parameters", "").split("&"))
                    main = values.get("resolution", main)
                    fps = float(values.get("fps", 0) or 0)
        out = []
        for name, size in (("main", main), ("sub", self.config.sub_resolution)):
            width, height = (int(v) for v in size.split("x"))
            out.append(StreamProfile(name, "h264", width, height, fps, None))
        return out

    async def stream_uri(self, profile: str = "main") -> str:
        """``/axis-media/media.amp`` with the profile's options and the account's credentials."""
        if profile == "main":
            options = {"streamprofile": self.config.main_profile} if self.config.main_profile else {}
            options.setdefault("videocodec", "h264")
        elif profile == "sub":
            options = {"videocodec": "h264", "resolution": self.config.sub_resolution}
        else:
            raise ValidationFailed(f"unknown stream profile {profile!r} (main, sub)")
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        uri = f"rtsp://{host}:{self.config.rtsp_port}/axis-media/media.amp?{urlencode(options)}"
        return rtsp_url_with_credentials(uri, self.config.username, self.config.password)

    async def snapshot(self) -> bytes:
        """A JPEG from ``image.cgi`` at the camera's default resolution."""
        return await self.vapix.snapshot()

    # --- PTZ ------------------------------------------------------------------------------

    async def _ptz_limits(self, required: bool = True) -> dict[str, tuple[float, float]]:
        async with self._lock:
            if self._limits is None:
                params = await self.vapix.params("Properties.PTZ", "PTZ.Limit")
                if params.get("Properties.PTZ.PTZ", "no") != "yes":
                    self.capabilities = type(self).capabilities & ~PTZ_CAPABILITIES
                    self._limits = {}
                else:
                    self._limits = {}
                    for axis, (low, high) in DEFAULT_LIMITS.items():
                        name = axis.title()
                        self._limits[axis] = (float(params.get(f"PTZ.Limit.L1.Min{name}", low)),
                                              float(params.get(f"PTZ.Limit.L1.Max{name}", high)))
        if required and not self._limits:
            raise NotSupported(f"the Axis camera at {self.vapix.where} has no PTZ")
        return self._limits

    async def _to_device(self, pan: float, tilt: float, zoom: float) -> tuple[float, float, float]:
        lim = await self._ptz_limits()
        return (_scale(pan, *lim["pan"], -1.0), _scale(tilt, *lim["tilt"], -1.0), _scale(zoom, *lim["zoom"], 0.0))

    async def ptz_move(self, pan: float, tilt: float, zoom: float) -> None:
        """``continuouspantiltmove`` and ``continuouszoommove``, speeds -100..100."""
        await self._ptz_limits()
        await self.vapix.ptz(continuouspantiltmove=f"{round(pan * 100)},{round(tilt * 100)}",
                             continuouszoommove=round(zoom * 100))

    async def ptz_stop(self) -> None:
        """``move=stop`` stops pan and tilt; a zero zoom speed stops the zoom."""
        await self._ptz_limits()
        await self.vapix.ptz(move="stop", continuouszoommove=0)

    async def ptz_position(self) -> PtzPosition:
        """``query=position``, mapped to Valt's units."""
        lim = await self._ptz_limits()
        values = key_values(await self.vapix.ptz(query="position"))
        return PtzPosition(pan=_unscale(float(values.get("pan", 0)), *lim["pan"], -1.0),
                           tilt=_unscale(float(values.get("tilt", 0)), *lim["tilt"], -1.0),
                           zoom=_unscale(float(values.get("zoom", 1)), *lim["zoom"], 0.0))

    async def ptz_absolute(self, pan: float, tilt: float, zoom: float) -> None:
        """Absolute ``pan``, ``tilt`` (degrees) and ``zoom`` (steps)."""
        p, t, z = await self._to_device(pan, tilt, zoom)
        await self.vapix.ptz(pan=p, tilt=t, zoom=round(z))

    async def ptz_relative(self, pan: float, tilt: float, zoom: float) -> None:
        """``rpan``, ``rtilt``, ``rzoom``: a step of 1.0 is half the pan or tilt range, the whole zoom range."""
        lim = await self._ptz_limits()
        span = {axis: high - low for axis, (low, high) in lim.items()}
        await self.vapix.ptz(rpan=pan * span["pan"] / 2, rtilt=tilt * span["tilt"] / 2,
                             rzoom=round(zoom * span["zoom"]))

    async def presets(self) -> list[Preset]:
        """Server presets (``query=presetposall``); the token is the preset's name."""
        await self._ptz_limits()
        answer = key_values(await self.vapix.ptz(query="presetposall"))
        numbered = sorted((int(k.removeprefix("presetposno")), v) for k, v in answer.items()
                          if k.startswith("presetposno") and k.removeprefix("presetposno").isdigit())
        return [Preset(token=name, name=name) for _, name in numbered]

    async def save_preset(self, name: str) -> Preset:
        """``setserverpresetname``: the current position under ``name`` (Axis replaces a same-named one)."""
        await self._ptz_limits()
        if any(c in name for c in '"<>~:') or len(name) > 31:
            raise ValidationFailed("an Axis preset name has at most 31 characters and none of \" < > ~ :")
        await self.vapix.ptz("ptzconfig.cgi", setserverpresetname=name)
        return Preset(token=name, name=name)

    async def goto_preset(self, token: str) -> None:
        """``gotoserverpresetname``."""
        await self._ptz_limits()
        await self.vapix.ptz(gotoserverpresetname=token)

    async def remove_preset(self, token: str) -> None:
        """``removeserverpresetname``."""
        await self._ptz_limits()
        await self.vapix.ptz("ptzconfig.cgi", removeserverpresetname=token)

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.vapix.close()


def _scale(value: float, low: float, high: float, value_low: float) -> float:
    """Valt's ``value`` (``value_low``..1) to the device range ``low``..``high``."""
    return low + (value - value_low) / (1.0 - value_low) * (high - low)


def _unscale(value: float, low: float, high: float, value_low: float) -> float:
    """A device value in ``low``..``high`` to Valt's ``value_low``..1, rounded to 4 places."""
    if high == low:
        return value_low
    return round(value_low + (value - low) / (high - low) * (1.0 - value_low), 4)
