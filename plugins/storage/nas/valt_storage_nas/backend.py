"""The ``nas`` storage backend: files on an SMB share (or a mounted NAS path), through a local spool.

Writes go through the core's spool (:mod:`valt_core.storage.spool`): a crash keeps what
``local`` keeps. Once a writer is closed, a background worker copies the file to the share (to
``KEY.partial``, then renamed, then its size checked) and drops it from the spool, in the order
the files were written. While the share is away, full, read-only or refusing the user, nothing is
lost: writes go on into the spool, reads of waiting keys are served from it, ``outage()`` says
what is wrong, and the worker retries with back-off until the share takes everything.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from pathlib import Path
from typing import AsyncIterator

from valt_core.errors import StorageError
from valt_core.storage import StorageUsage, check_key
from valt_core.storage.spool import SpooledStorage, SpoolEntry

from .client import UNREACHABLE, MountedShare, Share, ShareError, SmbShare, share_error
from .config import NasStorageConfig

log = logging.getLogger("valt.storage.nas")

READ_CHUNK = 256 * 1024


class NasStorage(SpooledStorage):
    """Stores each key as a file below ``path`` of an SMB share (or of ``mount_path``)."""

    name = "nas"
    Config = NasStorageConfig
    store_noun = "the share"

    @classmethod
    def default_options(cls, data_dir: Path) -> dict:
        """The spool goes below Valt's data directory unless the site puts it elsewhere."""
        return {"spool_dir": str(data_dir / "nas-spool")}

    def __init__(self, config: NasStorageConfig) -> None:
        super().__init__(config, workers=1)
        self.config: NasStorageConfig = config
        self.share: Share = SmbShare(config) if config.mode == "smb" else MountedShare(config)
        # Threads of our own: a call hung on a frozen server must not hold up the loop's executor.
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="nas")
        self._share_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NasStorage({self.config.where()!r})"

    @property
    def fsync_spool(self) -> bool:
        """A setting here (``fsync``): a site on a UPS-backed server may trade it for CPU."""
        return self.config.fsync

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

    async def aclose(self) -> None:
        """Stop the copy worker and drop the SMB session (what waits in the spool stays there)."""
        await self.stop_workers()
        threading.Thread(target=self._forget, daemon=True, name="nas-forget").start()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="nas")

    async def send(self, entry: SpoolEntry) -> None:
        """Copy a closed file to the share whole; then it leaves the spool."""
        # A whole segment in one call: allow for its size at a slow 1 MB/s on top of the timeout.
        limit = self.config.timeout_s + entry.size / 1_000_000
        await self._call(f"copying {entry.key}", self.share.put, entry.key, entry.data_path, entry.size,
                         limit=limit)
        if not entry.dropped:
            await self.stored(entry)

    # --- the contract -----------------------------------------------------------------------

    async def read_store(self, key: str, start: int, end: int | None) -> AsyncIterator[bytes]:
        """Yield ``[start, end)`` of ``key`` from the share."""
        f = await self._call(f"reading {key}", self.share.open_read, key)
        try:
            await self._call(f"reading {key}", f.seek, start)
            left = None if end is None else max(0, end - start)
            while left is None or left > 0:
                want = READ_CHUNK if left is None else min(READ_CHUNK, left)
                chunk = await self._call(f"reading {key}", f.read, want)
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
        entry = self.spooled(key)
        if entry is not None:
            return entry.size
        return await self._call(f"checking {key}", self.share.size, check_key(key))

    async def delete(self, key: str) -> None:
        """Remove ``key`` from the spool and from the share."""
        await self._start()
        entry = self.spooled(key)
        if entry is not None:
            await self.drop(entry)
        await self._call(f"deleting {key}", self.share.delete, key)

    async def usage(self) -> StorageUsage:
        """Bytes of the files on the share plus what waits in the spool; the share's free and total."""
        await self._start()
        used = await self._call("adding up the files on the share", self.share.used, limit=self.config.timeout_s * 6)
        free, total = await self._call("reading the share's free space", self.share.space)
        return StorageUsage(used_bytes=used + self.spooled_bytes(), free_bytes=free, total_bytes=total)

    async def free_bytes(self) -> int | None:
        """The smaller of the spool's free space and, while it answers, the share's."""
        spool_free = self.spool_free_bytes()
        if self.store_error is not None:
            return spool_free  # the share is away: the spool is what fills up now
        try:
            free, _total = await self._call("reading the share's free space", self.share.space)
        except StorageError:
            return spool_free
        return spool_free if free is None else min(free, spool_free)

    async def check(self) -> None:
        """The spool is writable and the share takes a write.

        A share that does not answer is not an error here: recording goes on into the spool. One
        that refuses (wrong credentials, read-only, full, not mounted) is, unless a known outage
        is being retried with files waiting, so starting a recording does not wait for it.
        """
        await self.check_spool()
        await self._start()
        if self.store_error is not None and self.pending().objects:
            return
        try:
            await self._call(f"checking the share {self.config.where()}", self.share.probe)
        except ShareError as err:
            # In mount mode "unreachable" is "not mounted": refuse, rather than spool with no end.
            if err.kind != UNREACHABLE or self.config.mode == "mount":
                raise
            log.warning("%s; recording goes on into the spool", err)
            self.store_error = str(err)
            return
        if not any(e.busy for e in self._entries.values()):
            self.recovered()

    # --- beyond the base contract -----------------------------------------------------------

    def local_path(self, key: str) -> str | None:
        """Mode mount: the file on the mounted share (or in the spool while it waits there)."""
        entry = self.spooled(key)
        if entry is not None:
            return str(entry.data_path)
        if isinstance(self.share, MountedShare):
            return str(self.share.root.joinpath(*check_key(key).split("/")))
        return None
