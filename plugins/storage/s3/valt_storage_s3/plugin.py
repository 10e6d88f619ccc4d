"""Hook implementations of the ``s3`` storage plugin."""

from valt_core.hookspecs import hookimpl

from .backend import S3Storage


@hookimpl
def valt_register_storage_backends():
    """Register the S3 backend."""
    return [S3Storage]
