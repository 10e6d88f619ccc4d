"""Which media server records which camera: leases in the bus's key-value bucket.

A media server ingests a camera only while it holds the camera's lease, the key
``camera-<id>`` whose value is the server's name. It takes a lease with ``create`` (only when
nobody holds it) and renews it every ``ttl_s / 4`` with ``update`` at the revision it last
wrote (compare and swap), so a lease that expired and was taken by another server can never be
renewed by the one that lost it: that one stops ingesting the camera at its next renewal.
While the bus cannot be reached at all the server keeps what it holds (nobody can take a lease
meanwhile); a lease that merely expired during such an outage is taken again if it is free.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from ..bus.base import Bus, BusUnavailable, KeyExists, KeyValue, WrongRevision
from ..errors import Conflict

log = logging.getLogger(__name__)
#: The bucket of camera leases.
BUCKET = "leases"


def lease_key(camera_id: int) -> str:
    """The key of a camera's lease."""
    return f"camera-{camera_id}"


class CameraLeases:
    """The leases one media server holds (see the module docstring)."""

    def __init__(self, bus: Bus, server: str, ttl_s: float, on_lost: Callable[[int, str], Awaitable[None]]) -> None:
        self.bus = bus
        self.server = server
        self.ttl_s = ttl_s
        self.on_lost = on_lost
        self.held: dict[int, int] = {}  # camera id -> revision of our last write
        self._kv: KeyValue | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Open the bucket and start renewing."""
        self._kv = await self.bus.key_value(BUCKET, ttl_s=self.ttl_s)
        self._task = asyncio.create_task(self._renew(), name=f"leases-{self.server}")

    async def stop(self) -> None:
        """Stop renewing and give every lease back."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for camera_id in list(self.held):
            await self.release(camera_id)

    async def acquire(self, camera_id: int, wait_s: float) -> None:
        """Take the camera's lease, waiting up to ``wait_s`` for another server's to expire."""
        if camera_id in self.held:
            return
        assert self._kv is not None, "start() first"
        key = lease_key(camera_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            try:
                self.held[camera_id] = await self._kv.create(key, self.server.encode())
                return
            except KeyExists:
                entry = await self._kv.get(key)
                if entry is not None and entry.value.decode() == self.server:
                    # Ours from before a restart of this server: carry on with it.
                    try:
                        self.held[camera_id] = await self._kv.update(key, self.server.encode(), entry.revision)
                        return
                    except WrongRevision:
                        continue
                holder = entry.value.decode() if entry is not None else "another media server"
            if loop.time() >= deadline:
                raise Conflict(f"camera {camera_id} is held by media server {holder!r}")
            await asyncio.sleep(0.25)

    async def release(self, camera_id: int) -> None:
        """Give a lease back (a camera removed, moved, or the server stopping)."""
        revision = self.held.pop(camera_id, None)
        if revision is None or self._kv is None:
            return
        try:
            await self._kv.delete(lease_key(camera_id), revision)
        except (WrongRevision, BusUnavailable) as err:
            log.info("lease of camera %s not given back (%s); it expires", camera_id, err.message)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 4)
            try:
                await self._renew_all()
            except Exception:  # noqa: BLE001 - a round's trouble must not end the renewals
                log.exception("lease renewal round failed; trying again")

    async def _renew_all(self) -> None:
        # Every update in one batch: they go out together and their acks come back together, so
        # a server of a hundred cameras wakes a few times per round instead of a hundred.
        held = list(self.held.items())
        if not held:
            return
        assert self._kv is not None
        try:
            results = await self._kv.update_many([(lease_key(c), self.server.encode(), r) for c, r in held])
        except BusUnavailable:
            return  # nobody can take a lease while the bus is away; try again
        for (camera_id, _revision), result in zip(held, results):
            if camera_id not in self.held:
                continue  # given back meanwhile
            if isinstance(result, int):
                self.held[camera_id] = result
            elif isinstance(result, WrongRevision):
                try:
                    await self._retake(camera_id)
                except Exception:  # noqa: BLE001 - one lease's trouble must not stop the others'
                    log.exception("lease of camera %s: taking it again failed; trying again", camera_id)
            # BusUnavailable for one: as for all, try again next round

    async def _retake(self, camera_id: int) -> None:
        # The lease is not at the revision we wrote: it expired (and is free, or another's).
        assert self._kv is not None
        key = lease_key(camera_id)
        try:
            # Expired (the bus was away) and free: take it again.
            revision = await self._kv.create(key, self.server.encode())
            if camera_id not in self.held:  # given back meanwhile: not ours to keep
                await self._kv.delete(key, revision)
                return
            self.held[camera_id] = revision
            log.info("lease of camera %s expired and was taken again", camera_id)
            return
        except KeyExists:
            entry = await self._kv.get(key)
            holder = entry.value.decode() if entry is not None else "?"
        except BusUnavailable:
            return
        if camera_id in self.held:
            self.held.pop(camera_id, None)
            log.error("media server %s lost camera %s to %s: it stops ingesting it", self.server,
                      camera_id, holder)
            await self.on_lost(camera_id, holder)
