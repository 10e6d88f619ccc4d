"""The ONVIF protocol side: one connected device, its SOAP calls, and its faults as Valt errors.

Everything here speaks onvif-zeep-async and zeep; the driver above it speaks only Valt types.
ONVIF positions and speeds are used in the generic spaces (pan/tilt -1..1, zoom 0..1), which
every Profile S PTZ device supports, so no unit conversion is needed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator

import aiohttp
import zeep.exceptions
from onvif import ONVIFCamera
from onvif.exceptions import ONVIFAuthError, ONVIFError, ONVIFTimeoutError

from valt_core.errors import CameraAuthFailed, CameraError, CameraUnreachable, NotFound, NotSupported

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaProfile:
    """One ONVIF media profile, reduced to what Valt uses."""

    token: str
    name: str
    encoding: str
    width: int
    height: int
    fps: float
    audio_encoding: str | None
    has_ptz: bool


def _fault_text(fault: zeep.exceptions.Fault) -> str:
    parts = [str(fault.message or "")]
    for sub in (getattr(fault, "subcodes", None) or []):
        parts.append(str(getattr(sub, "localname", sub)))
    if fault.code:
        parts.append(str(fault.code))
    return " ".join(p for p in parts if p)


def valt_error(err: BaseException, where: str) -> Exception:
    """The Valt error for an exception raised while talking to the device at ``where``."""
    if isinstance(err, (ONVIFAuthError,)):
        return CameraAuthFailed(f"the ONVIF device at {where} refused the user name or password")
    if isinstance(err, zeep.exceptions.Fault):
        text = _fault_text(err)
        if "NotAuthorized" in text or "not authorized" in text.lower() or "FailedAuthentication" in text:
            return CameraAuthFailed(f"the ONVIF device at {where} refused the user name or password")
        if "ActionNotSupported" in text or "NoPTZProfile" in text:
            return NotSupported(f"the ONVIF device at {where} does not support this ({text})")
        if "NoToken" in text or "NoEntity" in text or "NoProfile" in text:
            return NotFound(f"the ONVIF device at {where} has no such preset or profile ({err.message})")
        return CameraError(f"the ONVIF device at {where} answered with an error: {text}")
    if isinstance(err, zeep.exceptions.TransportError):
        if err.status_code == 401:
            return CameraAuthFailed(f"the ONVIF device at {where} refused the user name or password")
        return CameraError(f"the ONVIF device at {where} answered HTTP {err.status_code}")
    if isinstance(err, (ONVIFTimeoutError, asyncio.TimeoutError, aiohttp.ClientConnectionError, OSError)):
        return CameraUnreachable(f"the ONVIF device at {where} does not answer ({err})")
    if isinstance(err, ONVIFError):
        cause = err.__cause__ or err.__context__
        if cause is not None and cause is not err:
            return valt_error(cause, where)
        if "401" in str(err) or "auth" in str(err).lower():
            return CameraAuthFailed(f"the ONVIF device at {where} refused the user name or password")
        return CameraError(f"the ONVIF device at {where} failed: {err}")
    if isinstance(err, zeep.exceptions.Error):
        return CameraError(f"the ONVIF device at {where} sent an answer Valt cannot read: {err}")
    return CameraError(f"talking to the ONVIF device at {where} failed: {err}")


def _onvif_camera(host: str, port: int, user: str | None, password: str | None) -> ONVIFCamera:
    # onvif-zeep-async deletes http_proxy and https_proxy from the process environment when a
    # camera object is made; other parts of Valt (storage, auth plugins) may rely on them.
    saved = {k: os.environ[k] for k in ("http_proxy", "https_proxy") if k in os.environ}
    try:
        # adjust_time: sign WS-Security timestamps in the device's clock, so a device whose
        # clock is off still accepts us; OnvifDevice warns about the offset.
        return ONVIFCamera(host, port, user, password, no_cache=True, adjust_time=True)
    finally:
        os.environ.update(saved)


class OnvifDevice:
    """A connection to one ONVIF device; connects on first use and after a failure."""

    def __init__(self, host: str, port: int, username: str, password: str, clock_warning_s: float) -> None:
        self.where = f"{host}:{port}"
        self._args = (host, port, username or None, password or None)
        self.clock_warning_s = clock_warning_s
        self._camera: ONVIFCamera | None = None
        self._services: dict[str, Any] = {}
        # Media profiles are asked once per connection: every PTZ command names one, and a
        # GetProfiles round trip before each press of a button would double its latency.
        self._profiles: list[MediaProfile] | None = None
        self._lock = asyncio.Lock()
        self.clock_offset_s: float | None = None
        self.warnings: list[str] = []

    @asynccontextmanager
    async def _errors(self) -> AsyncIterator[None]:
        try:
            yield
        except (ONVIFError, zeep.exceptions.Error, asyncio.TimeoutError, aiohttp.ClientError, OSError) as err:
            # A broken connection is rebuilt on the next call.
            if not isinstance(err, zeep.exceptions.Fault):
                await self.close()
            raise valt_error(err, self.where) from err

    async def _connected(self) -> ONVIFCamera:
        async with self._lock:
            if self._camera is None:
                host, port, user, password = self._args
                camera = _onvif_camera(host, port, user, password)
                try:
                    async with self._errors():
                        await camera.update_xaddrs()
                        await self._check_clock(camera)
                except BaseException:
                    await camera.close()
                    raise
                self._camera = camera
            return self._camera

    async def _check_clock(self, camera: ONVIFCamera) -> None:
        diff = camera.dt_diff
        if diff is None:
            devicemgmt = await camera.create_devicemgmt_service()
            answer = await devicemgmt.GetSystemDateAndTime()
            d, t = answer.UTCDateTime.Date, answer.UTCDateTime.Time
            device_now = dt.datetime(d.Year, d.Month, d.Day, t.Hour, t.Minute, t.Second, tzinfo=dt.timezone.utc)
            diff = device_now - dt.datetime.now(dt.timezone.utc)
        self.clock_offset_s = diff.total_seconds()
        self.warnings = []
        if abs(self.clock_offset_s) > self.clock_warning_s:
            message = (f"the device clock is {self.clock_offset_s:+.0f} s off this server's; "
                       "set the camera's time (NTP) so its overlays and logs match recordings")
            self.warnings.append(message)
            log.warning("ONVIF device %s: %s", self.where, message)

    async def service(self, kind: str) -> Any:
        """The ``devicemgmt``, ``media`` or ``ptz`` service proxy."""
        camera = await self._connected()
        if kind not in self._services:
            async with self._errors():
                if kind == "ptz" and "http://www.onvif.org/ver20/ptz/wsdl" not in camera.xaddrs:
                    raise NotSupported(f"the ONVIF device at {self.where} has no PTZ service")
                self._services[kind] = await getattr(camera, f"create_{kind}_service")()
        return self._services[kind]

    async def call(self, kind: str, operation: str, params: dict[str, Any] | None = None) -> Any:
        """Call ``operation`` on a service with ``params``; device faults become Valt errors."""
        service = await self.service(kind)
        async with self._errors():
            return await getattr(service, operation)(params or {})

    async def has_ptz(self) -> bool:
        """Whether the device offers the PTZ service."""
        camera = await self._connected()
        return "http://www.onvif.org/ver20/ptz/wsdl" in camera.xaddrs

    async def profiles(self) -> list[MediaProfile]:
        """The device's media profiles, in its order (asked once per connection)."""
        if self._profiles is not None:
            return self._profiles
        out = []
        for p in await self.call("media", "GetProfiles") or []:
            enc = p.VideoEncoderConfiguration
            res = getattr(enc, "Resolution", None)
            rate = getattr(getattr(enc, "RateControl", None), "FrameRateLimit", None)
            audio = getattr(p, "AudioEncoderConfiguration", None)
            out.append(MediaProfile(
                token=str(p.token), name=str(getattr(p, "Name", "") or p.token),
                encoding=str(getattr(enc, "Encoding", "") or "").lower() if enc is not None else "",
                width=int(getattr(res, "Width", 0) or 0), height=int(getattr(res, "Height", 0) or 0),
                fps=float(rate or 0), audio_encoding=str(audio.Encoding).lower() if audio is not None else None,
                has_ptz=getattr(p, "PTZConfiguration", None) is not None,
            ))
        self._profiles = out
        return out

    async def stream_uri(self, profile_token: str) -> str:
        """The RTSP URI of a profile (RTP over RTSP, unicast)."""
        answer = await self.call("media", "GetStreamUri", {
            "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
            "ProfileToken": profile_token,
        })
        return str(answer.Uri)

    async def snapshot(self, profile_token: str) -> bytes:
        """A JPEG from the profile's snapshot URI (HTTP digest auth with the same account)."""
        camera = await self._connected()
        async with self._errors():
            jpeg = await camera.get_snapshot(profile_token)
        if not jpeg:
            raise CameraError(f"the ONVIF device at {self.where} gave no snapshot for profile {profile_token!r}")
        return jpeg

    async def close(self) -> None:
        """Close the device's HTTP sessions."""
        camera, self._camera = self._camera, None
        self._services.clear()
        self._profiles = None
        if camera is not None:
            try:
                await camera.close()
            except Exception:  # noqa: BLE001 - closing a dead session may fail; nothing to keep
                log.debug("closing ONVIF session to %s failed", self.where, exc_info=True)
