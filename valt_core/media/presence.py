"""A media server's presence: who it is and how loaded, renewed in the bus's key-value bucket.

The key is the server's name; the bucket's entries expire after ``ttl_s``, so a server that
died (or lost the bus) disappears from it within that time. The app server reads it for the
Media servers page and to move a lost server's cameras to another of its pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..bus.base import BusUnavailable, KeyValue
from ..storage.base import StorageBackend

if TYPE_CHECKING:
    from .engine import MediaEngine

log = logging.getLogger(__name__)
#: The bucket of media servers' presence.
BUCKET = "presence"


class Presence:
    """Writes this media server's entry every ``ttl_s / 4``."""

    def __init__(self, engine: "MediaEngine", ttl_s: float, pool: str = "", live_url: str = "") -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.pool = pool
        self.live_url = live_url
        self.started_at = time.time()
        self._kv: KeyValue | None = None
        self._task: asyncio.Task | None = None
        self._cpu = (time.monotonic(), time.process_time())
        self._bytes = (time.monotonic(), 0)

    async def start(self) -> None:
        """Open the bucket, say we are here, and keep saying it."""
        self._kv = await self.engine.bus.key_value(BUCKET, ttl_s=self.ttl_s)
        await self._write()
        self._task = asyncio.create_task(self._run(), name=f"presence-{self.engine.name}")

    async def stop(self) -> None:
        """Stop, and leave the bucket at once (not only when the entry expires)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._kv is not None:
            try:
                await self._kv.delete(self.engine.name)
            except BusUnavailable:
                pass

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 4)
            try:
                await self._write()
            except BusUnavailable:
                continue  # written again once the bus is back
            except Exception:  # noqa: BLE001 - presence must not stop for one bad reading
                log.exception("presence of %s not written", self.engine.name)

    def state(self) -> dict[str, Any]:
        """What the entry says now."""
        now, cpu = time.monotonic(), time.process_time()
        then, cpu_then = self._cpu
        cpu_percent = 100.0 * (cpu - cpu_then) / max(now - then, 1e-6)
        self._cpu = (now, cpu)
        total = sum(p.bytes_received for p in self.engine.pipelines.values())
        bytes_then_at, bytes_then = self._bytes
        kbps = max(0, total - bytes_then) * 8 / 1000 / max(now - bytes_then_at, 1e-6)
        self._bytes = (now, total)
        return {
            "name": self.engine.name, "version": __version__, "pool": self.pool, "pid": os.getpid(),
            "started_at": self.started_at, "live_url": self.live_url,
            "cameras": sorted(self.engine.pipelines), "recordings": sorted(self.engine.sessions),
            "cpu_percent": round(cpu_percent, 1), "ingest_kbps": round(kbps, 1),
            "free_bytes": self.engine.free_bytes, "events_waiting": self.engine.events.pending,
            "storage": storage_state(self.engine.storage),
        }

    async def _write(self) -> None:
        assert self._kv is not None
        await self._kv.put(self.engine.name, json.dumps(self.state()).encode())


def storage_state(storage: StorageBackend) -> dict[str, Any]:
    """What a media server says of its store: ``ok``, or ``spooling`` with why, and what waits."""
    outage = storage.outage()
    pending = storage.pending()
    return {"status": "ok" if outage is None else "spooling", "message": outage,
            "pending": None if pending is None else {"objects": pending.objects, "bytes": pending.bytes}}


def read_presence(raw: bytes) -> dict[str, Any]:
    """A presence entry's fields (``{}`` when it is unreadable)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
