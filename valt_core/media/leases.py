"""Which media server records which camera: one renewed lease per server, owners per camera.

A media server holds one *server lease*, the key ``server-<name>`` in the ``leases`` bucket,
whose entries expire after ``ttl_s`` unless rewritten. Its value is an *epoch*, a random
token made when the lease is taken. Each camera has an owner entry, ``camera-<id>`` in the
``owners`` bucket (entries that never expire), whose value is ``<server> <epoch>``. A camera
is a server's while its owner entry names that server and the epoch of its live server lease.

So only the server lease is renewed (every ``ttl_s / 4``, compare and swap at the revision
last written), however many cameras the server has: renewing a lease per camera cost a
noticeable share of a busy server's CPU. A server that died stops renewing; once its lease has
expired, its cameras' owner entries name a dead epoch, and another server takes a camera by
compare and swap on its owner entry.

A server whose own lease expired (it was cut off from the bus, or stalled, for longer than
``ttl_s``) finds out at its next renewal: it takes a new lease with a new epoch and checks
every camera it holds. Each one still naming its old epoch is moved to the new one by compare
and swap; one that names another server was taken meanwhile, and the server stops ingesting
it. While the bus cannot be reached at all the server keeps what it holds (nobody can take a
camera meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Awaitable, Callable

from ..bus.base import Bus, BusUnavailable, Entry, KeyExists, KeyValue, WrongRevision
from ..errors import Conflict

log = logging.getLogger(__name__)
#: The bucket of server leases (entries expire after the lease time).
BUCKET = "leases"
#: The bucket of camera owners (entries stay until given back or taken over).
OWNERS = "owners"


def lease_key(camera_id: int) -> str:
    """The key of a camera's owner entry."""
    return f"camera-{camera_id}"


def server_key(server: str) -> str:
    """The key of a server's lease."""
    return f"server-{server}"


def owner_value(server: str, epoch: str) -> bytes:
    """An owner entry's value."""
    return f"{server} {epoch}".encode()


def read_owner(entry: Entry | None) -> tuple[str, str]:
    """``(server, epoch)`` of an owner entry (``("", "")`` for none or a malformed one)."""
    if entry is None:
        return "", ""
    server, _, epoch = entry.value.decode(errors="replace").partition(" ")
    return server, epoch


class CameraLeases:
    """The cameras one media server holds (see the module docstring)."""

    def __init__(self, bus: Bus, server: str, ttl_s: float, on_lost: Callable[[int, str], Awaitable[None]]) -> None:
        self.bus = bus
        self.server = server
        self.ttl_s = ttl_s
        self.on_lost = on_lost
        self.held: dict[int, int] = {}  # camera id -> revision of our owner entry
        self.epoch = ""
        self._lease_revision = 0
        self._leases: KeyValue | None = None
        self._owners: KeyValue | None = None
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()  # renewal and take-over of our own epoch do not interleave

    async def start(self) -> None:
        """Open the buckets, take this server's lease and start renewing it."""
        self._leases = await self.bus.key_value(BUCKET, ttl_s=self.ttl_s)
        self._owners = await self.bus.key_value(OWNERS)
        await self._take_server_lease()
        self._task = asyncio.create_task(self._renew(), name=f"leases-{self.server}")

    async def stop(self) -> None:
        """Stop renewing, give every camera back and end the server lease."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for camera_id in list(self.held):
            await self.release(camera_id)
        if self._leases is not None and self._lease_revision:
            try:
                await self._leases.delete(server_key(self.server), self._lease_revision)
            except (WrongRevision, BusUnavailable):
                pass  # it expires

    async def _take_server_lease(self) -> None:
        assert self._leases is not None
        epoch = secrets.token_hex(8)
        key = server_key(self.server)
        try:
            revision = await self._leases.create(key, epoch.encode())
        except KeyExists:
            # Ours from before a restart (a server's name is its own): a new epoch, so owner
            # entries of the old one read as dead, and are taken back below or as acquired.
            entry = await self._leases.get(key)
            revision = await (self._leases.update(key, epoch.encode(), entry.revision) if entry is not None
                              else self._leases.create(key, epoch.encode()))
        self.epoch, self._lease_revision = epoch, revision

    async def _holder_alive(self, server: str, epoch: str) -> bool:
        """True when ``server`` holds a live lease of ``epoch``."""
        assert self._leases is not None
        if server == self.server:
            return epoch == self.epoch
        entry = await self._leases.get(server_key(server))
        return entry is not None and entry.value.decode(errors="replace") == epoch

    async def acquire(self, camera_id: int, wait_s: float) -> None:
        """Take the camera, waiting up to ``wait_s`` for another server's lease to expire."""
        if camera_id in self.held:
            return
        assert self._owners is not None, "start() first"
        key = lease_key(camera_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            mine = owner_value(self.server, self.epoch)
            try:
                self.held[camera_id] = await self._owners.create(key, mine)
                return
            except KeyExists:
                entry = await self._owners.get(key)
                holder, epoch = read_owner(entry)
                if entry is not None and not await self._holder_alive(holder, epoch):
                    # A dead server's (or our own from before a restart): take it over.
                    try:
                        self.held[camera_id] = await self._owners.update(key, mine, entry.revision)
                        if holder and holder != self.server:
                            log.info("camera %s taken over from media server %s, whose lease expired",
                                     camera_id, holder)
                        return
                    except WrongRevision:
                        continue  # someone else was quicker: look again
                if entry is None:
                    continue  # given back meanwhile
            if loop.time() >= deadline:
                raise Conflict(f"camera {camera_id} is held by media server {holder or 'another media server'!r}")
            await asyncio.sleep(0.25)

    async def release(self, camera_id: int) -> None:
        """Give a camera back (removed, moved, or the server stopping)."""
        revision = self.held.pop(camera_id, None)
        if revision is None or self._owners is None:
            return
        try:
            await self._owners.delete(lease_key(camera_id), revision)
        except (WrongRevision, BusUnavailable) as err:
            log.info("camera %s not given back (%s); another server takes it once this one's lease ends",
                     camera_id, err.message)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 4)
            try:
                await self.renew()
            except BusUnavailable:
                pass  # nobody can take a camera while the bus is away; try again
            except Exception:  # noqa: BLE001 - a round's trouble must not end the renewals
                log.exception("lease renewal failed; trying again")

    async def renew(self) -> None:
        """Rewrite the server lease; if it had expired, take a new one and check every camera."""
        assert self._leases is not None
        async with self._lock:
            try:
                self._lease_revision = await self._leases.update(server_key(self.server), self.epoch.encode(),
                                                                 self._lease_revision)
                return
            except WrongRevision:
                pass
            old = self.epoch
            log.warning("media server %s: its lease expired; checking its %d cameras", self.server, len(self.held))
            await self._take_server_lease()
            await self._carry_over(old)

    async def _carry_over(self, old_epoch: str) -> None:
        # Every camera still naming our old epoch moves to the new one; the others were taken.
        assert self._owners is not None
        for camera_id in list(self.held):
            key = lease_key(camera_id)
            entry = await self._owners.get(key)
            holder, epoch = read_owner(entry)
            try:
                if entry is None:
                    revision = await self._owners.create(key, owner_value(self.server, self.epoch))
                elif holder == self.server and epoch == old_epoch:
                    revision = await self._owners.update(key, owner_value(self.server, self.epoch), entry.revision)
                else:
                    raise WrongRevision(f"camera {camera_id} is {holder}'s")
            except (KeyExists, WrongRevision):
                holder = read_owner(await self._owners.get(key))[0] or "?"
                if self.held.pop(camera_id, None) is not None:
                    log.error("media server %s lost camera %s to %s: it stops ingesting it", self.server,
                              camera_id, holder)
                    await self.on_lost(camera_id, holder)
                continue
            if camera_id in self.held:
                self.held[camera_id] = revision
            else:  # given back meanwhile: not ours to keep
                await self._owners.delete(key, revision)
