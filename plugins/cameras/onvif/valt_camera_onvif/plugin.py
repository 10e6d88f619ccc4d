"""Hook implementations of the ``onvif`` camera plugin."""

from valt_core.hookspecs import hookimpl

from . import discovery
from .driver import OnvifCamera


@hookimpl
def valt_register_camera_drivers():
    """Register the ONVIF camera driver."""
    return [OnvifCamera]


@hookimpl
async def valt_discover_cameras(timeout_s, addresses):
    """Find ONVIF devices with a WS-Discovery probe."""
    return await discovery.discover(timeout_s, addresses)
