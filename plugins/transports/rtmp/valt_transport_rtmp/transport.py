"""The ``rtmp`` transport: RTMP (and RTMPS) listeners feeding the core's push registry."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Callable

from valt_core.errors import ConfigError
from valt_core.push import ACCEPTED
from valt_core.transports.base import LiveHost, PushHost, Transport

from .config import RtmpConfig
from .server import quieten_pyrtmp, serve_connection

log = logging.getLogger(__name__)


class RtmpTransport(Transport):
    """Accepts publishers on ``rtmp://HOST:PORT/APP/KEY`` (and ``rtmps://`` with TLS), many at once.

    Each publish is checked against the stream keys of the cameras this media server ingests;
    its media goes to that camera's pipeline untouched (no re-encoding).
    """

    name = "rtmp"
    Config = RtmpConfig
    direction = "in"

    config: RtmpConfig

    def __init__(self, config: RtmpConfig) -> None:
        super().__init__(config)
        self._servers: dict[str, asyncio.base_events.Server] = {}
        self._connections: set[asyncio.Task] = set()
        self._host: PushHost | None = None
        #: The bound port of each listener, ``{"rtmp": 1935, "rtmps": 1936}``, once listening.
        self.ports: dict[str, int] = {}

    def blueprint(self, host: LiveHost) -> Any:
        """None: publishers do not come over HTTP."""
        return None

    async def start_ingest(self, host: PushHost) -> None:
        """Open the RTMP listener, and the RTMPS one when the media server has TLS on."""
        quieten_pyrtmp()
        self._host = host
        bind = self.config.host or host.bind_host or "0.0.0.0"
        await self._listen("rtmp", bind, self.config.port, None)
        context = host.ssl_context()
        if context is not None:
            await self._listen("rtmps", bind, self.config.tls_port, context)

    async def _listen(self, scheme: str, bind: str, port: int, context: Any) -> None:
        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if len(self._connections) >= self.config.max_connections:
                writer.close()
                return
            task = asyncio.create_task(self._serve(reader, writer, scheme), name=f"{scheme}-publisher")
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

        try:
            server = await asyncio.start_server(accepted, bind, port, ssl=context,
                                                ssl_handshake_timeout=self.config.handshake_timeout_s if context
                                                else None)
        except OSError as err:
            raise ConfigError(f"cannot open the {scheme.upper()} port {bind}:{port}: {err.strerror}") from err
        self._servers[scheme] = server
        self.ports[scheme] = server.sockets[0].getsockname()[1]
        log.info("%s ingest listening on %s:%s", scheme.upper(), bind, self.ports[scheme])

    async def stop_ingest(self) -> None:
        """Close the listeners and every publisher's connection."""
        for server in self._servers.values():
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers.values():
            await server.wait_closed()
        self._servers.clear()

    def publish_urls(self) -> list[str]:
        """``rtmp://HOST:PORT/APP`` (and ``rtmps://``) for the app on the device; the key is the stream name."""
        host = self.config.public_host or self.config.host or (self._host.bind_host if self._host else "")
        if host in ("", "0.0.0.0", "::"):
            host = socket.gethostname()
        return [f"{scheme}://{host}:{port}/{self.config.app}" for scheme, port in sorted(self.ports.items())]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, scheme: str) -> None:
        peer = writer.get_extra_info("peername")
        remote = str(peer[0]) if isinstance(peer, tuple) and peer else ""

        async def on_publish(app: str, key: str, close: Callable[[], None]) -> Any:
            host = self._host
            assert host is not None
            if app != self.config.app:
                host.refused("unknown application", remote, transport=scheme)
                return f"no application {app[:40]!r} here"
            # The stream name may carry a query (?token=...) from some apps: the key is before it.
            status, endpoint = host.registry.authenticate(key.split("?", 1)[0])
            if status != ACCEPTED or endpoint is None:
                host.refused(status, remote, device=endpoint.device if endpoint else "", transport=scheme)
                return "refused"  # the same word for every refusal: nothing to learn from it
            host.published(endpoint.device, remote, transport=scheme)
            return endpoint.publish(remote, close)

        await serve_connection(reader, writer, on_publish, self.config.handshake_timeout_s,
                               self.config.idle_timeout_s)
