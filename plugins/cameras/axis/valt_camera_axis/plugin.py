"""Hook implementations of the ``axis`` camera plugin."""

from valt_core.hookspecs import hookimpl

from . import discovery
from .driver import AxisCamera


@hookimpl
def valt_register_camera_drivers():
    """Register the Axis camera driver."""
    return [AxisCamera]


@hookimpl
async def valt_discover_cameras(timeout_s, addresses):
    """Find Axis cameras with an SSDP search."""
    return await discovery.discover(timeout_s, addresses)
