"""Hook implementations of the ``rtmp`` transport plugin."""

from valt_core.hookspecs import hookimpl

from .transport import RtmpTransport


@hookimpl
def valt_register_transports():
    """Register the RTMP ingest transport."""
    return [RtmpTransport]
