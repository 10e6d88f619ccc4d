"""Hook implementations of the ``hls`` transport plugin."""

from valt_core.hookspecs import hookimpl

from .transport import HlsTransport


@hookimpl
def valt_register_transports():
    """Register the live HLS transport."""
    return [HlsTransport]
