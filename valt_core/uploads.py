"""Uploads of offline recordings: the sessions, their bytes, and the recordings they become.

The mobile app's two-step API: an upload is created with the session's details (name, room
or none, author, information, shares) and one entry per video; each video then arrives over
tus 1.0 (:mod:`valt_core.api.uploads`) into ``DATA_DIR/uploads/UPLOAD/FILE.part``, its
committed offset kept in ``upload_files``, so a dropped connection or a server restart resumes
where the server's offset says. When the last byte of every video is in, each file's declared
SHA-256 is checked and the file probed; then the videos are stream-copied into the tracks of
one new recording, cut into fragmented-MP4 segments by the same writer as a live recording,
written through the storage backend and indexed with their hashes by the
:class:`~valt_core.index.IndexWriter`. Refused or failed, an upload leaves nothing behind: no
recording row, no segment, no byte.

The app server does this itself: it has the database and the storage backend (in ``valt
serve`` one process is also the media server). A site with several app servers behind a load
balancer must send one upload's requests to the server that created it (the bytes are on its
disk until the upload is finished).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator

import sqlalchemy as sa
from sqlmodel import select

from .bus.messages import SegmentClosed, SegmentOpened
from .db.models import Group, Recording, RecordingShare, Room, Segment, Track, Upload, UploadFile, User
from .db.types import utcnow
from .errors import (
    ChecksumMismatch,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    StorageError,
    TooLarge,
    UnplayableVideo,
    ValidationFailed,
    ValtError,
)
from .events import RecordingStopped
from .files import make_private_dir
from .media import importer
from .media.recorder import segment_key

if TYPE_CHECKING:
    from .audit import AuditLog
    from .db import Database
    from .index import IndexWriter
    from .settings import Settings
    from .storage.base import StorageBackend

log = logging.getLogger(__name__)
MB = 1024 * 1024
#: Upload states in which the upload still holds bytes on the app server's disk.
HOLDING = ("open", "processing")
#: How much of a PATCH body is gathered before one write to disk (in a worker thread).
WRITE_BATCH = 1 * MB
#: How long a PATCH waits for another one on the same file (a client that reconnected before
#: the server saw its old connection drop) before answering 409.
LOCK_WAIT_S = 10.0
CHECKSUMS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1}


@dataclass(frozen=True)
class FileSpec:
    """One video announced when an upload is created."""

    filename: str
    size: int
    sha256: str = ""


@dataclass(frozen=True)
class ShareSpec:
    """A share the recording will get when the upload becomes one."""

    user_id: int | None = None
    group_id: int | None = None
    can_download: bool = False
    until: datetime | None = None


class UploadService:
    """Uploads, their files' bytes and their recordings (see the module docstring)."""

    def __init__(self, settings: "Settings", db: "Database", storage: "StorageBackend", index: "IndexWriter",
                 audit: "AuditLog") -> None:
        self.settings = settings
        self.limits = settings.uploads
        self.db = db
        self.storage = storage
        self.index = index
        self.audit = audit
        self.root = settings.data_dir / "uploads"
        self._locks: dict[int, asyncio.Lock] = {}
        #: Per file: the SHA-256 of its first ``offset`` bytes, kept while it arrives in order,
        #: so the whole file need not be read again at the end (after a restart it is).
        self._whole: dict[int, tuple[int, Any, int]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._expiry: asyncio.Task | None = None

    # --- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Finish what a stop interrupted, then look for expired uploads on a schedule."""
        async with self.db.session() as s:
            stuck = (await s.exec(select(Upload.id).where(Upload.state == "processing"))).all()
        for upload_id in stuck:
            log.warning("upload %s was being made into a recording when Valt stopped: making it again", upload_id)
            self._spawn(self._finish(upload_id))
        self._expiry = asyncio.create_task(self._expire_loop(), name="upload-expiry")

    async def stop(self) -> None:
        """Stop the expiry loop and the recordings being made (they stay ``processing``, their bytes
        kept, and are made again at the next :meth:`start`)."""
        if self._expiry is not None:
            self._expiry.cancel()
            await asyncio.gather(self._expiry, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        """Wait until no upload is being made into a recording here (for tests and the CLI)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- paths -------------------------------------------------------------------------------

    def path_of(self, upload_id: int, file_id: int) -> Path:
        """Where the bytes of one file of an upload are kept until it is finished."""
        return self.root / str(upload_id) / f"{file_id}.part"

    async def _remove_bytes(self, upload_id: int) -> None:
        await asyncio.to_thread(shutil.rmtree, self.root / str(upload_id), ignore_errors=True)
        for file_id in [k for k, held in self._whole.items() if held[2] == upload_id]:
            self._whole.pop(file_id, None)

    # --- creating and reading uploads ------------------------------------------------------

    async def held_bytes(self, user_id: int) -> int:
        """Bytes the user's unfinished uploads hold or will hold (their declared sizes)."""
        async with self.db.session() as s:
            total = (await s.exec(select(sa.func.coalesce(sa.func.sum(UploadFile.length), 0))
                                  .join(Upload, Upload.id == UploadFile.upload_id)
                                  .where(Upload.user_id == user_id, Upload.state.in_(HOLDING)))).one()
        return int(total)

    async def create(self, user: User, *, name: str, room_id: int | None, author_id: int | None,
                     information: dict[str, Any], shares: list[ShareSpec], files: list[FileSpec],
                     may_set_author: bool) -> tuple[Upload, list[UploadFile]]:
        """Create an upload and its files' entries; the caller has checked the room right."""
        limit = int(self.limits.max_file_mb * MB)
        if len(files) > self.limits.files_per_upload:
            raise ValidationFailed(f"an upload holds at most {self.limits.files_per_upload} videos",
                                   fields={"files": "too many"})
        names = [f.filename for f in files]
        if len(set(names)) != len(names):
            raise ValidationFailed("each file of an upload needs its own name", fields={"files": "a name twice"})
        for i, f in enumerate(files):
            if f.size > limit:
                raise TooLarge(f"{f.filename} is {f.size / MB:.1f} MiB; the largest video Valt takes is "
                               f"{self.limits.max_file_mb:g} MiB ([uploads] max_file_mb)", field=f"files.{i}.size")
        wanted = sum(f.size for f in files)
        if self.limits.quota_mb > 0:
            quota = int(self.limits.quota_mb * MB)
            held = await self.held_bytes(user.id)
            if held + wanted > quota:
                raise TooLarge(f"this upload ({wanted / MB:.1f} MiB) is over your upload quota: your unfinished "
                               f"uploads hold {held / MB:.1f} MiB of {self.limits.quota_mb:g} MiB; finish or "
                               "cancel some first", quota_bytes=quota, held_bytes=held)
        # The bytes wait on this server's disk until the upload is finished: refuse at once
        # what cannot fit, rather than after hours of sending.
        make_private_dir(self.root)
        free = (await asyncio.to_thread(shutil.disk_usage, self.root)).free
        if wanted > free:
            raise StorageError(f"the server has {free / MB:.0f} MiB free for uploads; this upload needs "
                               f"{wanted / MB:.0f} MiB")
        author = user.id if author_id is None else author_id
        if author != user.id and not may_set_author:
            raise Forbidden("you may not name another author: it needs the right 'recordings.change_author'")
        async with self.db.session() as s:
            if room_id is not None and await s.get(Room, room_id) is None:
                raise NotFound(f"no room {room_id}")
            if author != user.id and await s.get(User, author) is None:
                raise ValidationFailed(f"no user {author}", fields={"author_id": "unknown user"})
            for i, share in enumerate(shares):
                if (share.user_id is None) == (share.group_id is None):
                    raise ValidationFailed("a share names one user or one group",
                                           fields={f"shares.{i}": "both or neither"})
                if share.user_id is not None and await s.get(User, share.user_id) is None:
                    raise ValidationFailed(f"no user {share.user_id}", fields={f"shares.{i}.user_id": "unknown user"})
                if share.group_id is not None and await s.get(Group, share.group_id) is None:
                    raise ValidationFailed(f"no group {share.group_id}",
                                           fields={f"shares.{i}.group_id": "unknown group"})
                if share.until is not None and share.until <= utcnow():
                    raise ValidationFailed("a share must end in the future", fields={f"shares.{i}.until": "past"})
            upload = Upload(user_id=user.id, room_id=room_id, author_id=author, name=name, information=information,
                            shares=[{"user_id": sh.user_id, "group_id": sh.group_id, "can_download": sh.can_download,
                                     "until": sh.until.isoformat() if sh.until else None} for sh in shares],
                            expires_at=utcnow() + timedelta(hours=self.limits.expire_hours))
            s.add(upload)
            await s.flush()
            rows = [UploadFile(upload_id=upload.id, filename=f.filename, length=f.size, sha256=f.sha256)
                    for f in files]
            s.add_all(rows)
            await s.commit()
            await s.refresh(upload)
            for row in rows:
                await s.refresh(row)
        make_private_dir(self.root / str(upload.id))
        return upload, rows

    async def upload_of(self, upload_id: int, user_id: int) -> tuple[Upload, list[UploadFile]]:
        """The user's upload and its files; another user's (or none) is :class:`NotFound`."""
        async with self.db.session() as s:
            upload = await s.get(Upload, upload_id)
            if upload is None or upload.user_id != user_id:
                raise NotFound(f"no upload {upload_id}")
            files = (await s.exec(select(UploadFile).where(UploadFile.upload_id == upload_id)
                                  .order_by(UploadFile.id))).all()
        return upload, list(files)

    async def uploads_of(self, user_id: int) -> list[tuple[Upload, list[UploadFile]]]:
        """The user's uploads, newest first, with their files."""
        async with self.db.session() as s:
            uploads = (await s.exec(select(Upload).where(Upload.user_id == user_id)
                                    .order_by(Upload.id.desc()).limit(200))).all()
            ids = [u.id for u in uploads] or [0]
            files = (await s.exec(select(UploadFile).where(UploadFile.upload_id.in_(ids))
                                  .order_by(UploadFile.id))).all()
        by_upload: dict[int, list[UploadFile]] = {}
        for f in files:
            by_upload.setdefault(f.upload_id, []).append(f)
        return [(u, by_upload.get(u.id, [])) for u in uploads]

    async def file_of(self, file_id: int, user_id: int) -> tuple[Upload, UploadFile]:
        """One file of the user's uploads; another user's (or none) is :class:`NotFound`."""
        async with self.db.session() as s:
            row = await s.get(UploadFile, file_id)
            upload = None if row is None else await s.get(Upload, row.upload_id)
        if row is None or upload is None or upload.user_id != user_id:
            raise NotFound(f"no upload file {file_id}")
        return upload, row

    async def claim(self, upload_id: int, user_id: int, filename: str, length: int, sha256: str) -> UploadFile:
        """tus creation: the announced file of that name and length, not started yet."""
        upload, files = await self.upload_of(upload_id, user_id)
        self.check_open(upload)
        row = next((f for f in files if f.filename == filename), None)
        if row is None:
            raise ValidationFailed(f"upload {upload_id} announced no file {filename!r}: announce every video "
                                   "when creating the upload", fields={"Upload-Metadata": "unknown filename"})
        if row.length != length:
            raise ValidationFailed(f"{filename} was announced with {row.length} bytes, not {length}",
                                   fields={"Upload-Length": "not the announced size"})
        if sha256 and row.sha256 and sha256 != row.sha256:
            raise ValidationFailed(f"{filename} was announced with another SHA-256",
                                   fields={"Upload-Metadata": "sha256 differs"})
        if row.offset or row.complete:
            raise Conflict(f"{filename} is being sent already: resume it at its own address (HEAD for the offset)")
        if sha256 and not row.sha256:
            async with self.db.session() as s:
                found = await s.get(UploadFile, row.id)
                found.sha256 = sha256
                s.add(found)
                await s.commit()
                await s.refresh(found)
                row = found
        return row

    def check_open(self, upload: Upload) -> None:
        """Raise unless bytes may still be sent to ``upload`` (410 expired or refused, 409 complete)."""
        if upload.state == "expired" or (upload.state == "open" and upload.expires_at <= utcnow()):
            raise Gone(f"upload {upload.id} expired at {upload.expires_at.isoformat()}; its bytes are removed")
        if upload.state == "failed":
            raise Gone(f"upload {upload.id} was refused: {upload.error}")
        if upload.state != "open":
            raise Conflict(f"upload {upload.id} has every byte already (it is {upload.state})")

    # --- receiving bytes (tus PATCH) -------------------------------------------------------

    async def receive(self, file_id: int, user_id: int, offset: int, body: AsyncIterator[bytes],
                      checksum: tuple[str, bytes] | None) -> UploadFile:
        """Append a PATCH body at ``offset`` and commit it; returns the file as it is now.

        With ``checksum`` (algorithm, digest) the chunk is committed only if it matches
        (:class:`ChecksumMismatch` otherwise: nothing appended). Without one, what arrived is
        committed every ``[uploads] commit_every_mb`` and when the body ends, so a dropped
        connection loses at most that much. When the file is complete, it is checked; when
        every file of the upload is, the upload is made into a recording in the background.
        """
        lock = self._locks.setdefault(file_id, asyncio.Lock())
        try:
            await asyncio.wait_for(lock.acquire(), LOCK_WAIT_S)
        except asyncio.TimeoutError:
            raise Conflict("another request is sending bytes of this file; try again in a moment") from None
        try:
            upload, row = await self.file_of(file_id, user_id)
            self.check_open(upload)
            if row.complete:
                raise Conflict(f"{row.filename} is complete already ({row.length} bytes)")
            if offset != row.offset:
                raise Conflict(f"Upload-Offset {offset} is not the server's offset {row.offset}: ask with HEAD "
                               "and send from there", offset=row.offset)
            row = await self._append(upload, row, body, checksum)
            if row.offset == row.length:
                # Under the lock: a second request must not complete the same file again.
                await self._file_complete(upload, row)
        finally:
            lock.release()
            if not lock.locked():
                self._locks.pop(file_id, None)
        return row

    async def _append(self, upload: Upload, row: UploadFile, body: AsyncIterator[bytes],
                      checksum: tuple[str, bytes] | None) -> UploadFile:
        path = self.path_of(upload.id, row.id)
        make_private_dir(path.parent)
        room = row.length - row.offset
        every = int(self.limits.commit_every_mb * MB)
        hasher = CHECKSUMS[checksum[0]]() if checksum else None
        held = self._whole.get(row.id)
        whole = held[1].copy() if held is not None and held[0] == row.offset else (
            hashlib.sha256() if row.offset == 0 else None)
        # Bytes on disk past the committed offset were never confirmed: they go.
        f = await asyncio.to_thread(_open_at, path, row.offset)
        written = committed = 0
        pending: list[bytes] = []
        pending_len = 0
        try:
            try:
                async for chunk in body:
                    if not chunk:
                        continue
                    if written + pending_len + len(chunk) > room:
                        raise TooLarge(f"the body goes past the file's length ({row.length} bytes)")
                    pending.append(chunk)
                    pending_len += len(chunk)
                    if pending_len >= WRITE_BATCH:
                        await asyncio.to_thread(_write, f, pending, hasher, whole)
                        written += pending_len
                        pending, pending_len = [], 0
                        if hasher is None and written - committed >= every:
                            await asyncio.to_thread(_sync, f)
                            await self._commit(row, row.offset + written, whole)
                            committed = written
                if pending:
                    await asyncio.to_thread(_write, f, pending, hasher, whole)
                    written += pending_len
                    pending, pending_len = [], 0
            except asyncio.CancelledError:
                # The client went away mid-body: keep what is on disk, as tus asks, unless the
                # chunk was to be checked (a partial chunk cannot match its checksum).
                if hasher is None and written > committed:
                    await asyncio.shield(self._sync_and_commit(f, row, row.offset + written, whole))
                raise
            if hasher is not None and hasher.digest() != checksum[1]:  # type: ignore[index]
                await asyncio.to_thread(f.truncate, row.offset)
                raise ChecksumMismatch(f"the chunk's {checksum[0]} is not the Upload-Checksum sent; "  # type: ignore[index]
                                       f"nothing was appended: send it again from offset {row.offset}")
            if written > committed:
                await asyncio.to_thread(_sync, f)
                await self._commit(row, row.offset + written, whole)
        except TooLarge:
            await asyncio.to_thread(f.truncate, row.offset + committed)
            raise
        finally:
            await asyncio.to_thread(f.close)
        async with self.db.session() as s:
            return await s.get(UploadFile, row.id)

    async def _sync_and_commit(self, f: Any, row: UploadFile, offset: int, whole: Any) -> None:
        await asyncio.to_thread(_sync, f)
        await self._commit(row, offset, whole)

    async def _commit(self, row: UploadFile, offset: int, whole: Any = None) -> None:
        # Conditional on the offset it started from: two writers can never both move it.
        async with self.db.session() as s:
            result = await s.exec(sa.update(UploadFile).where(UploadFile.id == row.id, UploadFile.offset <= offset)
                                  .values(offset=offset))
            await s.commit()
        if result.rowcount != 1:
            raise Conflict("the file's offset moved while these bytes were written")
        if whole is not None:
            self._whole[row.id] = (offset, whole.copy(), row.upload_id)

    async def _file_complete(self, upload: Upload, row: UploadFile) -> None:
        path = self.path_of(upload.id, row.id)
        held = self._whole.pop(row.id, None)
        digest = held[1].hexdigest() if held is not None and held[0] == row.length else (
            await asyncio.to_thread(_sha256_file, path))
        try:
            if row.sha256 and digest != row.sha256:
                raise UnplayableVideo(f"{row.filename}: its SHA-256 is {digest}, not the {row.sha256} declared: "
                                      "the file did not arrive as it was sent; the upload is refused")
            await asyncio.to_thread(importer.probe, str(path))
        except UnplayableVideo as err:
            message = err.message if err.message.startswith(row.filename) else f"{row.filename}: {err.message}"
            await self._refuse(upload.id, message)
            raise UnplayableVideo(message) from err
        async with self.db.session() as s:
            found = await s.get(UploadFile, row.id)
            found.complete, found.sha256 = True, digest
            s.add(found)
            await s.commit()
            files = (await s.exec(select(UploadFile).where(UploadFile.upload_id == upload.id))).all()
            if not all(f.complete for f in files):
                return
            # Every video is in: only one request may move the upload on.
            moved = await s.exec(sa.update(Upload).where(Upload.id == upload.id, Upload.state == "open")
                                 .values(state="processing"))
            await s.commit()
        if moved.rowcount == 1:
            self._spawn(self._finish(upload.id))

    async def _refuse(self, upload_id: int, reason: str) -> None:
        """End an upload as failed, keeping nothing of it but the row that says why."""
        await self._remove_bytes(upload_id)
        async with self.db.session() as s:
            upload = await s.get(Upload, upload_id)
            if upload is None:
                return
            upload.state, upload.error, upload.finished_at = "failed", reason[:500], utcnow()
            s.add(upload)
            for f in (await s.exec(select(UploadFile).where(UploadFile.upload_id == upload_id))).all():
                f.offset, f.complete = 0, False
                s.add(f)
            await s.commit()
        await self.audit.record("upload.refused", target_type="upload", target_id=upload_id,
                                detail={"reason": reason[:500]})

    # --- termination -------------------------------------------------------------------------

    async def cancel(self, upload_id: int, user_id: int) -> None:
        """Remove an unfinished upload and its bytes (tus termination of its files)."""
        upload, _files = await self.upload_of(upload_id, user_id)
        if upload.state == "processing":
            raise Conflict(f"upload {upload_id} is being made into a recording; delete the recording instead")
        await self._remove_bytes(upload_id)
        async with self.db.session() as s:
            found = await s.get(Upload, upload_id)
            if found is not None:
                await s.delete(found)
                await s.commit()

    # --- expiry ------------------------------------------------------------------------------

    async def expire(self) -> int:
        """Expire the open uploads past their time, removing their bytes; how many there were."""
        async with self.db.session() as s:
            due = (await s.exec(select(Upload).where(Upload.state == "open", Upload.expires_at <= utcnow()))).all()
            for upload in due:
                upload.state, upload.finished_at = "expired", utcnow()
                upload.error = "not finished before it expired"
                s.add(upload)
            await s.commit()
            ids = [u.id for u in due]
        for upload_id in ids:
            await self._remove_bytes(upload_id)
            log.info("upload %s expired; its bytes are removed", upload_id)
        return len(ids)

    async def _expire_loop(self) -> None:
        while True:
            try:
                await self.expire()
            except Exception:  # noqa: BLE001 - the database may be down; try at the next round
                log.exception("could not expire uploads")
            await asyncio.sleep(self.limits.expiry_check_s)

    # --- making the recording ----------------------------------------------------------------

    async def _finish(self, upload_id: int) -> None:
        try:
            await self._make_recording(upload_id)
        except asyncio.CancelledError:
            raise  # stopping: the upload stays "processing" and is made again at the next start
        except Exception as err:  # noqa: BLE001 - any failure refuses the upload, leaving nothing
            reason = err.message if isinstance(err, ValtError) else f"{type(err).__name__}: {err}"
            if not isinstance(err, ValtError):
                log.exception("upload %s could not be made into a recording", upload_id)
            await self._undo_recording(upload_id)
            await self._refuse(upload_id, reason)

    async def _undo_recording(self, upload_id: int) -> None:
        """Remove a recording an upload had begun to make: its objects, then its rows."""
        async with self.db.session() as s:
            upload = await s.get(Upload, upload_id)
            rec_id = upload.recording_id if upload is not None else None
            if rec_id is None:
                return
            keys = (await s.exec(select(Segment.key).join(Track, Track.id == Segment.track_id)
                                 .where(Track.recording_id == rec_id))).all()
        for key in keys:
            try:
                await self.storage.delete(key)
            except Exception:  # noqa: BLE001 - it may never have been written
                pass
        for key in await self.storage.unfinished(f"recordings/{rec_id}"):
            await self.storage.discard_unfinished(key)
        async with self.db.session() as s:
            upload = await s.get(Upload, upload_id)
            upload.recording_id = None
            s.add(upload)
            for track in (await s.exec(select(Track).where(Track.recording_id == rec_id))).all():
                for seg in (await s.exec(select(Segment).where(Segment.track_id == track.id))).all():
                    await s.delete(seg)
                await s.delete(track)
            await s.flush()
            for share in (await s.exec(select(RecordingShare).where(RecordingShare.recording_id == rec_id))).all():
                await s.delete(share)
            rec = await s.get(Recording, rec_id)
            if rec is not None:
                await s.delete(rec)
            await s.commit()

    async def _make_recording(self, upload_id: int) -> None:
        await self._undo_recording(upload_id)  # a start that a stop interrupted begins afresh
        async with self.db.session() as s:
            upload = await s.get(Upload, upload_id)
            files = list((await s.exec(select(UploadFile).where(UploadFile.upload_id == upload_id)
                                       .order_by(UploadFile.id))).all())
        probes = [await asyncio.to_thread(importer.probe, str(self.path_of(upload_id, f.id))) for f in files]
        # Tracks are aligned by the times the files say they were recorded; one that says none
        # starts with the earliest.
        known = [p.created_at for p in probes if p.created_at is not None]
        started = min(known) if known else upload.created_at
        offsets = [((p.created_at - started).total_seconds() if p.created_at else 0.0) for p in probes]
        notes = [f"uploaded: {f.filename} ({f.length} bytes, SHA-256 {f.sha256})" for f in files]
        notes += [f"{f.filename}: its {p.dropped_audio} audio is left out (not a codec Valt records)"
                  for f, p in zip(files, probes) if p.dropped_audio]
        info = "\n".join(f"{k}: {v}" for k, v in sorted(upload.information.items()))
        async with self.db.session() as s:
            rec = Recording(room_id=upload.room_id, author_id=upload.author_id,
                            name=upload.name or f"Upload {started:%Y-%m-%d %H:%M}", state="importing",
                            started_at=started, notes="\n".join(([info] if info else []) + notes))
            s.add(rec)
            await s.flush()
            tracks = [Track(recording_id=rec.id, camera_name=f.filename[:150], state="importing",
                            storage_prefix=f"recordings/{rec.id}/") for f in files]
            s.add_all(tracks)
            found = await s.get(Upload, upload_id)
            found.recording_id = rec.id
            s.add(found)
            await s.commit()
            rec_id = rec.id
            track_ids = [t.id for t in tracks]
        end = 0.0
        for f, track_id, offset in zip(files, track_ids, offsets):
            last = await self._remux_file(rec_id, track_id, self.path_of(upload_id, f.id), offset)
            end = max(end, last)
            async with self.db.session() as s:
                row = await s.get(UploadFile, f.id)
                row.track_id = track_id
                s.add(row)
                await s.commit()
        async with self.db.session() as s:
            rec = await s.get(Recording, rec_id)
            rec.state, rec.stopped_at = "stopped", started + timedelta(seconds=end)
            s.add(rec)
            for track in (await s.exec(select(Track).where(Track.recording_id == rec_id))).all():
                track.state = "stopped"
                s.add(track)
            for share in upload.shares:
                s.add(RecordingShare(recording_id=rec_id, user_id=share["user_id"], group_id=share["group_id"],
                                     can_download=share["can_download"], shared_by_id=upload.user_id,
                                     until=datetime.fromisoformat(share["until"]) if share["until"] else None))
            found = await s.get(Upload, upload_id)
            found.state, found.finished_at = "done", utcnow()
            s.add(found)
            await s.commit()
        await self._remove_bytes(upload_id)
        async with self.db.session() as s:
            user = await s.get(User, upload.user_id)
        await self.audit.record("upload.finished", actor=user, target_type="recording", target_id=rec_id,
                                detail={"upload_id": upload_id, "files": [f.filename for f in files],
                                        "sha256": [f.sha256 for f in files]})
        # Like a recording that was stopped: plugins that act on finished recordings see it too.
        await self.index.plugins.notify(RecordingStopped(recording_id=rec_id, state="stopped"))

    async def _remux_file(self, rec_id: int, track_id: int, path: Path, offset: float) -> float:
        """Stream-copy one file into the track's segments; the recording time its media ends."""
        media = self.settings.media
        events = importer.remux_segments(str(path), media.segment_seconds, media.fragment_seconds)
        ids = {"recording_id": rec_id, "track_id": track_id}
        writer: Any = None
        seq, start, end = 0, 0.0, offset
        done = object()
        try:
            while True:
                # One step of the demuxer and muxer at a time, off the event loop.
                event = await asyncio.to_thread(next, events, done)
                if event is done:
                    break
                if isinstance(event, importer.SegmentOpen):
                    seq, start = event.seq, offset + event.start_s
                    key = segment_key(rec_id, track_id, seq, event.ext)
                    await self.index.apply(SegmentOpened(seq=seq, key=key, start_s=start, video_codec=event.video_codec,
                                                         width=event.width, height=event.height,
                                                         audio_codec=event.audio_codec, **ids))
                    writer = await self.storage.open_writer(key)
                elif isinstance(event, importer.SegmentData):
                    await writer.write(event.data)
                else:
                    size = await writer.close()
                    writer = None
                    await self.index.apply(SegmentClosed(seq=seq, duration_s=event.duration_s, bytes=size,
                                                         sha256=event.sha256, **ids))
                    end = max(end, start + event.duration_s)
        finally:
            if writer is not None:
                await writer.abort()
            events.close()
        return end


def _open_at(path: Path, offset: int) -> Any:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    f = os.fdopen(fd, "r+b")
    f.truncate(offset)
    f.seek(offset)
    return f


def _write(f: Any, chunks: list[bytes], hasher: Any, whole: Any) -> None:
    for chunk in chunks:
        f.write(chunk)
        if hasher is not None:
            hasher.update(chunk)
        if whole is not None:
            whole.update(chunk)


def _sync(f: Any) -> None:
    f.flush()
    os.fdatasync(f.fileno())


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MB):
            digest.update(block)
    return digest.hexdigest()
