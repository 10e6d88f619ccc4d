"""Hook implementations of the ``wss`` transport plugin."""

from valt_core.hookspecs import hookimpl

from .transport import WssTransport


@hookimpl
def valt_register_transports():
    """Register the WebSocket live transport."""
    return [WssTransport]
