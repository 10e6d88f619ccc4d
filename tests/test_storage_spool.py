"""The core's spool in front of a remote store (valt_core.storage.spool), with no server.

The store here is a dict that can be made to refuse: enough to check the spool's own promises
(nothing lost while the store is away, order kept, reads served from the spool, a restart finds
what was left). The s3 and nas plugins' tests check the same against moto and Samba.
"""

from __future__ import annotations

import asyncio

import pytest

from valt_core.errors import NotFound, StorageError
from valt_core.storage import StorageUsage
from valt_core.storage.spool import SpooledStorage, SpoolEntry, SpoolSettings


class DictStore(SpooledStorage):
    """Objects in a dict; ``down`` makes every send fail as an unreachable store would."""

    name = "dict"
    Config = SpoolSettings

    def __init__(self, config: SpoolSettings) -> None:
        super().__init__(config, workers=2)
        self.objects: dict[str, bytes] = {}
        self.order: list[str] = []
        self.down = False

    async def send(self, entry: SpoolEntry) -> None:
        if self.down:
            raise StorageError("dict: unreachable")
        self.order.append(entry.key)  # before the first await: the order the workers took them in
        data = await asyncio.to_thread(entry.data_path.read_bytes)
        self.objects[entry.key] = data[:entry.size]
        await self.stored(entry)

    async def read_store(self, key, start, end):
        if key not in self.objects:
            raise NotFound(key)
        yield self.objects[key][start:end]

    async def size(self, key):
        entry = self.spooled(key)
        return entry.size if entry is not None else len(self.objects[key])

    async def delete(self, key):
        entry = self.spooled(key)
        if entry is not None:
            await self.drop(entry)
        self.objects.pop(key, None)

    async def usage(self):
        return StorageUsage(sum(map(len, self.objects.values())) + self.spooled_bytes(), None, None)

    async def check(self):
        await self.check_spool()


def settings(tmp_path) -> SpoolSettings:
    return SpoolSettings(spool_dir=tmp_path / "spool", retry_interval_s=0.05, retry_max_s=0.1, close_wait_s=0.5)


async def write(store: SpooledStorage, key: str, data: bytes) -> int:
    writer = await store.open_writer(key)
    await writer.write(data)
    return await writer.close()


async def read_all(store: SpooledStorage, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([c async for c in store.read(key, start, end)])


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_an_outage_loses_nothing_and_the_spool_drains_in_order(tmp_path):
    store = DictStore(settings(tmp_path))
    store.down = True
    for n in range(3):
        assert await write(store, f"rec/1/{n:06d}.mp4", bytes([n]) * (1000 + n)) == 1000 + n
    await until(lambda: store.outage() is not None)
    assert "unreachable" in store.outage()
    pending = store.pending()
    assert (pending.objects, pending.bytes) == (3, 3003)
    # Meanwhile reads come from the spool, ranges included.
    assert await read_all(store, "rec/1/000001.mp4", 10, 20) == b"\x01" * 10
    assert (await store.usage()).used_bytes == 3003
    store.down = False
    await until(lambda: len(store.objects) == 3 and store.pending().objects == 0)
    assert store.order == [f"rec/1/{n:06d}.mp4" for n in range(3)]
    assert store.outage() is None and store.pending().objects == 0
    assert not [p for p in (tmp_path / "spool").rglob("*") if p.is_file()]
    assert await read_all(store, "rec/1/000002.mp4") == b"\x02" * 1002
    await store.aclose()


async def test_a_restart_sends_what_was_closed_and_salvages_what_was_open(tmp_path):
    first = DictStore(settings(tmp_path))
    first.down = True
    await write(first, "rec/2/000001.mp4", b"closed")
    writer = await first.open_writer("rec/2/000002.mp4")
    await writer.write(b"flushed")
    await writer.flush()
    await writer.write(b"-never-flushed")  # lost in the 'crash' below, as on a local disk
    await first.stop_workers()

    second = DictStore(settings(tmp_path))
    assert await second.unfinished("rec/2") == ["rec/2/000002.mp4"]
    await until(lambda: "rec/2/000001.mp4" in second.objects)
    assert second.objects["rec/2/000001.mp4"] == b"closed"
    assert await second.salvage("rec/2/000002.mp4") == len(b"flushed")
    await until(lambda: "rec/2/000002.mp4" in second.objects)
    assert second.objects["rec/2/000002.mp4"] == b"flushed"
    assert await second.unfinished("rec/2") == []
    await second.aclose()


async def test_an_abandoned_writer_keeps_only_what_it_says(tmp_path):
    store = DictStore(settings(tmp_path))
    store.down = True
    writer = await store.open_writer("rec/3/000001.mp4")
    await writer.write(b"whole-fragment|torn")
    await writer.flush()
    await writer.abandon(len(b"whole-fragment"))
    store.down = False
    assert await store.salvage("rec/3/000001.mp4") == len(b"whole-fragment")
    await until(lambda: "rec/3/000001.mp4" in store.objects)
    assert store.objects["rec/3/000001.mp4"] == b"whole-fragment"
    await store.aclose()


async def test_an_aborted_or_deleted_object_leaves_no_spool_files(tmp_path):
    store = DictStore(settings(tmp_path))
    store.down = True
    writer = await store.open_writer("rec/4/a.mp4")
    await writer.write(b"x" * 100)
    await writer.abort()
    await write(store, "rec/4/b.mp4", b"y" * 10)
    await store.delete("rec/4/b.mp4")
    assert store.pending().objects == 0
    assert not [p for p in (tmp_path / "spool").rglob("*") if p.is_file()]
    with pytest.raises(NotFound):
        await read_all(store, "rec/4/b.mp4")
    await store.aclose()
