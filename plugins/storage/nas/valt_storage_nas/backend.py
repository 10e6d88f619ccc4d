"""The ``nas`` storage backend: files on an SMB share (or a mounted NAS path), through a local spool.

A writer appends to a spool file and fsyncs it on flush, so a crash keeps what ``local`` keeps.
Once the writer is closed, a background worker copies the file to the share (to ``KEY.partial``,
then renamed, then its size checked) and drops it from the spool. Files go in the order they
were written. While the share is away, full, read-only or refusing the user, nothing is lost:
writes go on into the spool, reads of waiting keys are served from it, ``outage()`` says what is
wrong, and the worker retries with back-off until the share takes everything.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import AsyncIterator, BinaryIO

from valt_core.errors import StorageError
from valt_core.files import make_private_dir
from valt_core.storage import PendingUploads, StorageBackend, StorageUsage, StorageWriter, check_key

from .client import UNREACHABLE, MountedShare, Share, ShareError, SmbShare, share_error
from .config import NasStorageConfig
from .spool import CLOSED, OPEN, Spool, SpoolEntry

log = logging.getLogger("valt.storage.nas")

READ_CHUNK = 256 * 1024


class NasWriter(StorageWriter):
    """Appends to a spool file; the backend's worker copies it to the share once closed."""

    def __init__(self, backend: "NasStorage", entry: SpoolEntry, file: BinaryIO) -> None:
        self._backend = backend
        self._entry = entry
        self._file = file
        self._written = 0

    async def write(self, data: bytes) -> None:
        """Append ``data`` (buffered; the disk sees it on flush)."""
        try:
            self._file.write(data)
        except OSError as err:
            raise StorageError(f"cannot write the spool of {self._entry.key}: {err.strerror}") from err
        self._written += len(data)

    async def flush(self) -> None:
        """Push buffered bytes to the spool's disk (and fsync when configured)."""
        fsync = self._backend.config.fsync

        def run() -> None:
            try:
                self._file.flush()
                if fsync:
                    os.fsync(self._file.fileno())
            except OSError as err:
                raise StorageError(f"cannot flush the spool of {self._entry.key}: {err.strerror}") from err

        await asyncio.to_thread(run)
        self._entry.size = self._written

    async def close(self) -> int:
        """Finish the object; waits for the share while it answers (see ``close_wait_s``)."""
        await self.flush()
        entry = self._entry
        entry.state = CLOSED

        def run() -> None:
            self._file.close()
            entry.save()

        await asyncio.to_thread(run)
        self._backend._wake()
        await self._backend._wait_stored(entry)
        return entry.size

    async def abort(self) -> None:
        """Drop the object and its spool files."""
        with contextlib.suppress(OSError):
            self._file.close()
        await self._backend._drop(self._entry)

    async def abandon(self, keep_bytes: int) -> None:
        """Close the spool file and cut it to ``keep_bytes``; salvage() finishes it later."""
        entry = self._entry

        def run() -> None:
            with contextlib.suppress(OSError):
                self._file.close()
            with contextlib.suppress(FileNotFoundError):
                os.truncate(entry.data_path, keep_bytes)

        await asyncio.to_thread(run)
        entry.size = keep_bytes


class NasStorage(StorageBackend):
    """Stores each key as a file below ``path`` of an SMB share (or of ``mount_path``)."""

    name = "nas"
    Config = NasStorageConfig

    @classmethod
    def default_options(cls, data_dir: Path) -> dict:
        """The spool goes below Valt's data directory unless the site puts it elsewhere."""
        return {"spool_dir": str(data_dir / "nas-spool")}

    def __init__(self, config: NasStorageConfig) -> None:
        super().__init__(config)
        self.config: NasStorageConfig = config
        self.share: Share = SmbShare(config) if config.mode == "smb" else MountedShare(config)
        self.spool = Spool(Path(config.spool_dir).resolve())
        #: Why the share failed last, while it keeps failing (``None`` when it takes writes).
        self.share_error: str | None = None
        self._entries: dict[str, SpoolEntry] = {}
        self._loaded = False
        # Threads of our own: a call hung on a frozen server must not hold up the loop's executor.
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="nas")
        self._worker_task: asyncio.Task | None = None
        self._start_lock: asyncio.Lock | None = None
        self._start_loop: asyncio.AbstractEventLoop | None = None
        self._work = asyncio.Event()
        self._retry_at = 0.0
        self._backoff = config.retry_interval_s
        self._warned_at = 0.0
        self._share_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NasStorage({self.config.where()!r})"

    # --- plumbing ---------------------------------------------------------------------------

    async def _call(self, doing: str, fn, *args, limit: float | None = None):
        """``fn(*args)`` on the share in one of our threads, under a timeout; failures made ours."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, fn, *args)
        try:
            return await asyncio.wait_for(future, limit or self.config.timeout_s)
        except asyncio.TimeoutError:
            # The session may be wedged: the next call opens a new one (the old is closed aside).
            threading.Thread(target=self._forget, daemon=True, name="nas-forget").start()
            raise ShareError(f"nas: the share {self.config.where()} did not answer within "
                             f"{self.config.timeout_s:g} s while {doing}", UNREACHABLE) from None
        except Exception as err:  # noqa: BLE001 - every client and file-system failure becomes ours
            mapped = share_error(err, doing, self.config.where())
            if isinstance(mapped, ShareError) and mapped.kind == UNREACHABLE:
                threading.Thread(target=self._forget, daemon=True, name="nas-forget").start()
            raise mapped from None

    def _forget(self) -> None:
        with self._share_lock:
            with contextlib.suppress(Exception):
                self.share.close()

    async def _start(self) -> None:
        """Load what an earlier process left in the spool and start the copy worker."""
        loop = asyncio.get_running_loop()
        if self._worker_task is not None and self._worker_task.get_loop() is loop and not self._worker_task.done():
            return
        if self._start_lock is None or self._start_loop is not loop:
            self._start_lock, self._start_loop = asyncio.Lock(), loop
        async with self._start_lock:
            if self._worker_task is not None and self._worker_task.get_loop() is loop \
                    and not self._worker_task.done():
                return
            if not self._loaded:
                for entry in await asyncio.to_thread(self.spool.load):
                    self._entries.setdefault(entry.key, entry)
                self._loaded = True
                waiting = [e for e in self._entries.values() if e.state == CLOSED]
                if waiting:
                    log.info("nas: %d file(s) from an earlier run wait in the spool; copying them", len(waiting))
            self._work = asyncio.Event()
            self._worker_task = asyncio.create_task(self._worker(), name="nas-copy")
            self._work.set()

    def _wake(self) -> None:
        self._work.set()

    async def aclose(self) -> None:
        """Stop the copy worker and drop the SMB session (what waits in the spool stays there)."""
        task, self._worker_task = self._worker_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await task
        threading.Thread(target=self._forget, daemon=True, name="nas-forget").start()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="nas")

    # --- the copy worker --------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            self._work.clear()
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            entry = next((e for e in sorted(self._entries.values(), key=lambda e: e.seq)
                          if e.state == CLOSED and not e.dropped and not e.busy), None)
            if entry is None:
                await self._work.wait()
                continue
            entry.busy = True
            try:
                await self._copy(entry)
            except StorageError as err:
                self._failed(err)
            except Exception as err:  # noqa: BLE001 - the worker must outlive any one failure
                log.exception("nas: unexpected failure copying %s", entry.key)
                self._failed(StorageError(f"nas: {type(err).__name__} copying {entry.key}"))
            else:
                self._recovered()
            finally:
                entry.busy = False

    async def _copy(self, entry: SpoolEntry) -> None:
        # A whole segment in one call: allow for its size at a slow 1 MB/s on top of the timeout.
        limit = self.config.timeout_s + entry.size / 1_000_000
        await self._call(f"copying {entry.key}", self.share.put, entry.key, entry.data_path, entry.size,
                         limit=limit)
        if entry.dropped:
            return
        await asyncio.to_thread(entry.remove, self.spool.root)
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
        entry.done.set()

    def _failed(self, err: StorageError) -> None:
        # Told when failures start, then once a minute while they go on.
        if self.share_error is None or time.monotonic() - self._warned_at > 60:
            self._warned_at = time.monotonic()
            log.warning("nas: copying to the share failed; the spool keeps the bytes and retries: %s", err)
        self.share_error = str(err)
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.config.retry_max_s)
        self._work.set()

    def _recovered(self) -> None:
        if self.share_error is not None:
            p = self.pending()
            log.info("nas: the share takes files again; draining the spool (%d file(s), %d bytes)",
                     p.objects, p.bytes)
        self.share_error = None
        self._backoff = self.config.retry_interval_s
        self._retry_at = 0.0
        self._work.set()

    async def _wait_stored(self, entry: SpoolEntry) -> None:
        """Wait (up to ``close_wait_s``) until ``entry`` is on the share, unless the share is failing."""
        deadline = time.monotonic() + self.config.close_wait_s
        while not entry.done.is_set() and self.share_error is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(entry.done.wait(), min(left, 0.2))

    async def _drop(self, entry: SpoolEntry) -> None:
        entry.dropped = True
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
        while entry.busy:
            await asyncio.sleep(0.02)  # a copy is under way: let it finish before the files go
        await asyncio.to_thread(entry.remove, self.spool.root)

    # --- the contract -----------------------------------------------------------------------

    async def open_writer(self, key: str) -> StorageWriter:
        """Start writing ``key`` into the spool."""
        check_key(key)
        await self._start()
        old = self._entries.get(key)
        if old is not None:
            await self._drop(old)
        entry = self.spool.entry(key)
        try:
            file = await asyncio.to_thread(self.spool.create, entry)
        except OSError as err:
            raise StorageError(f"cannot create the spool of {key}: {err.strerror}") from err
        self._entries[key] = entry
        return NasWriter(self, entry, file)

    def _spooled(self, key: str) -> SpoolEntry | None:
        entry = self._entries.get(check_key(key))
        return entry if entry is not None and entry.state == CLOSED else None

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield ``[start, end)`` of ``key``: from the spool while it waits there, else from the share."""
        await self._start()
        entry = self._spooled(key)
        f = None
        stop = end
        if entry is not None:
            try:
                f = await asyncio.to_thread(open, entry.data_path, "rb")
                stop = entry.size if end is None else min(end, entry.size)
                reading = asyncio.to_thread
            except FileNotFoundError:
                f = None  # copied and removed just now: read the share
        if f is None:
            f = await self._call(f"reading {key}", self.share.open_read, key)

            async def reading(fn, *args):
                return await self._call(f"reading {key}", fn, *args)
        try:
            await reading(f.seek, start)
            left = None if stop is None else max(0, stop - start)
            while left is None or left > 0:
                chunk = await reading(f.read, READ_CHUNK if left is None else min(READ_CHUNK, left))
                if not chunk:
                    break
                if left is not None:
                    left -= len(chunk)
                yield chunk
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(self._pool, f.close),
                                       self.config.timeout_s)

    async def size(self, key: str) -> int:
        """Size of ``key``: the spool's while it waits there, else the share's."""
        await self._start()
        entry = self._spooled(key)
        if entry is not None:
            return entry.size
        return await self._call(f"checking {key}", self.share.size, check_key(key))

    async def delete(self, key: str) -> None:
        """Remove ``key`` from the spool and from the share."""
        await self._start()
        entry = self._spooled(key)
        if entry is not None:
            await self._drop(entry)
        await self._call(f"deleting {key}", self.share.delete, key)

    async def usage(self) -> StorageUsage:
        """Bytes of the files on the share plus what waits in the spool; the share's free and total."""
        await self._start()
        used = await self._call("adding up the files on the share", self.share.used, limit=self.config.timeout_s * 6)
        free, total = await self._call("reading the share's free space", self.share.space)
        used += sum(e.size for e in self._entries.values() if e.state == CLOSED)
        return StorageUsage(used_bytes=used, free_bytes=free, total_bytes=total)

    async def free_bytes(self) -> int | None:
        """The smaller of the spool's free space and, while it answers, the share's."""
        try:
            make_private_dir(self.spool.root)
            spool_free = shutil.disk_usage(self.spool.root).free
        except OSError as err:
            raise StorageError(f"spool directory {self.spool.root} is not usable: {err.strerror}") from err
        if self.share_error is not None:
            return spool_free  # the share is away: the spool is what fills up now
        try:
            free, _total = await self._call("reading the share's free space", self.share.space)
        except StorageError:
            return spool_free
        return spool_free if free is None else min(free, spool_free)

    async def unfinished(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` whose writers were never closed (found in the spool)."""
        await self._start()
        base = check_key(prefix).rstrip("/") + "/"
        return sorted(k for k, e in self._entries.items() if e.state == OPEN and not e.dropped
                      and (k + "/").startswith(base))

    async def salvage(self, key: str) -> int | None:
        """Make the spooled bytes of an unfinished write the object (readable at once, copied later)."""
        await self._start()
        entry = self._entries.get(check_key(key))
        if entry is None or entry.state != OPEN:
            return None
        entry.size = (await asyncio.to_thread(entry.data_path.stat)).st_size
        entry.state = CLOSED
        await asyncio.to_thread(entry.save)
        self._wake()
        await self._wait_stored(entry)
        return entry.size

    async def discard_unfinished(self, key: str) -> None:
        """Drop the spool files of an unfinished write of ``key``."""
        await self._start()
        entry = self._entries.get(check_key(key))
        if entry is not None and entry.state == OPEN:
            await self._drop(entry)

    async def check(self) -> None:
        """The spool is writable and the share takes a write.

        A share that does not answer is not an error here: recording goes on into the spool. One
        that refuses (wrong credentials, read-only, full, not mounted) is, unless a known outage
        is being retried with files waiting, so starting a recording does not wait for it.
        """
        root = self.spool.root

        def probe() -> None:
            try:
                make_private_dir(root)
                test = root / f".write-test-{uuid.uuid4().hex[:8]}"
                try:
                    test.write_bytes(b"ok")
                finally:
                    test.unlink(missing_ok=True)
            except OSError as err:
                raise StorageError(f"spool directory {root} is not writable: {err.strerror}") from err

        await asyncio.to_thread(probe)
        await self._start()
        if self.share_error is not None and self.pending().objects:
            return
        try:
            await self._call(f"checking the share {self.config.where()}", self.share.probe)
        except ShareError as err:
            # In mount mode "unreachable" is "not mounted": refuse, rather than spool with no end.
            if err.kind != UNREACHABLE or self.config.mode == "mount":
                raise
            log.warning("%s; recording goes on into the spool", err)
            self.share_error = str(err)
            return
        if not any(e.busy for e in self._entries.values()):
            self._recovered()

    # --- beyond the base contract -----------------------------------------------------------

    def outage(self) -> str | None:
        """Why the share failed last, while it keeps failing (writes wait in the spool)."""
        return self.share_error

    def pending(self) -> PendingUploads:
        """Files written (closed, or flushed and still open) that the share does not have yet."""
        objects = waiting = 0
        for entry in self._entries.values():
            if not entry.dropped:
                objects += 1
                waiting += entry.size
        return PendingUploads(objects, waiting)

    def local_path(self, key: str) -> str | None:
        """Mode mount: the file on the mounted share (or in the spool while it waits there)."""
        entry = self._spooled(key)
        if entry is not None:
            return str(entry.data_path)
        if isinstance(self.share, MountedShare):
            return str(self.share.root.joinpath(*check_key(key).split("/")))
        return None

