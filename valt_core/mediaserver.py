"""``valt media-server``: a media server process, its enrolment, and the NATS permissions it gets.

A media server is the media engine on its own: it is given the settings, the storage, the
camera drivers and a NATS bus, dials out to NATS only (no inbound port), and needs no database.
An admin enrols it first (``valt media-server add NAME``): that makes its row and an nkey, whose
seed is written once to a file for the media server and never stored; the public key goes into
the NATS server's configuration with permissions that let the server publish only its own
subjects (``valt nats-config``), so one site's media server cannot publish into another's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from pathlib import Path
from typing import Any

from .errors import ConfigError, Conflict, ValidationFailed
from .files import open_private
from .settings import Settings

log = logging.getLogger(__name__)
#: JetStream API calls a media server must never make, whatever its allow list grows to (deny wins in NATS):
#: making or changing streams (one capturing ``valt.media.>`` would keep other servers' commands,
#: with their cameras' passwords), consumers, and acknowledgements (acking the app server's
#: consumer would drop other servers' index events unread).
DENIED_JS_API = ["$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>",
                 "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.MSG.DELETE.>", "$JS.API.CONSUMER.>", "$JS.ACK.>"]


async def run_media_server(settings: Settings, name: str, pool: str = "", live_url: str = "") -> int:
    """Run the media server ``name`` until SIGTERM or SIGINT; its exit status."""
    from .bus.connect import bus_from_settings
    from .cameras.service import CameraService
    from .heap import freeze_startup_heap
    from .media.engine import MediaEngine
    from .media.ingest import PushIngest
    from .plugins import PluginHost

    if not settings.bus.servers:
        raise ConfigError("a media server needs [bus] url: the NATS server it joins (see docs/deployment.md)")
    plugins = PluginHost.load(settings.plugins.disable)
    storage = plugins.build_storage_backend(settings.storage.driver, settings.storage.options, settings.data_dir)
    cameras = CameraService(plugins, settings.cameras.control_timeout_s)
    bus = bus_from_settings(settings, f"valt-media-{name}")
    live = LiveListener(settings) if settings.media.live_port else None
    engine = MediaEngine(settings, storage, cameras, bus, name=name, lease_s=settings.bus.lease_s, pool=pool,
                         live_url=live_url or (live.url if live else ""))
    transports = {n: plugins.build_transport(n, settings.live.transport_options.get(n, {}))
                  for n in sorted(plugins.transports)}
    push = PushIngest(settings, transports, engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await storage.check()
    await bus.start()
    serving: asyncio.Task | None = None
    try:
        if not await _wait_for_the_cluster(bus, name, settings.bus.lease_s, stop):
            return 0
        await engine.start()
        await push.start()
        freeze_startup_heap()
        if live is not None:
            serving = asyncio.create_task(live.serve(engine, plugins, stop), name="media-live-port")
        said = f"; direct live view on {live.url}" if live else ""
        said += "".join(f"; publish to {url}" for url in push.publish_urls())
        print(f"media server {name} joined {settings.bus.url} (pool {pool or 'default'!r}){said}", flush=True)
        await stop.wait()
        await push.stop()
        await engine.stop()
    finally:
        if serving is not None:
            stop.set()
            await asyncio.gather(serving, return_exceptions=True)
        await bus.close()
        await cameras.close()
        await storage.aclose()
    if serving is not None and not serving.cancelled() and serving.exception() is not None:
        raise serving.exception()  # the live port could not open: the media server stops saying why
    return 0


async def _wait_for_the_cluster(bus: Any, name: str, lease_s: float, stop: asyncio.Event) -> bool:
    """Wait until the app server has made the cluster's buckets (a media server may not); False if stopped."""
    from .bus.base import BusUnavailable
    from .media.leases import BUCKET as LEASES
    from .media.leases import OWNERS
    from .media.presence import BUCKET as PRESENCE

    told = False
    while not stop.is_set():
        try:
            for bucket in (LEASES, PRESENCE):
                await bus.key_value(bucket, ttl_s=lease_s)
            await bus.key_value(OWNERS)
            return True
        except BusUnavailable as err:
            if not told:
                print(f"media server {name}: waiting for the app server ({err.message})", flush=True)
                told = True
        try:
            await asyncio.wait_for(stop.wait(), 2.0)
        except asyncio.TimeoutError:
            pass
    return False


class LiveListener:
    """The media server's live port: the transports' routes, for browsers that connect directly.

    It serves only ``/live/...`` (no pages, no API), with :class:`~valt_core.media.direct.DirectLiveAccess`
    as the transports' host, over HTTPS/WSS when ``[server] tls`` is on (the same certificate
    settings as the app server's, or a self-signed certificate in the data directory).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.host = settings.media.live_host or settings.server.host
        self.port = settings.media.live_port
        self.tls = settings.server.tls
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        self.url = (settings.media.live_url.rstrip("/")
                    or f"{'https' if self.tls else 'http'}://{shown}:{self.port}")

    def app(self, engine: Any, plugins: Any) -> Any:
        """The Quart app of the live port."""
        from quart import Quart

        app = Quart("valt-media-live")
        for transport_name in sorted(plugins.transports):
            options = self.settings.live.transport_options.get(transport_name, {})
            transport = plugins.build_transport(transport_name, options)
            blueprint = transport.blueprint(engine.direct)
            if blueprint is not None:  # an ingest transport (rtmp) has no routes
                app.register_blueprint(blueprint)
        return app

    async def serve(self, engine: Any, plugins: Any, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; :class:`ConfigError` when the port cannot open."""
        import hypercorn.asyncio
        from hypercorn.config import Config as HypercornConfig

        config = HypercornConfig()
        config.bind = [f"{self.host}:{self.port}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        if self.tls:
            from .tls import certificate_for

            server = self.settings.server
            cert = certificate_for(server.tls_cert, server.tls_key, self.settings.data_dir, self.host)
            config.certfile, config.keyfile = str(cert.cert_path), str(cert.key_path)
        async def end_live_then_stop() -> None:
            # Live views never end by themselves, and the listener's shutdown waits for them.
            await stop.wait()
            engine.direct.server_stopping()

        try:
            await hypercorn.asyncio.serve(self.app(engine, plugins), config, shutdown_trigger=end_live_then_stop)
        except OSError as err:
            raise ConfigError(f"cannot open the live port {self.host}:{self.port}: {err.strerror}") from err
        finally:
            stop.set()


def new_nkey_seed() -> tuple[bytes, str]:
    """A new NATS user nkey: (seed, public key)."""
    import nkeys

    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    return seed, nkeys.from_seed(seed).public_key.decode()


def write_seed(path: Path, seed: bytes) -> None:
    """Write a seed to a new private file (0600); an existing file is never overwritten."""
    try:
        fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError as err:
        raise Conflict(f"{path} exists: give another file, or remove it first") from err
    with os.fdopen(fd, "wb") as f:
        f.write(seed + b"\n")


SERVER_NAME = re.compile(r"[A-Za-z0-9_]{1,60}")


async def enrol(ctx: Any, name: str, pool: str = "", live_mode: str = "relayed") -> tuple[Any, bytes]:
    """Make the media server ``name`` and its nkey: (its row, the nkey seed to give it once)."""
    from sqlalchemy.exc import IntegrityError

    from .db.models import MediaServer

    # Its name is a NATS subject token (no dots, no wildcards) and part of segment keys.
    if name == "local":
        raise Conflict("'local' is the app server's own media server")
    if not SERVER_NAME.fullmatch(name):
        raise ValidationFailed(f"{name[:60]!r} cannot name a media server: 1 to 60 letters, digits or _, "
                               "not 'local'", fields={"name": "letters, digits or _"})
    seed, public = new_nkey_seed()
    row = MediaServer(name=name, pool=pool, nkey=public, live_mode=live_mode)
    async with ctx.db.session() as s:
        s.add(row)
        try:
            await s.commit()
        except IntegrityError as err:
            raise Conflict(f"a media server named {name!r} exists") from err
        await s.refresh(row)
    return row, seed


def media_server_permissions(name: str, prefix: str) -> dict[str, Any]:
    """What media server ``name`` may publish and subscribe to on NATS.

    Its own subjects (events, live relay, commands and the replies to them), its own server
    lease and presence keys, the camera owners bucket, and of the JetStream API only reading
    what it uses: the index stream's and the three buckets' info, and key reads. The app
    server makes the stream and the buckets.
    """
    kv = [f"KV_{prefix}_leases", f"KV_{prefix}_owners", f"KV_{prefix}_presence"]
    js_reads = ["$JS.API.INFO", f"$JS.API.STREAM.INFO.{prefix}_INDEX"]
    for stream in kv:
        js_reads += [f"$JS.API.STREAM.INFO.{stream}", f"$JS.API.STREAM.MSG.GET.{stream}",
                     f"$JS.API.DIRECT.GET.{stream}", f"$JS.API.DIRECT.GET.{stream}.>"]
    return {
        # Its own server lease only; any camera's owner entry (taking over a dead server's).
        "publish": {"allow": [f"valt.index.{name}", f"valt.live.{name}.>", "_INBOX.>",
                              f"$KV.{prefix}_leases.server-{name}", f"$KV.{prefix}_owners.>",
                              f"$KV.{prefix}_presence.{name}", *js_reads],
                    "deny": DENIED_JS_API},
        "subscribe": {"allow": [f"valt.media.{name}.>", "_INBOX.>"]},
    }


async def nats_authorization(ctx: Any, app_nkey: str) -> dict[str, Any]:
    """The ``authorization`` block of nats-server.conf: the app server and every enrolled media server."""
    from sqlmodel import select

    from .db.models import MediaServer

    async with ctx.db.session() as s:
        servers = (await s.exec(select(MediaServer).order_by(MediaServer.name))).all()
    users = [{"nkey": app_nkey}]
    users += [{"nkey": row.nkey, "permissions": media_server_permissions(row.name, ctx.settings.bus.prefix)}
              for row in servers if row.nkey]
    return {"users": users}
