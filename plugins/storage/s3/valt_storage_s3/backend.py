"""The ``s3`` storage backend: objects in a bucket, written through a local spool.

A writer appends to a spool file and fsyncs it on flush (so a crash keeps what ``local`` keeps);
background workers send full parts of a multipart upload as they are flushed, and complete the
object once the writer is closed. When the store is unreachable nothing is lost: the bytes wait
in the spool, writes go on, reads of those keys are served from the spool, and the workers retry,
oldest object first, until the store takes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import AsyncIterator, BinaryIO

import aioboto3

from valt_core.errors import NotFound, StorageError
from valt_core.files import make_private_dir
from valt_core.storage import PendingUploads, StorageBackend, StorageUsage, StorageWriter, check_key

from .client import (
    StoreUnreachable,
    UploadGone,
    client_kwargs,
    confirm_checksum,
    read_credentials,
    sha256_b64,
    storage_error,
)
from .config import S3StorageConfig
from .spool import CLOSED, OPEN, Part, Spool, SpoolEntry, read_range

log = logging.getLogger("valt.storage.s3")

READ_CHUNK = 256 * 1024


class S3Writer(StorageWriter):
    """Appends to a spool file; the backend's workers move its bytes to the store."""

    def __init__(self, backend: "S3Storage", entry: SpoolEntry, file: BinaryIO) -> None:
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
        """fsync the spool file; a full part's worth of new bytes wakes an upload of it."""
        def run() -> None:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError as err:
                raise StorageError(f"cannot flush the spool of {self._entry.key}: {err.strerror}") from err

        await asyncio.to_thread(run)
        self._entry.size = self._written
        if self._entry.size - self._entry.sent >= self._backend.config.part_size:
            self._backend._wake()

    async def close(self) -> int:
        """Finish the object; waits for the store while it answers (see ``close_wait_s``)."""
        await self.flush()
        entry = self._entry
        entry.state = CLOSED
        await asyncio.to_thread(self._close_file_and_save)
        self._backend._wake()
        await self._backend._wait_stored(entry)
        return entry.size

    def _close_file_and_save(self) -> None:
        self._file.close()
        self._entry.save()

    async def abort(self) -> None:
        """Drop the object: its spool files, and its multipart upload in the store."""
        with contextlib.suppress(OSError):
            self._file.close()
        await self._backend._drop(self._entry)

    async def abandon(self, keep_bytes: int) -> None:
        """Stop uploading and cut the spool file to ``keep_bytes``; salvage() finishes it later."""
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
            entry.restart_upload()


class S3Storage(StorageBackend):
    """Stores each key as ``prefix + key`` in one bucket, through a spool under ``spool_dir``."""

    name = "s3"
    Config = S3StorageConfig

    @classmethod
    def default_options(cls, data_dir: Path) -> dict:
        """The spool goes below Valt's data directory unless the site puts it elsewhere."""
        return {"spool_dir": str(data_dir / "s3-spool")}

    def __init__(self, config: S3StorageConfig) -> None:
        super().__init__(config)
        self.config: S3StorageConfig = config
        self.spool = Spool(Path(config.spool_dir).resolve())
        #: Whether the bucket has Object Lock (``None`` until the bucket was asked, by check()).
        self.object_lock: bool | None = None
        #: Why the last upload failed, while the store keeps failing (``None`` when it is healthy).
        self.store_error: str | None = None
        self._entries: dict[str, SpoolEntry] = {}
        self._loaded = False
        self._client = None
        self._client_stack: contextlib.AsyncExitStack | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._client_lock: asyncio.Lock | None = None
        self._workers: list[asyncio.Task] = []
        self._start_lock: asyncio.Lock | None = None
        self._start_loop: asyncio.AbstractEventLoop | None = None
        self._work = asyncio.Event()
        self._retry_at = 0.0
        self._backoff = config.retry_interval_s
        self._warned_at = 0.0

    # --- plumbing ---------------------------------------------------------------------------

    def _full(self, key: str) -> str:
        return self.config.prefix + check_key(key)

    async def _s3(self):
        """The client of the running loop (made on first use: the SDK's client is loop-bound)."""
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client_loop is loop:
            return self._client
        if self._client_lock is None or self._client_loop is not loop:
            self._client_lock = asyncio.Lock()
            self._client, self._client_stack, self._client_loop = None, None, loop
        async with self._client_lock:
            if self._client is None:
                session = aioboto3.Session(**read_credentials(self.config))
                stack = contextlib.AsyncExitStack()
                self._client = await stack.enter_async_context(
                    session.client("s3", **client_kwargs(self.config)))
                self._client_stack = stack
        return self._client

    async def _call(self, doing: str, method: str, limit: float | None = None, **kwargs):
        """One S3 call, under an overall timeout, failures made :class:`StorageError`."""
        client = await self._s3()
        if limit is None:
            limit = (self.config.connect_timeout_s + self.config.read_timeout_s) * (self.config.retries + 1)
        try:
            return await asyncio.wait_for(getattr(client, method)(Bucket=self.config.bucket, **kwargs), limit)
        except Exception as err:  # noqa: BLE001 - every SDK and network failure becomes ours
            raise storage_error(err, doing, self.config) from None

    async def _start(self) -> None:
        """Load what an earlier process left in the spool and start the upload workers."""
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
                    log.info("s3: %d object(s) from an earlier run wait in the spool; uploading them",
                             len(waiting))
            self._work = asyncio.Event()
            self._workers = [asyncio.create_task(self._worker(), name=f"s3-upload-{i}")
                             for i in range(self.config.upload_concurrency)]
            self._work.set()

    def _running(self, loop: asyncio.AbstractEventLoop) -> bool:
        return bool(self._workers) and all(t.get_loop() is loop and not t.done() for t in self._workers)

    def _wake(self) -> None:
        self._work.set()

    async def aclose(self) -> None:
        """Stop the upload workers and close the client (what waits in the spool stays there)."""
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await task
        self._workers = []
        if self._client_stack is not None and self._client_loop is asyncio.get_running_loop():
            with contextlib.suppress(Exception):
                await self._client_stack.aclose()
        self._client, self._client_stack = None, None

    # --- the upload workers -----------------------------------------------------------------

    def _needs_work(self, entry: SpoolEntry) -> bool:
        if entry.busy or entry.dropped:
            return False
        if entry.state == CLOSED:
            return True
        return not entry.abandoned and entry.size - entry.sent >= self.config.part_size

    async def _worker(self) -> None:
        while True:
            self._work.clear()
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            entry = next((e for e in sorted(self._entries.values(), key=lambda e: e.seq)
                          if self._needs_work(e)), None)
            if entry is None:
                await self._work.wait()
                continue
            entry.busy = True
            try:
                await self._advance(entry)
            except StorageError as err:
                self._failed(err)
            except Exception as err:  # noqa: BLE001 - a worker must outlive any one failure
                log.exception("s3: unexpected failure uploading %s", entry.key)
                self._failed(StorageError(f"s3: {type(err).__name__} uploading {entry.key}"))
            else:
                self._recovered()
            finally:
                entry.busy = False

    def _failed(self, err: StorageError) -> None:
        # Told when failures start, then once a minute while they go on.
        if self.store_error is None or time.monotonic() - self._warned_at > 60:
            self._warned_at = time.monotonic()
            log.warning("s3: upload failed, the spool keeps the bytes and retries: %s", err)
        self.store_error = str(err)
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.config.retry_max_s)
        self._work.set()  # workers waiting for work re-check after the pause

    def _recovered(self) -> None:
        if self.store_error is not None:
            log.info("s3: the store takes uploads again; draining the spool (%s)", self._pending_text())
        self.store_error = None
        self._backoff = self.config.retry_interval_s
        self._retry_at = 0.0
        self._work.set()  # a spool waiting out a back-off drains now

    async def _advance(self, entry: SpoolEntry) -> None:
        """Send what can be sent of ``entry``; complete it if its writer is closed."""
        part = self.config.part_size
        if entry.state == OPEN:
            while not entry.dropped and not entry.abandoned and entry.size - entry.sent >= part:
                await self._upload_part(entry, part)
            return
        try:
            if entry.upload_id is None and entry.size <= part:
                await self._put_whole(entry)
            else:
                while not entry.dropped and entry.size > entry.sent:
                    await self._upload_part(entry, min(part, entry.size - entry.sent))
                if entry.dropped:
                    return
                await self._complete(entry)
        except UploadGone:
            log.warning("s3: the multipart upload of %s is gone from the store; starting it again", entry.key)
            entry.restart_upload()
            await asyncio.to_thread(entry.save)
            raise StoreUnreachable(f"s3: restarting the upload of {entry.key}") from None
        if entry.dropped:
            return
        await self._verify_size(entry)
        if entry.hold:
            await self._call(f"holding {entry.key}", "put_object_legal_hold", Key=self._full(entry.key),
                             LegalHold={"Status": "ON"})
        await asyncio.to_thread(entry.remove, self.spool.root)
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
        entry.done.set()

    async def _put_whole(self, entry: SpoolEntry) -> None:
        body = await asyncio.to_thread(read_range, entry.data_path, 0, entry.size)
        if len(body) != entry.size:
            raise StorageError(f"s3: the spool of {entry.key} is shorter than its size")
        digest = sha256_b64(body)
        answer = await self._call(f"uploading {entry.key}", "put_object", Key=self._full(entry.key), Body=body,
                                  ChecksumAlgorithm="SHA256", ChecksumSHA256=digest)
        confirm_checksum(entry.key, digest, answer)

    async def _upload_part(self, entry: SpoolEntry, length: int) -> None:
        key = self._full(entry.key)
        if entry.upload_id is None:
            answer = await self._call(f"starting the upload of {entry.key}", "create_multipart_upload",
                                      Key=key, ChecksumAlgorithm="SHA256")
            entry.upload_id = answer["UploadId"]
            entry.parts = []
            await asyncio.to_thread(entry.save)
        start, number = entry.sent, len(entry.parts) + 1
        body = await asyncio.to_thread(read_range, entry.data_path, start, length)
        if len(body) != length:
            raise StorageError(f"s3: the spool of {entry.key} is shorter than what was flushed")
        digest = sha256_b64(body)
        what = f"part {number} of {entry.key}"
        try:
            answer = await self._call(f"uploading {what}", "upload_part", Key=key, UploadId=entry.upload_id,
                                      PartNumber=number, Body=body, ChecksumAlgorithm="SHA256",
                                      ChecksumSHA256=digest)
        except StorageError as err:
            if not isinstance(err, UploadGone) and getattr(err, "answered", True):
                await self._raise_if_gone(entry)  # the store answered: does it still know the upload?
            raise
        confirm_checksum(what, digest, answer)
        entry.parts.append(Part(number, answer["ETag"], digest, length))
        await asyncio.to_thread(entry.save)

    async def _complete(self, entry: SpoolEntry) -> None:
        parts = [{"PartNumber": p.number, "ETag": p.etag, "ChecksumSHA256": p.sha256} for p in entry.parts]
        try:
            await self._call(f"completing {entry.key}", "complete_multipart_upload", Key=self._full(entry.key),
                             UploadId=entry.upload_id, MultipartUpload={"Parts": parts})
        except StorageError as err:
            if not isinstance(err, UploadGone) and getattr(err, "answered", True):
                await self._raise_if_gone(entry)  # the store answered: does it still know the upload?
            raise

    async def _raise_if_gone(self, entry: SpoolEntry) -> None:
        """After a failed part or completion: :class:`UploadGone` if the store lost the upload.

        Not every store says NoSuchUpload (moto answers 500), so ask for its list of uploads;
        when even that fails, the store is away and the original error stands.
        """
        full = self._full(entry.key)
        try:
            answer = await self._call(f"listing uploads of {entry.key}", "list_multipart_uploads", Prefix=full)
        except StorageError:
            return
        if not any(u["UploadId"] == entry.upload_id for u in answer.get("Uploads", [])):
            raise UploadGone(f"s3: the store has no multipart upload of {entry.key} any more")

    async def _verify_size(self, entry: SpoolEntry) -> None:
        head = await self._call(f"checking {entry.key}", "head_object", Key=self._full(entry.key))
        if head["ContentLength"] != entry.size:
            entry.restart_upload()
            raise StorageError(f"s3: the store holds {head['ContentLength']} bytes of {entry.key}, "
                               f"not {entry.size}: uploading it again")

    async def _wait_stored(self, entry: SpoolEntry) -> None:
        """Wait (up to ``close_wait_s``) until ``entry`` is in the store, unless the store is failing."""
        deadline = time.monotonic() + self.config.close_wait_s
        while not entry.done.is_set() and self.store_error is None:
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
            await asyncio.sleep(0.02)  # a worker is mid-request: let it finish before the files go
        await asyncio.to_thread(entry.remove, self.spool.root)
        if entry.upload_id is not None:
            await self._abort_quietly(self._full(entry.key), entry.upload_id)

    async def _abort_quietly(self, full_key: str, upload_id: str) -> None:
        try:
            await self._call(f"aborting an upload of {full_key}", "abort_multipart_upload",
                             Key=full_key, UploadId=upload_id)
        except StorageError as err:
            # Left for the bucket's lifecycle rule or the next salvage of the key.
            log.warning("s3: could not abort a multipart upload: %s", err)

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
        return S3Writer(self, entry, file)

    def _spooled(self, key: str) -> SpoolEntry | None:
        entry = self._entries.get(check_key(key))
        return entry if entry is not None and entry.state == CLOSED else None

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield ``[start, end)`` of ``key``: from the spool while it waits there, else a ranged GET."""
        await self._start()
        entry = self._spooled(key)
        if entry is not None:
            try:
                f = await asyncio.to_thread(open, entry.data_path, "rb")
            except FileNotFoundError:
                entry = None  # uploaded and removed just now: read the store
            else:
                try:
                    stop = entry.size if end is None else min(end, entry.size)
                    f.seek(start)
                    left = max(0, stop - start)
                    while left > 0:
                        chunk = await asyncio.to_thread(f.read, min(READ_CHUNK, left))
                        if not chunk:
                            break
                        left -= len(chunk)
                        yield chunk
                finally:
                    f.close()
                return
        if end is not None and end <= start:
            await self.size(key)  # absent is still NotFound
            return
        rng = f"bytes={start}-" + ("" if end is None else str(end - 1))
        try:
            answer = await self._call(f"reading {key}", "get_object", Key=self._full(key), Range=rng)
        except StorageError as err:
            if "InvalidRange" in str(err):
                return  # start at or past the end: nothing to yield
            raise
        body = answer["Body"]
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(body.read(READ_CHUNK), self.config.read_timeout_s)
                except Exception as err:  # noqa: BLE001
                    raise storage_error(err, f"reading {key}", self.config) from None
                if not chunk:
                    break
                yield chunk
        finally:
            body.close()

    async def size(self, key: str) -> int:
        """Size of ``key``: the spool's while it waits there, else the store's."""
        await self._start()
        entry = self._spooled(key)
        if entry is not None:
            return entry.size
        head = await self._call(f"checking {key}", "head_object", Key=self._full(key))
        return int(head["ContentLength"])

    async def delete(self, key: str) -> None:
        """Remove ``key`` (every version of it in an Object Lock bucket); refused under a legal hold."""
        full = self._full(key)
        await self._start()
        entry = self._spooled(key)
        if entry is not None:
            if entry.hold:
                raise StorageError(f"s3: {key} is under a legal hold: lift it before deleting")
            await self._drop(entry)
        if await self._lock_enabled():
            if await self.legal_hold(key, missing_ok=True):
                raise StorageError(f"s3: {key} is under a legal hold: lift it before deleting")
            await self._delete_versions(key, full)
            return
        await self._call(f"deleting {key}", "delete_object", Key=full)

    async def _delete_versions(self, key: str, full: str) -> None:
        # A plain DELETE in a versioned bucket only adds a delete marker: remove each version.
        answer = await self._call(f"listing versions of {key}", "list_object_versions", Prefix=full)
        for item in answer.get("Versions", []) + answer.get("DeleteMarkers", []):
            if item["Key"] != full:
                continue
            try:
                await self._call(f"deleting {key}", "delete_object", Key=full, VersionId=item["VersionId"])
            except StorageError as err:
                raise StorageError(f"s3: the store refused to delete {key} (Object Lock: held or retained): "
                                   f"{err}") from None

    async def usage(self) -> StorageUsage:
        """Bytes of the objects under the prefix, plus what waits in the spool; no free/total figures."""
        used = 0
        token = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            answer = await self._call("listing the bucket", "list_objects_v2", Prefix=self.config.prefix, **extra)
            used += sum(int(o["Size"]) for o in answer.get("Contents", []))
            if not answer.get("IsTruncated"):
                break
            token = answer["NextContinuationToken"]
        used += sum(e.size for e in self._entries.values() if e.state == CLOSED)
        return StorageUsage(used_bytes=used, free_bytes=None, total_bytes=None)

    async def free_bytes(self) -> int | None:
        """Free space of the spool's file system: what fills up while the store is away."""
        try:
            make_private_dir(self.spool.root)
            return shutil.disk_usage(self.spool.root).free
        except OSError as err:
            raise StorageError(f"spool directory {self.spool.root} is not usable: {err.strerror}") from err

    async def unfinished(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` whose writers were never closed (found in the spool)."""
        await self._start()
        base = check_key(prefix).rstrip("/") + "/"
        return sorted(k for k, e in self._entries.items() if e.state == OPEN and not e.dropped
                      and (k + "/").startswith(base))

    async def salvage(self, key: str) -> int | None:
        """Make the spooled bytes of an unfinished write the object; aborts stray multipart uploads.

        The object is readable at once (from the spool until the store has it); the upload goes
        on in the background when the store does not answer now.
        """
        await self._start()
        entry = self._entries.get(check_key(key))
        if entry is None or entry.state != OPEN:
            return None
        while entry.busy:
            await asyncio.sleep(0.02)
        entry.size = (await asyncio.to_thread(entry.data_path.stat)).st_size
        if entry.sent > entry.size:
            entry.restart_upload()
        entry.abandoned = False
        entry.state = CLOSED
        await asyncio.to_thread(entry.save)
        await self._abort_strays(key, keep=entry.upload_id)
        self._wake()
        await self._wait_stored(entry)
        return entry.size

    async def _abort_strays(self, key: str, keep: str | None) -> None:
        """Abort multipart uploads of ``key`` other than ``keep`` (a crash between start and save)."""
        full = self._full(key)
        try:
            answer = await self._call(f"listing uploads of {key}", "list_multipart_uploads", Prefix=full)
        except StorageError as err:
            log.warning("s3: cannot list stray uploads of %s now: %s", key, err)
            if isinstance(err, StoreUnreachable):
                self._failed(err)  # salvage then does not wait for a store that is away
            return
        for upload in answer.get("Uploads", []):
            if upload["Key"] == full and upload["UploadId"] != keep:
                await self._abort_quietly(full, upload["UploadId"])

    async def discard_unfinished(self, key: str) -> None:
        """Drop the spool files of an unfinished write of ``key`` and its multipart uploads."""
        await self._start()
        entry = self._entries.get(check_key(key))
        if entry is not None and entry.state == OPEN:
            await self._drop(entry)
            await self._abort_strays(key, keep=None)

    async def check(self) -> None:
        """The spool is writable and the bucket answers; says whether it has Object Lock.

        A store that does not answer (down, timing out) is not an error here: recording goes on
        into the spool. A store that refuses (no bucket, wrong credentials, no permission) is.
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
        if self.store_error is not None and self.pending().objects:
            return  # a known outage the workers are retrying: starting a recording must not wait for it
        try:
            # A listing, not HEAD: a HEAD answer has no body, so no error code to tell causes apart.
            # A short limit: the media engine checks before every recording it starts.
            await self._call(f"checking bucket {self.config.bucket}", "list_objects_v2",
                             limit=self.config.connect_timeout_s + 10, Prefix=self.config.prefix, MaxKeys=1)
        except StoreUnreachable as err:
            log.warning("%s; recording goes on into the spool", err)
            self.store_error = str(err)
            return
        except NotFound:
            raise StorageError(f"s3: bucket {self.config.bucket!r} does not exist or is not visible") from None
        if not any(e.busy for e in self._entries.values()):
            self._recovered()  # the store answers: what waits out a back-off goes now
        before, self.object_lock = self.object_lock, None
        if await self._lock_enabled() == before:
            return  # said already (the engine checks before every recording)
        if self.object_lock:
            log.info("s3: bucket %s has Object Lock: legal holds on recordings are enforced by the store",
                     self.config.bucket)
        else:
            log.info("s3: bucket %s has no Object Lock: legal holds are kept by Valt only", self.config.bucket)

    # --- beyond the base contract: pending uploads, legal holds, presigned reads -------------

    def _pending_text(self) -> str:
        p = self.pending()
        return f"{p.objects} object(s), {p.bytes} bytes"

    def outage(self) -> str | None:
        """Why the store failed last, while it keeps failing (writes wait in the spool)."""
        return self.store_error

    def pending(self) -> PendingUploads:
        """Objects and bytes written (and flushed) that the store does not have yet."""
        objects = waiting = 0
        for entry in self._entries.values():
            left = entry.size - entry.sent
            if entry.state == CLOSED or left > 0:
                objects += 1
                waiting += max(0, left)
        return PendingUploads(objects, waiting)

    async def _lock_enabled(self) -> bool:
        if self.object_lock is None:
            try:
                answer = await self._call("reading the Object Lock configuration", "get_object_lock_configuration")
            except StorageError as err:
                if "ObjectLockConfigurationNotFound" in str(err):
                    self.object_lock = False
                    return False
                raise
            self.object_lock = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
        return self.object_lock

    async def set_legal_hold(self, key: str, on: bool) -> bool:
        """Put (``on``) or lift an S3 legal hold on ``key``; ``False`` (nothing done) in a bucket
        without Object Lock, where only Valt's own refusal to delete protects the object."""
        await self._start()
        if not await self._lock_enabled():
            return False
        entry = self._spooled(key)
        if entry is not None and not entry.done.is_set():
            entry.hold = on  # applied by the worker once the object is in the store
            await asyncio.to_thread(entry.save)
            if entry.state == CLOSED and self._spooled(key) is entry:
                return True
        await self._call(f"{'holding' if on else 'releasing'} {key}", "put_object_legal_hold",
                         Key=self._full(key), LegalHold={"Status": "ON" if on else "OFF"})
        return True

    async def legal_hold(self, key: str, missing_ok: bool = False) -> bool:
        """Whether ``key`` is under a legal hold (``False`` in a bucket without Object Lock)."""
        await self._start()
        entry = self._spooled(key)
        if entry is not None:
            return entry.hold
        if not await self._lock_enabled():
            return False
        try:
            answer = await self._call(f"reading the legal hold of {key}", "get_object_legal_hold",
                                      Key=self._full(key))
        except NotFound:
            if missing_ok:
                return False
            raise
        except StorageError as err:
            if "NoSuchObjectLockConfiguration" in str(err) or "InvalidRequest" in str(err):
                return False
            raise
        return answer.get("LegalHold", {}).get("Status") == "ON"

    async def presigned_url(self, key: str, expires_s: int, content_type: str | None = None,
                            content_disposition: str | None = None) -> str | None:
        """A GET URL of ``key`` valid ``expires_s`` seconds (capped by ``presign_max_s``), whose
        answer carries ``content_type`` and ``content_disposition`` when given.

        ``None`` while the key waits in the spool: the caller serves it through :meth:`read`.
        """
        await self._start()
        if self._spooled(key) is not None:
            return None
        client = await self._s3()
        expires = max(1, min(int(expires_s), self.config.presign_max_s))
        params = {"Bucket": self.config.bucket, "Key": self._full(key)}
        if content_type:
            params["ResponseContentType"] = content_type
        if content_disposition:
            params["ResponseContentDisposition"] = content_disposition
        try:
            return await client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires)
        except Exception as err:  # noqa: BLE001
            raise storage_error(err, f"presigning {key}", self.config) from None
