"""The nas backend against a real Samba server (Debian's smbd as our own process, tests/peers/samba.py).

One server per session; a fresh folder of the share per test. The same behaviours as the local
backend's tests, then what only a NAS has: the four failures a site must tell apart (share
unreachable, wrong credentials, read-only, full), an outage that loses nothing, and mount mode's
refusal of a path where nothing is mounted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import subprocess
import time
import uuid

import pytest
from valt_storage_nas.backend import NasStorage
from valt_storage_nas.config import NasStorageConfig

from tests.peers.samba import PrivateSamba
from valt_core.errors import NotFound, StorageError, ValidationFailed


@pytest.fixture(scope="session")
def samba(tmp_path_factory):
    try:
        server = PrivateSamba(tmp_path_factory.mktemp("samba"))
    except (RuntimeError, OSError, subprocess.CalledProcessError) as err:
        pytest.fail(f"the Samba peer cannot start: {err}")
    yield server
    server.stop()


@pytest.fixture
def folder():
    return f"t-{uuid.uuid4().hex[:10]}"


def make_store(samba, tmp_path, folder, **kw) -> NasStorage:
    options = dict(server="127.0.0.1", port=samba.port, share="valt", path=folder, user=samba.user,
                   password=samba.password, spool_dir=tmp_path / "spool", timeout_s=3, retry_interval_s=0.1,
                   retry_max_s=0.5, close_wait_s=5, fsync=False)
    options.update(kw)
    return NasStorage(NasStorageConfig(**options))


@pytest.fixture
async def store(samba, tmp_path, folder):
    backend = make_store(samba, tmp_path, folder)
    yield backend
    await backend.aclose()


def on_share(samba, folder, key, share="valt"):
    """The file as the server keeps it on its disk."""
    return samba.shares[share].joinpath(folder, *key.split("/"))


async def read_all(store, key, start=0, end=None):
    return b"".join([chunk async for chunk in store.read(key, start, end)])


def spool_files(tmp_path):
    root = tmp_path / "spool"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


# --- the storage contract, as the local backend's tests check it ------------------------------

async def test_streamed_write_then_ranged_reads(store, samba, folder, tmp_path):
    data = os.urandom(700_000)
    key = "recordings/1/cam-2/000001.mp4"
    w = await store.open_writer(key)
    for i in range(0, len(data), 65536):
        await w.write(data[i:i + 65536])
    assert await w.close() == len(data)
    assert spool_files(tmp_path) == []  # on the share, nothing left behind
    assert on_share(samba, folder, key).read_bytes() == data
    assert await store.size(key) == len(data)
    assert await read_all(store, key) == data
    assert await read_all(store, key, 1000, 300_123) == data[1000:300_123]
    assert await read_all(store, key, 699_990) == data[699_990:]
    assert await read_all(store, key, 5, 5) == b""
    assert store.pending().objects == 0 and store.outage() is None


async def test_a_file_leaves_the_spool_only_after_the_server_was_asked_to_commit_it(store, samba, folder,
                                                                                     tmp_path, monkeypatch):
    from smbprotocol.open import Open

    flushed = []
    real_flush = Open.flush
    # The SMB2 FLUSH request (the server commits the file to its disk), seen on its way out.
    monkeypatch.setattr(Open, "flush", lambda self, send=True: flushed.append(self.file_name) or real_flush(self, send))
    w = await store.open_writer("recordings/9/cam-1/000001.mp4")
    await w.write(b"x" * 100_000)
    await w.close()
    assert spool_files(tmp_path) == [] and on_share(samba, folder, "recordings/9/cam-1/000001.mp4").exists()
    assert any(name.endswith("000001.mp4.partial") for name in flushed), flushed


async def test_flushed_bytes_are_spooled_before_close_and_the_object_appears_on_close(store, samba, folder,
                                                                                      tmp_path):
    w = await store.open_writer("a/b.mp4")
    await w.write(b"fragment-1")
    await w.flush()
    assert (tmp_path / "spool" / "a" / "b.mp4.spool").read_bytes() == b"fragment-1"
    with pytest.raises(NotFound):
        await store.size("a/b.mp4")
    assert store.pending().objects == 1 and store.pending().bytes == len(b"fragment-1")
    await w.close()
    assert await read_all(store, "a/b.mp4") == b"fragment-1"
    assert on_share(samba, folder, "a/b.mp4").read_bytes() == b"fragment-1"
    assert not list(on_share(samba, folder, "a").glob("*.partial"))


async def test_abort_and_delete(store, samba, folder):
    w = await store.open_writer("x.mp4")
    await w.write(b"junk")
    await w.abort()
    assert not on_share(samba, folder, "x.mp4").exists() and store.pending().objects == 0
    w = await store.open_writer("y.mp4")
    await w.write(b"keep")
    await w.close()
    await store.delete("y.mp4")
    await store.delete("y.mp4")  # absent: not an error
    assert not on_share(samba, folder, "y.mp4").exists()
    with pytest.raises(NotFound):
        await read_all(store, "y.mp4")
    with pytest.raises(NotFound):
        await store.size("y.mp4")


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a//b", "a/./b", "", "a\\b", "a/.."])
async def test_unsafe_keys_are_refused(store, key):
    with pytest.raises(ValidationFailed):
        await store.open_writer(key)


async def test_usage_and_check_give_the_shares_space(store):
    await store.check()
    w = await store.open_writer("r/1.bin")
    await w.write(b"x" * 12345)
    await w.close()
    usage = await store.usage()
    assert usage.used_bytes == 12345
    assert usage.total_bytes >= usage.free_bytes > 0  # SMB's volume information
    assert await store.free_bytes() > 0


async def test_unfinished_writes_survive_a_crash_and_are_salvaged_or_discarded(samba, tmp_path, folder):
    crashed = make_store(samba, tmp_path, folder)
    for key in ("rec/1/a.mp4", "rec/1/b.mp4", "other/c.mp4"):
        w = await crashed.open_writer(key)
        await w.write(key.encode())
        await w.flush()  # and then the process "dies": no close, no aclose
    after = make_store(samba, tmp_path, folder)  # the next start, on the same spool
    try:
        assert await after.unfinished("rec") == ["rec/1/a.mp4", "rec/1/b.mp4"]
        assert await after.salvage("rec/1/a.mp4") == len(b"rec/1/a.mp4")
        assert await read_all(after, "rec/1/a.mp4") == b"rec/1/a.mp4"
        await until(lambda: on_share(samba, folder, "rec/1/a.mp4").exists())
        assert on_share(samba, folder, "rec/1/a.mp4").read_bytes() == b"rec/1/a.mp4"
        assert await after.salvage("rec/1/zzz.mp4") is None
        await after.discard_unfinished("rec/1/b.mp4")
        assert await after.unfinished("rec") == []
        with pytest.raises(NotFound):
            await after.size("rec/1/b.mp4")
    finally:
        await after.aclose()
        await crashed.aclose()


async def test_an_abandoned_write_keeps_its_flushed_bytes_for_salvage(store, samba, folder):
    w = await store.open_writer("rec/1/000001.mp4")
    await w.write(b"fragment-1")
    await w.flush()
    await w.write(b"torn piece")
    await w.abandon(len(b"fragment-1"))
    assert await store.unfinished("rec") == ["rec/1/000001.mp4"]
    assert await store.salvage("rec/1/000001.mp4") == len(b"fragment-1")
    assert await read_all(store, "rec/1/000001.mp4") == b"fragment-1"
    assert on_share(samba, folder, "rec/1/000001.mp4").read_bytes() == b"fragment-1"


# --- what a NAS adds: four failures told apart, outages that lose nothing ----------------------

async def test_a_wrong_password_is_named_as_such_and_never_shown(samba, tmp_path, folder, caplog):
    wrong = "not-the-password-9f3a7c"
    store = make_store(samba, tmp_path, folder, password=wrong)
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(StorageError, match="wrong credentials") as caught:
            await store.check()
        # A recording that already runs keeps going into the spool, and health says why.
        w = await store.open_writer("rec/1.mp4")
        await w.write(b"kept")
        await w.close()
        await until(lambda: store.outage() is not None)
        assert "wrong credentials" in store.outage()
        assert await read_all(store, "rec/1.mp4") == b"kept"
        for text in (str(caught.value), store.outage(), repr(store), repr(store.config), caplog.text):
            assert wrong not in text
    finally:
        await store.aclose()


async def test_an_unreachable_share_spools_and_drains_in_order_when_it_is_back(samba, tmp_path, folder):
    store = make_store(samba, tmp_path, folder, timeout_s=2)
    first = os.urandom(300_000)
    try:
        w = await store.open_writer("rec/000001.mp4")
        await w.write(first)
        await w.close()  # the share answers: on it already
        samba.stop()
        try:
            pieces = [os.urandom(200_000 + i) for i in range(3)]
            for i, data in enumerate(pieces, start=2):
                w = await store.open_writer(f"rec/{i:06d}.mp4")
                await w.write(data[:1000])
                await w.flush()
                await w.write(data[1000:])
                await w.close()  # does not wait for a share that is away
            await until(lambda: store.outage() is not None)
            assert "cannot reach" in store.outage() or "did not answer" in store.outage()
            assert store.pending().objects == 3
            assert await read_all(store, "rec/000003.mp4", 10, 5000) == pieces[1][10:5000]  # from the spool
            assert await store.size("rec/000004.mp4") == len(pieces[2])
            await store.check()  # recording may go on: not an error while the spool takes it
        finally:
            samba.start()
        await until(lambda: store.pending().objects == 0, timeout=20)
        assert store.outage() is None
        for i, data in enumerate(pieces, start=2):
            assert on_share(samba, folder, f"rec/{i:06d}.mp4").read_bytes() == data
        mtimes = [on_share(samba, folder, f"rec/{i:06d}.mp4").stat().st_mtime_ns for i in (2, 3, 4)]
        assert mtimes == sorted(mtimes)  # oldest first
        assert spool_files(tmp_path) == []
        assert await read_all(store, "rec/000001.mp4") == first
    finally:
        await store.aclose()


async def test_a_read_only_share_is_named_as_such(samba, tmp_path, folder):
    store = make_store(samba, tmp_path, "", share="readonly")
    try:
        with pytest.raises(StorageError, match="read-only"):
            await store.check()
        w = await store.open_writer("rec/1.mp4")
        await w.write(b"waits")
        await w.close()
        await until(lambda: store.outage() is not None)
        assert "read-only" in store.outage() and store.pending().objects == 1
        assert await read_all(store, "hello.txt") == b"read me\n"  # reads still work
    finally:
        await store.aclose()


async def test_a_full_share_is_named_as_such(samba, tmp_path, folder):
    small = samba.shares["small"]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    store = make_store(samba, tmp_path, "", share="small")
    try:
        await store.check()
        free = await store.free_bytes()
        assert free <= 1024 * 1024
        w = await store.open_writer("rec/big.mp4")
        await w.write(os.urandom(2 * 1024 * 1024))
        await w.close()
        await until(lambda: store.outage() is not None)
        assert "full" in store.outage() and store.pending().objects == 1
        assert await store.size("rec/big.mp4") == 2 * 1024 * 1024  # kept in the spool
        assert not list(small.rglob("*.partial"))  # a failed copy leaves nothing filling the share
        fd = os.open(small / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"x" * 65536)
        except OSError:
            pass  # the share's disk is full now
        finally:
            os.close(fd)
        fresh = make_store(samba, tmp_path / "other", "", share="small")
        try:
            with pytest.raises(StorageError, match="full"):
                await fresh.check()
        finally:
            await fresh.aclose()
    finally:
        await store.aclose()
        subprocess.run(["umount", "-l", str(small)], check=False)


# --- mount mode ---------------------------------------------------------------------------------

def mount_store(tmp_path, mount, **kw) -> NasStorage:
    return NasStorage(NasStorageConfig(mode="mount", mount_path=mount, spool_dir=tmp_path / "spool",
                                       retry_interval_s=0.1, retry_max_s=0.5, fsync=False, **kw))


async def test_mount_mode_refuses_a_path_where_nothing_is_mounted(tmp_path):
    plain = tmp_path / "nas"
    plain.mkdir()
    store = mount_store(tmp_path, plain)
    try:
        with pytest.raises(StorageError, match="not a mount point"):
            await store.check()
    finally:
        await store.aclose()
    allowed = mount_store(tmp_path, plain, allow_unmounted=True, path="valt")
    try:
        await allowed.check()
        w = await allowed.open_writer("rec/1.mp4")
        await w.write(b"on the path")
        await w.close()
        assert (plain / "valt" / "rec" / "1.mp4").read_bytes() == b"on the path"
        assert allowed.local_path("rec/1.mp4") == str(plain / "valt" / "rec" / "1.mp4")
    finally:
        await allowed.aclose()


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs: a real mount point."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_mount_mode_on_a_real_mount_point(tmp_path, small_disk):
    store = mount_store(tmp_path, small_disk)
    try:
        await store.check()
        data = os.urandom(100_000)
        w = await store.open_writer("rec/1.mp4")
        await w.write(data)
        await w.close()
        assert (small_disk / "rec" / "1.mp4").read_bytes() == data
        assert stat.S_IMODE((small_disk / "rec" / "1.mp4").stat().st_mode) == 0o600
        assert stat.S_IMODE((small_disk / "rec").stat().st_mode) == 0o700
        assert await read_all(store, "rec/1.mp4", 100, 200) == data[100:200]
        usage = await store.usage()
        assert usage.used_bytes == len(data) and usage.total_bytes <= 64 * 1024 * 1024
    finally:
        await store.aclose()


async def test_a_frozen_server_is_an_outage_under_the_timeout_and_nothing_is_lost(samba, tmp_path, folder):
    store = make_store(samba, tmp_path, folder, timeout_s=1)
    try:
        await store.check()  # a session is open when the server stops answering
        samba.pause()
        try:
            data = os.urandom(150_000)
            w = await store.open_writer("rec/000001.mp4")
            await w.write(data)
            await w.close()  # returns once the copy gave up at its timeout: the recorder is not held up
            await until(lambda: store.outage() is not None)
            assert "did not answer" in store.outage()
            assert await read_all(store, "rec/000001.mp4") == data
            await store.check()  # not an error: the spool takes the recording
        finally:
            samba.resume()
        await until(lambda: store.pending().objects == 0, timeout=20)
        assert on_share(samba, folder, "rec/000001.mp4").read_bytes() == data and store.outage() is None
    finally:
        await store.aclose()


async def test_a_share_unmounted_mid_run_is_an_outage_and_the_bare_directory_stays_empty(tmp_path, small_disk):
    store = mount_store(tmp_path, small_disk)
    try:
        await store.check()
        subprocess.run(["umount", "-l", str(small_disk)], check=True)
        w = await store.open_writer("rec/1.mp4")
        await w.write(b"while unmounted")
        await w.close()
        await until(lambda: store.outage() is not None)
        assert "not a mount point" in store.outage() and store.pending().objects == 1
        assert list(small_disk.iterdir()) == []  # nothing written onto the local disk underneath
        assert await read_all(store, "rec/1.mp4") == b"while unmounted"
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(small_disk)], check=True)
        await until(lambda: store.pending().objects == 0)
        assert (small_disk / "rec" / "1.mp4").read_bytes() == b"while unmounted" and store.outage() is None
    finally:
        await store.aclose()
