"""A local spool in front of a remote store, for storage plugins that write to a network.

A writer appends to a spool file and fsyncs it on flush, so a crash keeps what ``local`` keeps.
Background workers move the bytes to the remote store (an S3 bucket, an SMB share) and drop them
from the spool once the store has the whole object. While the store is away nothing is lost:
writes go on into the spool, reads of the keys still waiting are served from it, ``outage()``
says why, and the workers retry, oldest object first, with a doubling back-off.

On disk, ``<spool_dir>/<key>.spool`` holds an object's bytes as written and ``<key>.spool.json``
its state (key, order, open or closed, size, and whatever a plugin's entry adds: an S3 multipart
upload's parts, say), saved atomically, so a process started after a crash finds everything an
earlier one flushed.

A plugin subclasses :class:`SpooledStorage` and implements :meth:`SpooledStorage.send` (move one
entry's bytes to the store) and the remote side of reads and deletes; it may subclass
:class:`SpoolEntry` for state of its own and give it as ``entry_type``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, BinaryIO, ClassVar

from pydantic import BaseModel, Field

from ..errors import StorageError
from ..files import make_private_dir, open_private
from .base import PendingUploads, StorageBackend, StorageWriter, check_key
from .flush import FlushThreads

DATA_SUFFIX = ".spool"
META_SUFFIX = ".spool.json"

#: States of an entry: written by a writer still open (or never closed: unfinished), or closed
#: by its writer (or salvaged) and waiting to be completed in the store.
OPEN, CLOSED = "open", "closed"

READ_CHUNK = 256 * 1024


class SpoolSettings(BaseModel):
    """The settings every spooled backend has; a plugin's ``Config`` extends this model."""

    spool_dir: Path = Field(description=(
        "Local directory where written bytes wait until the store has them; must survive a restart "
        "(not a tmpfs). During an outage it holds everything recorded meanwhile: size it for that."))
    retry_interval_s: float = Field(2.0, gt=0, description=(
        "First wait before the spool retries the store after a failure; doubles up to ``retry_max_s``."))
    retry_max_s: float = Field(30.0, gt=0, description="Longest wait between retries while the store is away.")
    close_wait_s: float = Field(10.0, ge=0, description=(
        "How long closing a writer waits for its object to reach the store while the store answers; "
        "the rest goes in the background (reads are served from the spool meanwhile)."))


@dataclass
class SpoolEntry:
    """An object in the spool and how far it has got to the store."""

    key: str
    data_path: Path
    meta_path: Path
    seq: int
    state: str = OPEN
    #: Final size (closed entries) or bytes known to be on disk (open ones, after a flush).
    size: int = 0
    #: Set by a writer's abandon(): bytes past ``size`` are not to be sent.
    abandoned: bool = False
    dropped: bool = False
    busy: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    #: A writer's close and a worker may save at the same moment: one at a time.
    save_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def sent(self) -> int:
        """Bytes of the object the store already has (0 for a store that takes objects whole)."""
        return 0

    def to_json(self) -> dict[str, Any]:
        """The entry as its ``.spool.json`` holds it; a subclass adds its own fields."""
        return {"key": self.key, "seq": self.seq, "state": self.state, "size": self.size}

    def restore(self, meta: dict[str, Any]) -> None:
        """Take a subclass's own fields back from a loaded ``.spool.json`` (nothing here)."""

    def truncated(self, size: int) -> None:
        """The spool file was cut to ``size`` (a salvage or an abandon): forget progress past it."""

    def save(self) -> None:
        """Write the metadata file atomically (temp name, fsync, rename): blocking, call in a thread."""
        with self.save_lock:
            tmp = self.meta_path.with_name(f"{self.meta_path.name}.tmp-{uuid.uuid4().hex[:8]}")
            with os.fdopen(open_private(tmp), "w", encoding="utf-8") as f:
                json.dump(self.to_json(), f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.meta_path)

    def remove(self, root: Path) -> None:
        """Delete both files and the directories they leave empty (up to ``root``): blocking."""
        for path in (self.data_path, self.meta_path):
            path.unlink(missing_ok=True)
        parent = self.data_path.parent
        while parent != root and root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break  # not empty (another object), or gone
            parent = parent.parent


class Spool:
    """Maps keys onto spool files under ``root`` and finds what an earlier process left."""

    def __init__(self, root: Path, entry_type: type[SpoolEntry] = SpoolEntry) -> None:
        self.root = root
        self.entry_type = entry_type

    def entry(self, key: str) -> SpoolEntry:
        """A new entry of ``key`` (files not made yet): ``key`` is a checked storage key."""
        base = self.root.joinpath(*key.split("/"))
        return self.entry_type(key, base.with_name(base.name + DATA_SUFFIX),
                               base.with_name(base.name + META_SUFFIX), seq=time.time_ns())

    def create(self, entry: SpoolEntry) -> BinaryIO:
        """Make the entry's files; returns the data file opened for writing (blocking)."""
        make_private_dir(entry.data_path.parent)
        entry.save()
        return os.fdopen(open_private(entry.data_path), "wb")

    def load(self) -> list[SpoolEntry]:
        """Every entry found on disk, oldest first (blocking). Open ones get their file's size."""
        found: list[SpoolEntry] = []
        if not self.root.exists():
            return found
        for meta_path in self.root.rglob("*" + META_SUFFIX):
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # torn by a crash before its first rename: its data file has no state
            entry = self.entry(meta["key"])
            if entry.meta_path != meta_path or not entry.data_path.exists():
                continue
            entry.seq, entry.state, entry.size = meta["seq"], meta["state"], meta["size"]
            entry.restore(meta)
            on_disk = entry.data_path.stat().st_size
            if entry.state == OPEN or on_disk < entry.size:
                entry.size = on_disk
            if entry.sent > entry.size:
                entry.truncated(entry.size)  # progress past what the disk kept: start from what is here
            found.append(entry)
        for stale in self.root.rglob("*" + META_SUFFIX + ".tmp-*"):
            stale.unlink(missing_ok=True)
        return sorted(found, key=lambda e: e.seq)


def read_range(path: Path, start: int, length: int) -> bytes:
    """``length`` bytes of ``path`` from ``start`` (blocking)."""
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(length)


class SpoolWriter(StorageWriter):
    """Appends to a spool file; the backend's workers move its bytes to the store."""

    def __init__(self, backend: "SpooledStorage", entry: SpoolEntry, file: BinaryIO) -> None:
        self._backend = backend
        self._entry = entry
        self._file = file
        self._written = 0

    async def write(self, data: bytes) -> None:
        """Append ``data`` to the spool file (buffered; the disk sees it on flush)."""
        try:
            self._file.write(data)
        except OSError as err:
            raise StorageError(f"cannot write the spool of {self._entry.key}: {err.strerror}") from err
        self._written += len(data)

    async def flush(self) -> None:
        """Push buffered bytes to the spool's disk, durable unless the backend says not to
        (with the other writers' flushes of the moment: :class:`~valt_core.storage.flush.FlushThreads`)."""
        await self._backend.flusher.flush(self._file, self._backend.fsync_spool, f"the spool of {self._entry.key}")
        self._entry.size = self._written
        if self._backend.needs_work(self._entry):
            self._backend.wake()

    async def close(self) -> int:
        """Finish the object; waits for the store while it answers (``close_wait_s``)."""
        await self.flush()
        entry = self._entry
        entry.state = CLOSED

        def run() -> None:
            self._file.close()
            entry.save()

        await asyncio.to_thread(run)
        self._backend.wake()
        await self._backend.wait_stored(entry)
        return entry.size

    async def abort(self) -> None:
        """Drop the object: its spool files and whatever the store has of it so far."""
        with contextlib.suppress(OSError):
            self._file.close()
        await self._backend.drop(self._entry)

    async def abandon(self, keep_bytes: int) -> None:
        """Stop sending and cut the spool file to ``keep_bytes``; salvage() finishes it later."""
        entry = self._entry
        entry.abandoned = True

        def run() -> None:
            with contextlib.suppress(OSError):
                self._file.close()
            with contextlib.suppress(FileNotFoundError):
                os.truncate(entry.data_path, keep_bytes)

        await asyncio.to_thread(run)
        entry.size = keep_bytes
        if entry.sent > keep_bytes:
            entry.truncated(keep_bytes)


class SpooledStorage(StorageBackend):
    """A storage backend that writes through a :class:`Spool` to a remote store.

    The subclass gives :meth:`send` and the remote halves of reading, sizing and deleting; this
    class keeps the spool, the workers and their back-off, and answers ``pending()``,
    ``outage()``, ``unfinished()``, ``salvage()`` and reads of keys still in the spool.
    """

    #: How the store is named in log lines ("the bucket", "the share").
    store_noun: ClassVar[str] = "the store"
    #: Entry class of this backend's spool.
    entry_type: ClassVar[type[SpoolEntry]] = SpoolEntry

    def __init__(self, config: SpoolSettings, workers: int = 1) -> None:
        super().__init__(config)
        self.spool = Spool(Path(config.spool_dir).resolve(), self.entry_type)
        #: Why the store failed last, while it keeps failing (``None`` when it takes writes).
        self.store_error: str | None = None
        self.log = logging.getLogger(f"valt.storage.{self.name}")
        self._worker_count = workers
        self._entries: dict[str, SpoolEntry] = {}
        self._loaded = False
        self._workers: list[asyncio.Task] = []
        self._start_lock: asyncio.Lock | None = None
        self._start_loop: asyncio.AbstractEventLoop | None = None
        self._work = asyncio.Event()
        self._retry_at = 0.0
        self._backoff = config.retry_interval_s
        self._warned_at = 0.0
        #: Flushes spool files in batches (one syncfs for those of a moment).
        self.flusher = FlushThreads.shared()

    # --- what a subclass gives ----------------------------------------------------------------

    @property
    def fsync_spool(self) -> bool:
        """Whether a flush fsyncs the spool file (a subclass may make it a setting)."""
        return True

    @abstractmethod
    async def send(self, entry: SpoolEntry) -> None:
        """Move what can be moved of ``entry`` to the store; raise StorageError when it fails.

        Called by a worker for each entry :meth:`needs_work` picks. For a closed entry, return
        only once the store has the whole object (the spool files then go); an open entry may be
        sent in part (an S3 part).
        """

    async def forget_remote(self, entry: SpoolEntry) -> None:  # noqa: B027 - optional: most keep no half-sent state
        """``entry`` was dropped: remove what the store has of it unfinished (an upload in parts)."""

    @abstractmethod
    def read_store(self, key: str, start: int, end: int | None) -> AsyncIterator[bytes]:
        """Yield ``[start, end)`` of ``key`` from the store itself (it is not in the spool)."""

    def needs_work(self, entry: SpoolEntry) -> bool:
        """Whether a worker should :meth:`send` ``entry`` now (default: once its writer closed)."""
        return entry.state == CLOSED and not entry.busy and not entry.dropped

    # --- the workers ---------------------------------------------------------------------------

    async def _start(self) -> None:
        """Load what an earlier process left in the spool and start the workers (once per loop)."""
        loop = asyncio.get_running_loop()
        if self._running(loop):
            return
        if self._start_lock is None or self._start_loop is not loop:
            self._start_lock, self._start_loop = asyncio.Lock(), loop
        async with self._start_lock:  # two first calls at once must not start two sets of workers
            if self._running(loop):
                return
            if not self._loaded:
                for entry in await asyncio.to_thread(self.spool.load):
                    self._entries.setdefault(entry.key, entry)
                self._loaded = True
                waiting = [e for e in self._entries.values() if e.state == CLOSED]
                if waiting:
                    self.log.info("%s: %d object(s) from an earlier run wait in the spool; sending them to %s",
                                  self.name, len(waiting), self.store_noun)
            self._work = asyncio.Event()
            self._workers = [asyncio.create_task(self._worker(), name=f"{self.name}-spool-{i}")
                             for i in range(self._worker_count)]
            self._work.set()

    def _running(self, loop: asyncio.AbstractEventLoop) -> bool:
        return bool(self._workers) and all(t.get_loop() is loop and not t.done() for t in self._workers)

    def wake(self) -> None:
        """Tell the workers there is something to send."""
        self._work.set()

    async def stop_workers(self) -> None:
        """Stop the workers (what waits in the spool stays there for the next start)."""
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await task
        self._workers = []

    async def _worker(self) -> None:
        while True:
            self._work.clear()
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            entry = next((e for e in sorted(self._entries.values(), key=lambda e: e.seq)
                          if self.needs_work(e)), None)
            if entry is None:
                await self._work.wait()
                continue
            entry.busy = True
            try:
                await self.send(entry)
            except StorageError as err:
                self.failed(err)
            except Exception as err:  # noqa: BLE001 - a worker must outlive any one failure
                self.log.exception("%s: unexpected failure sending %s", self.name, entry.key)
                self.failed(StorageError(f"{self.name}: {type(err).__name__} sending {entry.key}"))
            else:
                self.recovered()
            finally:
                entry.busy = False

    async def stored(self, entry: SpoolEntry) -> None:
        """The store has the whole of ``entry``: its spool files go and its waiters wake."""
        await asyncio.to_thread(entry.remove, self.spool.root)
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
        entry.done.set()

    def failed(self, err: StorageError) -> None:
        """A send failed: keep the bytes, say so (at once, then once a minute), retry after a back-off."""
        if self.store_error is None or time.monotonic() - self._warned_at > 60:
            self._warned_at = time.monotonic()
            self.log.warning("%s: sending to %s failed; the spool keeps the bytes and retries: %s",
                             self.name, self.store_noun, err)
        self.store_error = str(err)
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.config.retry_max_s)
        self._work.set()  # workers waiting for work re-check after the pause

    def recovered(self) -> None:
        """The store answers again: what waits out a back-off goes now."""
        if self.store_error is not None:
            p = self.pending()
            self.log.info("%s: %s takes writes again; draining the spool (%d object(s), %d bytes)",
                          self.name, self.store_noun, p.objects, p.bytes)
        self.store_error = None
        self._backoff = self.config.retry_interval_s
        self._retry_at = 0.0
        self._work.set()

    async def wait_stored(self, entry: SpoolEntry) -> None:
        """Wait (up to ``close_wait_s``) until ``entry`` is in the store, unless the store is failing."""
        deadline = time.monotonic() + self.config.close_wait_s
        while not entry.done.is_set() and self.store_error is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(entry.done.wait(), min(left, 0.2))

    async def drop(self, entry: SpoolEntry) -> None:
        """Forget ``entry``: its spool files, and what the store has of it unfinished."""
        entry.dropped = True
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
        while entry.busy:
            await asyncio.sleep(0.02)  # a worker is mid-request: let it finish before the files go
        await asyncio.to_thread(entry.remove, self.spool.root)
        await self.forget_remote(entry)

    # --- the contract's spool side -------------------------------------------------------------

    async def open_writer(self, key: str) -> StorageWriter:
        """Start writing ``key`` into the spool."""
        check_key(key)
        await self._start()
        old = self._entries.get(key)
        if old is not None:
            await self.drop(old)
        entry = self.spool.entry(key)
        try:
            file = await asyncio.to_thread(self.spool.create, entry)
        except OSError as err:
            raise StorageError(f"cannot create the spool of {key}: {err.strerror}") from err
        self._entries[key] = entry
        return SpoolWriter(self, entry, file)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield ``[start, end)`` of ``key``: from the spool while it waits there, else from the store."""
        await self._start()
        entry = self.spooled(key)
        if entry is not None:
            chunks = await self.read_spooled(entry, start, end)
            if chunks is not None:
                async for chunk in chunks:
                    yield chunk
                return
        async for chunk in self.read_store(key, start, end):
            yield chunk

    def spooled(self, key: str) -> SpoolEntry | None:
        """The closed entry of ``key`` while it waits in the spool, else ``None``."""
        entry = self._entries.get(check_key(key))
        return entry if entry is not None and entry.state == CLOSED else None

    async def read_spooled(self, entry: SpoolEntry, start: int, end: int | None) -> AsyncIterator[bytes] | None:
        """``[start, end)`` of a spooled entry, or ``None`` if the store took it just now."""
        try:
            f = await asyncio.to_thread(open, entry.data_path, "rb")
        except FileNotFoundError:
            return None

        async def chunks() -> AsyncIterator[bytes]:
            try:
                stop = entry.size if end is None else min(end, entry.size)
                await asyncio.to_thread(f.seek, start)
                left = max(0, stop - start)
                while left > 0:
                    chunk = await asyncio.to_thread(f.read, min(READ_CHUNK, left))
                    if not chunk:
                        break
                    left -= len(chunk)
                    yield chunk
            finally:
                f.close()

        return chunks()

    def spooled_bytes(self) -> int:
        """Bytes of closed objects waiting in the spool (part of what a backend's usage counts)."""
        return sum(e.size for e in self._entries.values() if e.state == CLOSED)

    def spool_free_bytes(self) -> int:
        """Free space of the spool's file system: what fills up while the store is away."""
        try:
            make_private_dir(self.spool.root)
            return shutil.disk_usage(self.spool.root).free
        except OSError as err:
            raise StorageError(f"spool directory {self.spool.root} is not usable: {err.strerror}") from err

    async def check_spool(self) -> None:
        """Raise :class:`StorageError` unless a file can be written in the spool directory."""
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

    async def unfinished(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` whose writers were never closed (found in the spool)."""
        await self._start()
        base = check_key(prefix).rstrip("/") + "/"
        return sorted(k for k, e in self._entries.items() if e.state == OPEN and not e.dropped
                      and (k + "/").startswith(base))

    async def salvage(self, key: str) -> int | None:
        """Make the spooled bytes of an unfinished write the object.

        It is readable at once (from the spool until the store has it); sending goes on in the
        background when the store does not answer now.
        """
        await self._start()
        entry = self._entries.get(check_key(key))
        if entry is None or entry.state != OPEN:
            return None
        while entry.busy:
            await asyncio.sleep(0.02)
        entry.size = (await asyncio.to_thread(entry.data_path.stat)).st_size
        if entry.sent > entry.size:
            entry.truncated(entry.size)
        entry.abandoned = False
        entry.state = CLOSED
        await asyncio.to_thread(entry.save)
        await self.salvaged(entry)
        self.wake()
        await self.wait_stored(entry)
        return entry.size

    async def salvaged(self, entry: SpoolEntry) -> None:  # noqa: B027 - optional: most need nothing more
        """``entry`` was just salvaged, before it is sent: tidy the store's side of it."""

    async def discard_unfinished(self, key: str) -> None:
        """Drop the spool files of an unfinished write of ``key``."""
        await self._start()
        entry = self._entries.get(check_key(key))
        if entry is not None and entry.state == OPEN:
            await self.drop(entry)

    def outage(self) -> str | None:
        """Why the store failed last, while it keeps failing (writes wait in the spool)."""
        return self.store_error

    def pending(self) -> PendingUploads:
        """Objects and bytes written (and flushed) that the store does not have yet."""
        objects = waiting = 0
        for entry in self._entries.values():
            if entry.dropped:
                continue
            left = entry.size - entry.sent
            if entry.state == CLOSED or left > 0:
                objects += 1
                waiting += max(0, left)
        return PendingUploads(objects, waiting)
