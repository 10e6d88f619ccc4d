"""Batched flushes (valt_core.storage.flush): many files made durable with one syncfs."""

from __future__ import annotations

import contextlib
import errno
import os

from valt_core.storage import flush


def test_a_batch_of_flushes_is_made_durable_with_one_syncfs_per_file_system(tmp_path, monkeypatch):
    assert flush._syncfs is not None or not os.environ.get("CI"), "syncfs is in every Linux C library"
    fsynced, synced = [], []
    real_syncfs = flush._syncfs
    monkeypatch.setattr(flush.os, "fsync", lambda fd: fsynced.append(fd))
    monkeypatch.setattr(flush, "_syncfs", lambda fd: synced.append(fd) or real_syncfs(fd))
    files = [open(tmp_path / f"f{i}", "wb") for i in range(3)]
    lazy = open(tmp_path / "no-fsync", "wb")
    for i, f in enumerate(files + [lazy]):
        f.write(bytes([i]) * 1000)
    assert flush.flush_batch([(f, True) for f in files] + [(lazy, False)]) == [None] * 4
    assert len(synced) == 1 and fsynced == []  # one call for the three, none for the lazy one
    assert [(tmp_path / f"f{i}").read_bytes() for i in range(3)] == [bytes([i]) * 1000 for i in range(3)]
    # Alone, a file is fsynced; a file that cannot be flushed fails alone.
    files[0].write(b"more")
    assert flush.flush_batch([(files[0], True)]) == [None] and len(fsynced) == 1
    full = open("/dev/full", "wb")  # a disk with no room: the write-out fails
    full.write(b"x" * 10)
    files[2].write(b"more")
    errors = flush.flush_batch([(full, True), (files[2], True)])
    assert errors[0] is not None and errors[0].errno == errno.ENOSPC and errors[1] is None, errors
    with contextlib.suppress(OSError):
        full.close()  # its buffer still cannot be written out; the descriptor closes all the same
    for f in files + [lazy]:
        f.close()


async def test_a_lone_writer_never_waits_and_many_writers_share_a_batch(tmp_path, monkeypatch):
    import asyncio
    import time

    synced = []
    real_syncfs = flush._syncfs
    monkeypatch.setattr(flush, "_syncfs", lambda fd: synced.append(fd) or real_syncfs(fd))
    threads = flush.FlushThreads(threads=1, gather_s=0.2, gather_files=4)
    lone = open(tmp_path / "clip.mp4", "wb")
    started = time.monotonic()
    for _ in range(5):  # a clip or an import: one file, flushed again and again
        lone.write(b"x" * 1000)
        await threads.flush(lone, True, "clip.mp4")
    assert time.monotonic() - started < 0.5 and synced == []  # no gathering, an fsync each
    many = [open(tmp_path / f"cam{i}.mp4", "wb") for i in range(6)]
    for f in many:  # six cameras seen flushing: from now on flushes are gathered
        f.write(b"y")
        await threads.flush(f, True, f.name)
    synced.clear()
    await asyncio.gather(*(threads.flush(f, True, f.name) for f in many))
    assert len(synced) == 1  # the six made durable by one syncfs
    for f in many + [lone]:
        f.close()
