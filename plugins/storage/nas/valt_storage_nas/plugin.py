"""Hook implementations of the ``nas`` storage plugin."""

from valt_core.hookspecs import hookimpl

from .backend import NasStorage


@hookimpl
def valt_register_storage_backends():
    """Register the NAS backend (SMB share or mounted path)."""
    return [NasStorage]
