"""Hook implementations of the ``rtsp`` camera plugin."""

from valt_core.hookspecs import hookimpl

from .driver import RtspCamera


@hookimpl
def valt_register_camera_drivers():
    """Register the generic RTSP camera."""
    return [RtspCamera]
