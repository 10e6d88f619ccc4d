"""Ingest transports (``direction = "in"``) of a media engine: started and stopped with it.

The engine itself never sees a transport: the transports publish into the process's push
registry (:mod:`valt_core.push`), which the pushed cameras' drivers read. What a transport tells
(refused and started publishes) becomes events in the engine's outbox, which the app server
audits and counts, as for every other media server event.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING

from ..bus.messages import PublishRefused, PublishStarted
from ..errors import ValtError
from ..push import PushRegistry
from ..settings import Settings
from ..transports.base import Transport

if TYPE_CHECKING:
    from .engine import MediaEngine

log = logging.getLogger(__name__)


class PushIngest:
    """Runs the ingest transports of one media engine and is their :class:`~valt_core.transports.base.PushHost`."""

    def __init__(self, settings: Settings, transports: dict[str, Transport], engine: "MediaEngine",
                 registry: PushRegistry | None = None) -> None:
        self.settings = settings
        self.transports = {n: t for n, t in transports.items() if t.direction == "in"}
        self.engine = engine
        self.registry = registry or PushRegistry.for_process()
        self.bind_host = settings.media.live_host or settings.server.host
        self.running: dict[str, Transport] = {}

    async def start(self) -> None:
        """Start every ingest transport; one that cannot listen is logged and left off (others go on)."""
        self.registry.grace_s = self.settings.media.push_grace_s
        for name, transport in sorted(self.transports.items()):
            try:
                await transport.start_ingest(self)
            except ValtError as err:
                # Several media servers on one host each need their own ports: a taken port must
                # not stop recording the cameras that are opened, not pushed.
                log.error("ingest transport %s is off: %s", name, err.message)
                await transport.stop_ingest()
                continue
            self.running[name] = transport

    async def stop(self) -> None:
        """Stop the ingest transports (publishers are disconnected)."""
        for transport in self.running.values():
            await transport.stop_ingest()
        self.running.clear()

    def publish_urls(self) -> list[str]:
        """Where devices publish to this media server, every running transport's URLs."""
        return [url for t in self.running.values() for url in t.publish_urls()]

    def ssl_context(self) -> ssl.SSLContext | None:
        """A server context with the media server's certificate when ``[server] tls`` is on."""
        if not self.settings.server.tls:
            return None
        from ..tls import certificate_for

        server = self.settings.server
        cert = certificate_for(server.tls_cert, server.tls_key, self.settings.data_dir, self.bind_host)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(cert.cert_path), str(cert.key_path))
        return context

    def refused(self, reason: str, remote_addr: str, device: str = "", transport: str = "") -> None:
        """A refused publish: logged (without the key) and told to the app server."""
        log.warning("publish refused (%s) from %s%s", reason, remote_addr or "?",
                    f" for device {device}" if device else "")
        self.engine.events.emit(PublishRefused(reason=reason[:80], remote_addr=remote_addr[:64], device=device[:64],
                                               transport=transport[:20]))

    def published(self, device: str, remote_addr: str, transport: str = "") -> None:
        """A device started publishing: told to the app server (audited)."""
        log.info("device %s publishing from %s", device, remote_addr or "?")
        self.engine.events.emit(PublishStarted(device=device[:64], remote_addr=remote_addr[:64],
                                               transport=transport[:20]))
