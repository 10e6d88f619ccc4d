"""Flushing many open files at once: the storage backends' writers share a few threads.

A recorder flushes each finished fragment, about once a second per camera, and a flush that
is to survive a power cut must reach the disk. Done one by one, through the event loop's
default executor, that is a hand-off and a wake-up per flush and an ``fsync`` (a journal
commit) per file. :class:`FlushThreads` does the flushes waiting at one moment together, makes
them durable with one ``syncfs`` per file system, and hands the results back in one wake-up.
Used by ``local`` for its files and by :mod:`~valt_core.storage.spool` for spool files.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import os
import queue
import threading
import time
from typing import BinaryIO

from ..errors import StorageError


class FlushThreads:
    """A few threads that flush (and make durable) every open file of a backend, in batches.

    A recorder flushes each finished fragment, about once a second per camera. Through the
    event loop's default executor each flush is a hand-off to a pool thread and a wake-up of the
    loop; here the flushes waiting at one moment are done together and their results reach the
    loop in one wake-up. ``threads`` of them share the queue, so one slow disk call does not
    hold up every other camera's. They sleep on the queue while nothing is written.

    Durability is batched too: the files of a batch that need it are written out, then one
    ``syncfs`` per file system commits them all (one journal commit instead of one ``fsync``
    each; at 300 cameras that is most of the storage's CPU). A batch of one, or a platform
    without ``syncfs``, uses ``fsync``. While many files are being written (at least
    ``gather_files`` flushed in the last second: many cameras), a thread waits ``gather_s``
    after the first flush for others to join its batch, so a fragment becomes durable at most
    that much later; a lone writer (a clip, an import, a test's one camera) never waits.

    One set of threads serves the whole process (:meth:`shared`): every backend's flushes
    batch together, and no backend leaves threads behind.
    """

    _shared: "FlushThreads | None" = None
    _shared_lock = threading.Lock()

    def __init__(self, threads: int = 2, gather_s: float = 0.05, gather_files: int = 4) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._count = threads
        self._gather_s = gather_s
        self._gather_files = gather_files
        self._lock = threading.Lock()
        #: When each file was last flushed (by ``id``), for "are many files being written".
        self._recent: dict[int, float] = {}

    @classmethod
    def shared(cls) -> "FlushThreads":
        """The process's flush threads."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def _busy(self) -> bool:
        """Whether ``gather_files`` or more files were flushed in the last second."""
        now = time.monotonic()
        with self._lock:
            for key in [k for k, t in self._recent.items() if now - t > 1.0]:
                del self._recent[key]
            return len(self._recent) >= self._gather_files

    def flush(self, file: BinaryIO, durable: bool, name: str) -> asyncio.Future:
        """Flush ``file`` (and make it durable when ``durable``) in a thread; the future fails
        with a :class:`StorageError` naming ``name`` when the disk refused."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        with self._lock:
            self._recent[id(file)] = time.monotonic()
            while len(self._threads) < self._count:
                thread = threading.Thread(target=self._run, name=f"storage-flush-{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)
        self._queue.put((loop, done, file, durable, name))
        return done

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            if self._gather_s and self._busy():
                time.sleep(self._gather_s)
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            errors = flush_batch([(file, durable) for _loop, _done, file, durable, _name in batch])
            finished: dict[asyncio.AbstractEventLoop, list] = {}
            for (loop, done, _file, _durable, name), err in zip(batch, errors):
                outcome = None if err is None else StorageError(f"cannot flush {name}: {err.strerror}")
                finished.setdefault(loop, []).append((done, outcome))
            for loop, results in finished.items():
                try:
                    loop.call_soon_threadsafe(_settle, results)
                except RuntimeError:
                    pass  # that loop is closed: nobody waits any more


def flush_batch(files: list[tuple[BinaryIO, bool]]) -> list[OSError | None]:
    """Flush each file, then make the ``durable`` ones durable: one ``syncfs`` per file system
    where two or more share it, else ``fsync``. Returns each file's error (or ``None``)."""
    errors: list[OSError | None] = [None] * len(files)
    by_device: dict[int, list[int]] = {}
    for i, (file, durable) in enumerate(files):
        try:
            file.flush()
            if durable:
                by_device.setdefault(os.fstat(file.fileno()).st_dev, []).append(i)
        except OSError as err:
            errors[i] = err
    for members in by_device.values():
        if len(members) > 1 and _syncfs is not None:
            err = _syncfs(files[members[0]][0].fileno())
            if err is None:
                continue
            if err.errno != errno.ENOSYS:
                for i in members:
                    errors[i] = err
                continue
        for i in members:  # one file alone, or no syncfs here
            try:
                os.fsync(files[i][0].fileno())
            except OSError as err:
                errors[i] = err
    return errors


def _load_syncfs():
    """``syncfs(fd)`` from the C library (Linux), as a function returning an OSError or None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = libc.syncfs
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int]

    def syncfs(fd: int) -> OSError | None:
        # Linux 5.8 and later report a write-back error of any file of the file system here.
        if call(fd) == 0:
            return None
        code = ctypes.get_errno()
        return OSError(code, os.strerror(code))

    return syncfs


_syncfs = _load_syncfs()


def _settle(results: list) -> None:
    for done, err in results:
        if done.cancelled():
            continue
        if err is None:
            done.set_result(None)
        else:
            done.set_exception(err)


