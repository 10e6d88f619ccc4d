"""The ``s3`` storage backend: objects in a bucket, written through a local spool.

Writes go through the core's spool (:mod:`valt_core.storage.spool`), so a crash keeps what
``local`` keeps; its workers send full parts of a multipart upload as they are flushed, and
complete the object once the writer is closed. When the store is unreachable nothing is lost: the bytes wait
in the spool, writes go on, reads of those keys are served from the spool, and the workers retry,
oldest object first, until the store takes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import urlsplit

import aioboto3

from valt_core.errors import NotFound, StorageError
from valt_core.storage import StorageUsage, check_key
from valt_core.storage.spool import CLOSED, OPEN, SpooledStorage, read_range

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
from .spool import Part, S3SpoolEntry

log = logging.getLogger("valt.storage.s3")

READ_CHUNK = 256 * 1024


class S3Storage(SpooledStorage):
    """Stores each key as ``prefix + key`` in one bucket, through a spool under ``spool_dir``."""

    name = "s3"
    Config = S3StorageConfig
    store_noun = "the bucket"
    entry_type = S3SpoolEntry

    @classmethod
    def default_options(cls, data_dir: Path) -> dict:
        """The spool goes below Valt's data directory unless the site puts it elsewhere."""
        return {"spool_dir": str(data_dir / "s3-spool")}

    def __init__(self, config: S3StorageConfig) -> None:
        super().__init__(config, workers=config.upload_concurrency)
        self.config: S3StorageConfig = config
        #: Whether the bucket has Object Lock (``None`` until the bucket was asked, by check()).
        self.object_lock: bool | None = None
        self._client = None
        self._client_stack: contextlib.AsyncExitStack | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._client_lock: asyncio.Lock | None = None

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

    async def aclose(self) -> None:
        """Stop the upload workers and close the client (what waits in the spool stays there)."""
        await self.stop_workers()
        if self._client_stack is not None and self._client_loop is asyncio.get_running_loop():
            with contextlib.suppress(Exception):
                await self._client_stack.aclose()
        self._client, self._client_stack = None, None

    # --- the upload workers -----------------------------------------------------------------

    def needs_work(self, entry: S3SpoolEntry) -> bool:
        """Closed objects, and open ones with a full part flushed and not sent yet."""
        if entry.busy or entry.dropped:
            return False
        if entry.state == CLOSED:
            return True
        return not entry.abandoned and entry.size - entry.sent >= self.config.part_size

    async def send(self, entry: S3SpoolEntry) -> None:
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
        await self.stored(entry)

    async def _put_whole(self, entry: S3SpoolEntry) -> None:
        body = await asyncio.to_thread(read_range, entry.data_path, 0, entry.size)
        if len(body) != entry.size:
            raise StorageError(f"s3: the spool of {entry.key} is shorter than its size")
        digest = sha256_b64(body)
        answer = await self._call(f"uploading {entry.key}", "put_object", Key=self._full(entry.key), Body=body,
                                  ChecksumAlgorithm="SHA256", ChecksumSHA256=digest)
        confirm_checksum(entry.key, digest, answer)

    async def _upload_part(self, entry: S3SpoolEntry, length: int) -> None:
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

    async def _complete(self, entry: S3SpoolEntry) -> None:
        parts = [{"PartNumber": p.number, "ETag": p.etag, "ChecksumSHA256": p.sha256} for p in entry.parts]
        try:
            await self._call(f"completing {entry.key}", "complete_multipart_upload", Key=self._full(entry.key),
                             UploadId=entry.upload_id, MultipartUpload={"Parts": parts})
        except StorageError as err:
            if not isinstance(err, UploadGone) and getattr(err, "answered", True):
                await self._raise_if_gone(entry)  # the store answered: does it still know the upload?
            raise

    async def _raise_if_gone(self, entry: S3SpoolEntry) -> None:
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

    async def _verify_size(self, entry: S3SpoolEntry) -> None:
        head = await self._call(f"checking {entry.key}", "head_object", Key=self._full(entry.key))
        if head["ContentLength"] != entry.size:
            entry.restart_upload()
            raise StorageError(f"s3: the store holds {head['ContentLength']} bytes of {entry.key}, "
                               f"not {entry.size}: uploading it again")

    async def forget_remote(self, entry: S3SpoolEntry) -> None:
        """A dropped object's multipart upload is aborted (its parts would cost storage)."""
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

    async def read_store(self, key: str, start: int, end: int | None) -> AsyncIterator[bytes]:
        """Yield ``[start, end)`` of ``key`` by a ranged GET."""
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
        entry = self.spooled(key)
        if entry is not None:
            return entry.size
        head = await self._call(f"checking {key}", "head_object", Key=self._full(key))
        return int(head["ContentLength"])

    async def delete(self, key: str) -> None:
        """Remove ``key`` (every version of it in an Object Lock bucket); refused under a legal hold."""
        full = self._full(key)
        await self._start()
        entry = self.spooled(key)
        if entry is not None:
            if entry.hold:
                raise StorageError(f"s3: {key} is under a legal hold: lift it before deleting")
            await self.drop(entry)
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
        used += self.spooled_bytes()
        return StorageUsage(used_bytes=used, free_bytes=None, total_bytes=None)

    async def free_bytes(self) -> int | None:
        """Free space of the spool's file system: what fills up while the store is away."""
        return self.spool_free_bytes()

    async def salvaged(self, entry: S3SpoolEntry) -> None:
        """Multipart uploads of the key other than the entry's own are aborted."""
        await self._abort_strays(entry.key, keep=entry.upload_id)

    async def _abort_strays(self, key: str, keep: str | None) -> None:
        """Abort multipart uploads of ``key`` other than ``keep`` (a crash between start and save)."""
        full = self._full(key)
        try:
            answer = await self._call(f"listing uploads of {key}", "list_multipart_uploads", Prefix=full)
        except StorageError as err:
            log.warning("s3: cannot list stray uploads of %s now: %s", key, err)
            if isinstance(err, StoreUnreachable):
                self.failed(err)  # salvage then does not wait for a store that is away
            return
        for upload in answer.get("Uploads", []):
            if upload["Key"] == full and upload["UploadId"] != keep:
                await self._abort_quietly(full, upload["UploadId"])

    async def discard_unfinished(self, key: str) -> None:
        """Drop the spool files of an unfinished write of ``key`` and its multipart uploads."""
        await super().discard_unfinished(key)
        await self._abort_strays(key, keep=None)

    async def check(self) -> None:
        """The spool is writable and the bucket answers; says whether it has Object Lock.

        A store that does not answer (down, timing out) is not an error here: recording goes on
        into the spool. A store that refuses (no bucket, wrong credentials, no permission) is.
        """
        await self.check_spool()
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
            self.recovered()  # the store answers: what waits out a back-off goes now
        before, self.object_lock = self.object_lock, None
        if await self._lock_enabled() == before:
            return  # said already (the engine checks before every recording)
        if self.object_lock:
            log.info("s3: bucket %s has Object Lock: legal holds on recordings are enforced by the store",
                     self.config.bucket)
        else:
            log.info("s3: bucket %s has no Object Lock: legal holds are kept by Valt only", self.config.bucket)

    # --- beyond the base contract: pending uploads, legal holds, presigned reads -------------

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
        entry = self.spooled(key)
        if entry is not None and not entry.done.is_set():
            entry.hold = on  # applied by the worker once the object is in the store
            await asyncio.to_thread(entry.save)
            if entry.state == CLOSED and self.spooled(key) is entry:
                return True
        await self._call(f"{'holding' if on else 'releasing'} {key}", "put_object_legal_hold",
                         Key=self._full(key), LegalHold={"Status": "ON" if on else "OFF"})
        return True

    async def legal_hold(self, key: str, missing_ok: bool = False) -> bool:
        """Whether ``key`` is under a legal hold (``False`` in a bucket without Object Lock)."""
        await self._start()
        entry = self.spooled(key)
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

    def presigned_origins(self) -> list[str]:
        """Where presigned URLs point: the endpoint's host, and the bucket's virtual host on it
        (which of the two the SDK picks depends on the addressing style and the bucket's name)."""
        if self.config.endpoint_url:
            parts = urlsplit(self.config.endpoint_url)
            scheme, host = parts.scheme, parts.netloc
        else:
            scheme, host = "https", f"s3.{self.config.region}.amazonaws.com"
        origins = []
        if self.config.addressing_style != "virtual":
            origins.append(f"{scheme}://{host}")
        if self.config.addressing_style != "path":
            origins.append(f"{scheme}://{self.config.bucket}.{host}")
        return origins

    async def presigned_url(self, key: str, expires_s: int, content_type: str | None = None,
                            content_disposition: str | None = None) -> str | None:
        """A GET URL of ``key`` valid ``expires_s`` seconds (capped by ``presign_max_s``), whose
        answer carries ``content_type`` and ``content_disposition`` when given.

        ``None`` while the key waits in the spool: the caller serves it through :meth:`read`.
        """
        await self._start()
        if self.spooled(key) is not None:
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
