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
#: JetStream API calls a media server must not make (it only publishes its events and leases).
DENIED_JS_API = ["$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.UPDATE.>",
                 "$JS.API.STREAM.MSG.DELETE.>", "$JS.API.CONSUMER.>"]


async def run_media_server(settings: Settings, name: str, pool: str = "", live_url: str = "") -> int:
    """Run the media server ``name`` until SIGTERM or SIGINT; its exit status."""
    from .bus.connect import bus_from_settings
    from .cameras.service import CameraService
    from .media.engine import MediaEngine
    from .plugins import PluginHost

    if not settings.bus.servers:
        raise ConfigError("a media server needs [bus] url: the NATS server it joins (see docs/deployment.md)")
    plugins = PluginHost.load(settings.plugins.disable)
    storage_options = dict(settings.storage.options)
    if settings.storage.driver == "local":
        storage_options.setdefault("path", str(settings.data_dir / "media"))
    storage = plugins.build_storage_backend(settings.storage.driver, storage_options)
    cameras = CameraService(plugins, settings.cameras.control_timeout_s)
    bus = bus_from_settings(settings, f"valt-media-{name}")
    engine = MediaEngine(settings, storage, cameras, bus, name=name, lease_s=settings.bus.lease_s, pool=pool,
                         live_url=live_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await storage.check()
    await bus.start()
    try:
        await engine.start()
        print(f"media server {name} joined {settings.bus.url} (pool {pool or 'default'!r})", flush=True)
        await stop.wait()
        await engine.stop()
    finally:
        await bus.close()
        await cameras.close()
    return 0


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
    """What media server ``name`` may publish and subscribe to on NATS."""
    return {
        "publish": {"allow": [f"valt.index.{name}", "_INBOX.>", f"$KV.{prefix}_leases.>",
                              f"$KV.{prefix}_presence.{name}", "$JS.API.>", "$JS.ACK.>"],
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
