"""Hook implementations of the ``local`` storage plugin."""

from valt_core.hookspecs import hookimpl

from .backend import LocalStorage


@hookimpl
def valt_register_storage_backends():
    """Register the local file-system backend."""
    return [LocalStorage]
