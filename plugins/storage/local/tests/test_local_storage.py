"""The local storage backend against the storage contract."""

from __future__ import annotations

import os

import pytest
from valt_storage_local.backend import LocalStorage
from valt_storage_local.config import LocalStorageConfig

from valt_core.errors import NotFound, StorageError, ValidationFailed


def storage(tmp_path, **kw):
    return LocalStorage(LocalStorageConfig(path=tmp_path / "media", **kw))


async def read_all(store, key, start=0, end=None):
    return b"".join([chunk async for chunk in store.read(key, start, end)])


async def test_streamed_write_then_ranged_reads(tmp_path):
    store = storage(tmp_path)
    data = os.urandom(700_000)  # spans several read chunks
    w = await store.open_writer("recordings/1/cam-2/000001.mp4")
    for i in range(0, len(data), 65536):
        await w.write(data[i:i + 65536])
    assert await w.close() == len(data)
    assert await store.size("recordings/1/cam-2/000001.mp4") == len(data)
    assert await read_all(store, "recordings/1/cam-2/000001.mp4") == data
    assert await read_all(store, "recordings/1/cam-2/000001.mp4", 1000, 300_123) == data[1000:300_123]
    assert await read_all(store, "recordings/1/cam-2/000001.mp4", 699_990) == data[699_990:]
    assert await read_all(store, "recordings/1/cam-2/000001.mp4", 5, 5) == b""


async def test_flushed_bytes_survive_before_close_and_object_appears_on_close(tmp_path):
    store = storage(tmp_path)
    w = await store.open_writer("a/b.mp4")
    await w.write(b"fragment-1")
    await w.flush()
    partials = list((tmp_path / "media" / "a").glob("b.mp4.partial"))
    assert len(partials) == 1 and partials[0].read_bytes() == b"fragment-1"
    with pytest.raises(NotFound):
        await store.size("a/b.mp4")
    await w.close()
    assert await read_all(store, "a/b.mp4") == b"fragment-1"
    assert not list((tmp_path / "media" / "a").glob("*.partial"))


async def test_abort_and_delete(tmp_path):
    store = storage(tmp_path)
    w = await store.open_writer("x.mp4")
    await w.write(b"junk")
    await w.abort()
    assert list((tmp_path / "media").iterdir()) == []
    w = await store.open_writer("y.mp4")
    await w.write(b"keep")
    await w.close()
    await store.delete("y.mp4")
    await store.delete("y.mp4")  # absent: not an error
    with pytest.raises(NotFound):
        await read_all(store, "y.mp4")


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a//b", "a/./b", "", "a\\b", "a/.."])
async def test_unsafe_keys_are_refused(tmp_path, key):
    with pytest.raises(ValidationFailed):
        await storage(tmp_path).open_writer(key)


async def test_usage_and_check(tmp_path):
    store = storage(tmp_path, fsync=False)
    await store.check()
    w = await store.open_writer("r/1.bin")
    await w.write(b"x" * 12345)
    await w.close()
    usage = await store.usage()
    assert usage.used_bytes == 12345
    assert usage.total_bytes >= usage.free_bytes > 0


async def test_unusable_directory_is_a_storage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = LocalStorage(LocalStorageConfig(path=blocker / "media"))
    with pytest.raises(StorageError, match="not writable"):
        await store.check()
    with pytest.raises(StorageError, match="not usable"):
        await store.usage()


async def test_unfinished_writes_can_be_salvaged_or_discarded(tmp_path):
    store = storage(tmp_path)
    for key in ("rec/1/a.mp4", "rec/1/b.mp4", "other/c.mp4"):
        w = await store.open_writer(key)
        await w.write(key.encode())
        await w.flush()  # and then the process "dies": no close
    assert await store.unfinished("rec") == ["rec/1/a.mp4", "rec/1/b.mp4"]
    assert await store.salvage("rec/1/a.mp4") == len(b"rec/1/a.mp4")
    assert await read_all(store, "rec/1/a.mp4") == b"rec/1/a.mp4"
    assert await store.salvage("rec/1/zzz.mp4") is None
    await store.discard_unfinished("rec/1/b.mp4")
    assert await store.unfinished("rec") == []
    with pytest.raises(NotFound):
        await store.size("rec/1/b.mp4")
    assert await store.free_bytes() > 0


async def test_abandoned_write_keeps_its_flushed_bytes_for_salvage(tmp_path):
    # A write that failed (disk full) must not take the fragments flushed before it along.
    store = storage(tmp_path)
    w = await store.open_writer("rec/1/000001.mp4")
    await w.write(b"fragment-1")
    await w.flush()
    await w.write(b"torn piece")  # buffered, as a failed write may leave it
    await w.abandon(len(b"fragment-1"))
    assert await store.unfinished("rec") == ["rec/1/000001.mp4"]
    assert await store.salvage("rec/1/000001.mp4") == len(b"fragment-1")
    assert await read_all(store, "rec/1/000001.mp4") == b"fragment-1"


async def test_files_and_directories_are_private_whatever_the_umask(tmp_path):
    import stat

    old = os.umask(0o022)
    try:
        store = storage(tmp_path)
        w = await store.open_writer("recordings/1/track-1/000001.mp4")
        await w.write(b"x")
        await w.close()
    finally:
        os.umask(old)
    path = tmp_path / "media" / "recordings" / "1" / "track-1" / "000001.mp4"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (path.parent, path.parent.parent, path.parent.parent.parent, tmp_path / "media"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory

