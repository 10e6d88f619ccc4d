"""Hook implementations of the ``sim`` camera plugin."""

from valt_core.hookspecs import hookimpl

from .driver import SimulatedCamera


@hookimpl
def valt_register_camera_drivers():
    """Register the simulated camera."""
    return [SimulatedCamera]
