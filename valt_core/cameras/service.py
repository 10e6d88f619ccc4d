"""One driver instance per camera, shared by ingest and control, with a time limit on each call.

Drivers may hold sessions (an ONVIF client with its service proxies, an HTTP connection pool),
so the media pipeline and the PTZ buttons use the same instance. Every control call runs under
``[cameras] control_timeout_s``: a camera that stops answering becomes a clear
:class:`~valt_core.errors.CameraUnreachable`, never a request that hangs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar

from ..errors import CameraUnreachable, NotSupported, ValtError
from ..redact import scrub
from .base import SECRET_FIELD_NAMES, CameraDriver, Capability

if TYPE_CHECKING:
    # A camera row or a media server's camera spec: both have id, name, driver and config.
    from ..db.models import Camera
    from ..plugins import PluginHost

log = logging.getLogger(__name__)
T = TypeVar("T")


class CameraService:
    """The live driver of each camera, built on first use and dropped when the camera changes."""

    def __init__(self, plugins: "PluginHost", control_timeout_s: float) -> None:
        self.plugins = plugins
        self.control_timeout_s = control_timeout_s
        self._drivers: dict[int, tuple[str, dict[str, Any], CameraDriver]] = {}

    def driver(self, camera: Camera) -> CameraDriver:
        """The camera's driver; rebuilt when its driver name or settings changed since."""
        config = dict(camera.config or {})
        held = self._drivers.get(camera.id)
        if held is not None and held[0] == camera.driver and held[1] == config:
            return held[2]
        driver = self.plugins.build_camera_driver(camera.driver, config)
        if held is not None:
            # The old instance may hold connections; close it in the background.
            asyncio.ensure_future(_close_quietly(held[2]))
        self._drivers[camera.id] = (camera.driver, config, driver)
        return driver

    def capabilities(self, camera: Camera) -> Capability:
        """What the camera offers: its live driver's view once built, else the driver class's."""
        held = self._drivers.get(camera.id)
        if held is not None and held[0] == camera.driver:
            return held[2].capabilities
        klass = self.plugins.camera_drivers.get(camera.driver)
        return klass.capabilities if klass is not None else Capability.NONE

    async def call(self, camera: Camera, action: Callable[[CameraDriver], Awaitable[T]],
                   needs: Capability = Capability.NONE, what: str = "") -> T:
        """Run ``action(driver)`` under the control time limit.

        ``needs`` is checked first, so a request for something the driver does not declare
        is refused with :class:`NotSupported` without touching the device.
        """
        driver = self.driver(camera)
        if needs and needs not in driver.capabilities:
            raise NotSupported(f"camera {camera.name!r} ({camera.driver}) cannot {what or 'do that'}")
        return await self._timed(action(driver), f"camera {camera.name!r}", driver)

    async def trial(self, driver_name: str, config: dict[str, Any],
                    action: Callable[[CameraDriver], Awaitable[T]]) -> T:
        """Run ``action`` on a throwaway driver built from ``config`` (testing settings before adding)."""
        driver = self.plugins.build_camera_driver(driver_name, config)
        try:
            return await self._timed(action(driver), "the camera", driver)
        finally:
            await _close_quietly(driver)

    async def _timed(self, work: Awaitable[T], who: str, driver: CameraDriver) -> T:
        try:
            return await asyncio.wait_for(work, self.control_timeout_s)
        except asyncio.TimeoutError as err:
            raise CameraUnreachable(f"{who} did not answer within {self.control_timeout_s:g} s") from err
        except ValtError as err:
            # A driver may quote its settings in an error; none of their secrets may leave.
            err.message = scrub(err.message, driver_secrets(driver))
            err.args = (err.message,)
            raise


    async def forget(self, camera_id: int) -> None:
        """Drop (and close) the camera's driver, after an edit or removal."""
        held = self._drivers.pop(camera_id, None)
        if held is not None:
            await _close_quietly(held[2])

    async def close(self) -> None:
        """Close every driver (server shutdown)."""
        for camera_id in list(self._drivers):
            await self.forget(camera_id)


async def _close_quietly(driver: CameraDriver) -> None:
    try:
        await driver.close()
    except Exception:  # noqa: BLE001 - closing a dead connection may fail; nothing to do about it
        log.debug("closing camera driver %s failed", driver.name, exc_info=True)


def driver_secrets(driver: CameraDriver) -> list[str]:
    """The values of a driver's secret settings (to scrub from anything it says)."""
    names = SECRET_FIELD_NAMES | type(driver).secret_fields
    config = driver.config.model_dump() if hasattr(driver.config, "model_dump") else {}
    values = []
    for name in names:
        value = config.get(name)
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, str) and value:
            values.append(value)
    return values
