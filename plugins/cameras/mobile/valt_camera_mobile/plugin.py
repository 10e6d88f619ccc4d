"""Hook implementations of the ``mobile`` camera plugin."""

from valt_core.hookspecs import hookimpl

from .driver import MobileCamera


@hookimpl
def valt_register_camera_drivers():
    """Register the mobile device camera."""
    return [MobileCamera]
