"""Hook implementations of the ``hikvision`` camera plugin (and nothing else)."""

from valt_core.hookspecs import hookimpl

from .driver import HikvisionCamera


@hookimpl
def valt_register_camera_drivers():
    """Register the Hikvision camera driver."""
    return [HikvisionCamera]
