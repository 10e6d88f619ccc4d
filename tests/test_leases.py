"""Camera leases: one renewed lease per media server, an owner entry per camera (media/leases.py).

On the in-process bus, whose buckets expire entries as NATS's do; the failover journey in
test_cluster.py shows the same across real processes and a real NATS.
"""

from __future__ import annotations

import asyncio

import pytest

from valt_core.bus.local import InProcessBus
from valt_core.errors import Conflict
from valt_core.media.leases import OWNERS, CameraLeases, lease_key, read_owner

TTL_S = 0.4


async def server(bus, name: str, lost: list) -> CameraLeases:
    async def on_lost(camera_id: int, holder: str) -> None:
        lost.append((name, camera_id, holder))

    leases = CameraLeases(bus, name, TTL_S, on_lost)
    await leases.start()
    return leases


def freeze(leases: CameraLeases) -> None:
    """Stop a server's renewals, as when it hangs or is cut off from the bus."""
    leases._task.cancel()


async def test_a_camera_is_one_servers_until_its_lease_ends_then_another_takes_it():
    bus = InProcessBus()
    await bus.start()
    lost: list = []
    a, b = await server(bus, "ms1", lost), await server(bus, "ms2", lost)
    await a.acquire(1, wait_s=0)
    await a.acquire(2, wait_s=0)
    with pytest.raises(Conflict, match="held by media server 'ms1'"):
        await b.acquire(1, wait_s=0.3)  # renewed meanwhile: still ms1's
    freeze(a)
    await b.acquire(1, wait_s=2 * TTL_S)  # ms1's lease expired: taken over
    owners = await bus.key_value(OWNERS)
    assert read_owner(await owners.get(lease_key(1))) == ("ms2", b.epoch)
    # ms1 comes back: its lease had expired, so it checks its cameras; camera 1 is ms2's now,
    # camera 2 nobody took and stays ms1's, under its new epoch.
    old_epoch = a.epoch
    await a.renew()
    a._task = asyncio.create_task(a._renew())  # and renews again from now on
    assert a.epoch != old_epoch
    assert lost == [("ms1", 1, "ms2")]
    assert sorted(a.held) == [2] and read_owner(await owners.get(lease_key(2))) == ("ms1", a.epoch)
    with pytest.raises(Conflict):
        await b.acquire(2, wait_s=0.3)
    await b.stop()
    assert await owners.get(lease_key(1)) is None  # given back
    await a.stop()
    await bus.close()


async def test_renewing_writes_one_entry_however_many_cameras():
    bus = InProcessBus()
    await bus.start()
    a = await server(bus, "ms1", [])
    for camera_id in range(50):
        await a.acquire(camera_id, wait_s=0)
    owners = await bus.key_value(OWNERS)
    before = {k: (await owners.get(k)).revision for k in await owners.keys()}
    await asyncio.sleep(TTL_S * 2)  # eight renewal rounds
    assert {k: (await owners.get(k)).revision for k in await owners.keys()} == before
    assert len(a.held) == 50
    await a.stop()
    await bus.close()


async def test_a_restarted_server_takes_back_the_cameras_of_its_former_self():
    bus = InProcessBus()
    await bus.start()
    lost: list = []
    first = await server(bus, "ms1", lost)
    await first.acquire(5, wait_s=0)
    freeze(first)  # killed: no release, no renewal
    again = await server(bus, "ms1", lost)  # same name, new epoch, at once (no waiting out the lease)
    await again.acquire(5, wait_s=0)
    assert read_owner(await (await bus.key_value(OWNERS)).get(lease_key(5))) == ("ms1", again.epoch)
    other = await server(bus, "ms2", lost)
    with pytest.raises(Conflict):
        await other.acquire(5, wait_s=0.2)
    assert lost == []
    for leases in (again, other):
        await leases.stop()
    await bus.close()
