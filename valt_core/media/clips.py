"""Clip jobs and playback files: cut ranges of recorded tracks into MP4 files, with progress."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator

import sqlalchemy as sa
from sqlmodel import select

from ..db.models import Clip, ClipFile, Recording, Segment, Track
from ..db.types import utcnow
from ..errors import Conflict, NotFound, ValidationFailed
from ..events import ClipReady
from ..files import FILE_MODE, make_private_dir
from .playback import BuildResult, SegmentRef, build_mp4

if TYPE_CHECKING:
    from .engine import MediaEngine

log = logging.getLogger(__name__)

#: Bytes moved at a time when a built file goes to storage or a zip is packed.
CHUNK = 1024 * 1024


async def track_segments(engine: "MediaEngine", track_id: int) -> list[SegmentRef]:
    """The finished segments of a track, in order."""
    async with engine.db.session() as s:
        rows = (await s.exec(select(Segment).where(Segment.track_id == track_id, Segment.complete == True)  # noqa: E712
                             .order_by(Segment.seq))).all()
    return [SegmentRef(r.key, r.start_s, r.duration_s) for r in rows]


def recording_length(segments: list[SegmentRef]) -> float:
    """Recording time just after a track's last segment."""
    return max((s.start_s + s.duration_s for s in segments), default=0.0)


def has_media(segments: list[SegmentRef], start_s: float, end_s: float) -> bool:
    """Whether any segment holds media in ``[start_s, end_s)`` (not only a gap or a pause)."""
    return any(s.start_s + s.duration_s > start_s and s.start_s < end_s for s in segments)


async def build_track_file(engine: "MediaEngine", segments: list[SegmentRef], out_path: Path,
                           start_s: float, end_s: float, exact: bool = False,
                           progress=None) -> BuildResult:
    """Build ``[start_s, end_s)`` of a track into ``out_path`` in a worker thread.

    Segments of a backend without local files are copied to a temporary file chunk by chunk,
    so no segment is ever held in memory whole.
    """
    loop = asyncio.get_running_loop()

    with tempfile.TemporaryDirectory(prefix="valt-segments-") as downloads:
        async def download(key: str) -> str:
            path = Path(downloads) / hashlib.sha256(key.encode()).hexdigest()
            with open(path, "wb") as f:
                async for chunk in engine.storage.read(key):
                    await asyncio.to_thread(f.write, chunk)
            return str(path)

        def fetch(key: str) -> bytes | str:
            return engine.storage.local_path(key) or asyncio.run_coroutine_threadsafe(download(key), loop).result()

        return await asyncio.to_thread(build_mp4, segments, fetch, str(out_path), start_s, end_s, exact, progress)


async def store_file(engine: "MediaEngine", path: Path, key: str) -> tuple[int, str]:
    """Copy a local file to storage under ``key`` in chunks; its size and SHA-256."""
    digest = hashlib.sha256()
    writer = await engine.storage.open_writer(key)
    try:
        with open(path, "rb") as f:
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                digest.update(chunk)
                await writer.write(chunk)
        size = await writer.close()
    except BaseException:
        await writer.abort()
        raise
    return size, digest.hexdigest()


class _Sink(io.RawIOBase):
    """An unseekable file that keeps what zipfile writes until it is taken and sent."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


async def zip_stream(files: list[tuple[str, int, AsyncIterator[bytes]]]) -> AsyncIterator[bytes]:
    """A zip of ``(name, size, chunks)`` files, made while it is sent (stored: MP4 does not shrink).

    Written as a stream (sizes and CRCs in data descriptors), so memory holds one chunk at a
    time whatever the files weigh.
    """
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, size, chunks in files:
            info = zipfile.ZipInfo(name, date_time=utcnow().timetuple()[:6])
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = size
            with z.open(info, "w", force_zip64=size >= zipfile.ZIP64_LIMIT) as out:
                async for chunk in chunks:
                    out.write(chunk)
                    if data := sink.take():
                        yield data
            if data := sink.take():
                yield data
    if data := sink.take():
        yield data


class PlaybackCache:
    """Built playback files under ``DATA_DIR/cache/playback``, rebuilt when the track grows."""

    def __init__(self, engine: "MediaEngine") -> None:
        self.engine = engine
        self.dir = engine.settings.data_dir / "cache" / "playback"
        self._locks: dict[str, asyncio.Lock] = {}

    async def file_for(self, track_id: int, start_s: float | None, end_s: float | None) -> Path:
        """A playable MP4 of the track (or of ``[start_s, end_s)``), built once and reused."""
        segments = await track_segments(self.engine, track_id)
        if not segments:
            raise NotFound("this track has no recorded media yet")
        length = recording_length(segments)
        start = segments[0].start_s if start_s is None else start_s
        end = length if end_s is None else end_s
        check_range(start, end, length)
        if not has_media(segments, start, end):
            raise ValidationFailed(f"the track has no media between {start:g} s and {end:g} s",
                                   fields={"start": "no media in the range"})
        identity = repr((track_id, start, end, [(s.key, s.duration_s) for s in segments]))
        tag = hashlib.sha256(identity.encode()).hexdigest()[:24]
        path = self.dir / f"track-{track_id}-{tag}.mp4"
        lock = self._locks.setdefault(tag, asyncio.Lock())
        async with lock:
            if not path.exists():
                make_private_dir(self.dir)
                tmp = path.with_suffix(".building")
                await build_track_file(self.engine, segments, tmp, start, end)
                os.chmod(tmp, FILE_MODE)  # FFmpeg made it with the umask's mode
                os.replace(tmp, path)
                self._trim()
        self._locks.pop(tag, None)
        return path

    def _trim(self) -> None:
        # Least recently built files go first once the cache is over its size.
        limit = self.engine.settings.media.cache_mb * 2**20
        files = sorted(self.dir.glob("*.mp4"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        for p in files[:-1]:
            if total <= limit:
                break
            total -= p.stat().st_size
            p.unlink(missing_ok=True)


def check_range(start: float, end: float, length: float) -> None:
    """Refuse ranges a person would not mean: negative, reversed, or past the recording."""
    if start < 0:
        raise ValidationFailed("start must not be negative", fields={"start": "negative"})
    if start >= length:
        raise ValidationFailed(f"start {start:g} s is beyond the recording ({length:.1f} s long)",
                               fields={"start": "beyond the recording"})
    if end <= start:
        raise ValidationFailed("end must be after start", fields={"end": "not after start"})
    if end > length + 0.5:
        raise ValidationFailed(f"end {end:g} s is beyond the recording ({length:.1f} s long)",
                               fields={"end": "beyond the recording"})


@dataclass
class _Job:
    clip_id: int
    author_id: int | None
    track_ids: list[int]


class ClipService:
    """Runs clip jobs in the background, a few at a time, and records their progress and results.

    Jobs wait in one first-come queue; one starts when fewer than ``[media] clip_jobs_running``
    run in total and fewer than ``clip_jobs_running_per_user`` run for its author. A user with
    ``clip_jobs_queued_per_user`` jobs waiting or running gets no more until one ends.
    """

    def __init__(self, engine: "MediaEngine") -> None:
        self.engine = engine
        self.tasks: dict[int, asyncio.Task] = {}
        self._waiting: list[_Job] = []
        self._running: dict[int, _Job] = {}
        self._reserved: dict[int | None, int] = {}

    def queue_position(self, clip_id: int) -> int | None:
        """Where a waiting job is in the queue (1: next to start), ``None`` if it is not waiting."""
        for n, job in enumerate(self._waiting, 1):
            if job.clip_id == clip_id:
                return n
        return None

    def _jobs_of(self, author_id: int | None) -> int:
        return (sum(1 for j in self._waiting if j.author_id == author_id)
                + sum(1 for j in self._running.values() if j.author_id == author_id)
                + self._reserved.get(author_id, 0))

    def _dispatch(self) -> None:
        # Start waiting jobs, oldest first, while the total and per-user bounds allow.
        media = self.engine.settings.media
        for job in list(self._waiting):
            if len(self._running) >= media.clip_jobs_running:
                return
            mine = sum(1 for j in self._running.values() if j.author_id == job.author_id)
            if mine >= media.clip_jobs_running_per_user:
                continue
            self._waiting.remove(job)
            self._running[job.clip_id] = job
            self.tasks[job.clip_id] = asyncio.create_task(self._run(job.clip_id, job.track_ids))

    async def create(self, recording_id: int, start_s: float, end_s: float, exact: bool,
                     track_ids: list[int] | None, author_id: int | None) -> Clip:
        """Validate and queue a clip of ``[start_s, end_s)`` over the chosen tracks."""
        async with self.engine.db.session() as s:
            rec = await s.get(Recording, recording_id)
            if rec is None:
                raise NotFound(f"no recording {recording_id}")
            tracks = (await s.exec(select(Track).where(Track.recording_id == recording_id).order_by(Track.id))).all()
        by_id = {t.id: t for t in tracks}
        if track_ids is not None:
            if not track_ids:
                raise ValidationFailed("choose at least one track (or leave track_ids out for all)",
                                       fields={"track_ids": "empty"})
            if len(set(track_ids)) != len(track_ids):
                raise ValidationFailed("list each track once", fields={"track_ids": "a track listed twice"})
            unknown = [t for t in track_ids if t not in by_id]
            if unknown:
                raise ValidationFailed(f"recording {recording_id} has no track {unknown[0]}",
                                       fields={"track_ids": "unknown track"})
            chosen = [by_id[t] for t in track_ids]
        else:
            chosen = list(tracks)
        segments = [await track_segments(self.engine, t.id) for t in chosen]
        lengths = [recording_length(s) for s in segments]
        if not any(lengths):
            raise ValidationFailed("the recording has no recorded media to clip")
        check_range(start_s, end_s, max(lengths))
        # A track with nothing in the range (it started later, or was paused) gives no file.
        chosen = [t for t, s in zip(chosen, segments) if has_media(s, start_s, end_s)]
        if not chosen:
            raise ValidationFailed(f"no track has media between {start_s:g} s and {end_s:g} s",
                                   fields={"start_s": "no media in the range"})
        limit = self.engine.settings.media.clip_jobs_queued_per_user
        if self._jobs_of(author_id) >= limit:
            raise Conflict(f"you have {limit} clip jobs waiting or running, the most one user may have; "
                           "wait for one to finish", limit=limit)
        # Hold the place while the row is written, so two requests at once cannot both pass.
        self._reserved[author_id] = self._reserved.get(author_id, 0) + 1
        try:
            clip = Clip(recording_id=recording_id, author_id=author_id, start_s=start_s, end_s=end_s,
                        exact=exact, state="queued")
            async with self.engine.db.session() as s:
                s.add(clip)
                await s.commit()
            self._waiting.append(_Job(clip.id, author_id, [t.id for t in chosen]))
        finally:
            self._reserved[author_id] -= 1
        self._dispatch()
        return clip

    async def _update(self, clip_id: int, **fields) -> None:
        # One UPDATE, not read-modify-write: what it sets cannot be undone by a write in between.
        async with self.engine.db.engine.begin() as conn:
            await conn.execute(sa.update(Clip).where(Clip.id == clip_id).values(**fields))

    async def _progress(self, clip_id: int, value: float) -> None:
        # Reports from the build thread may land late, even after the job is done: one
        # conditional UPDATE, so a clip never moves backwards nor leaves done/1.0.
        async with self.engine.db.engine.begin() as conn:
            await conn.execute(sa.update(Clip).where(Clip.id == clip_id, Clip.state == "running",
                                                     Clip.progress < value).values(progress=value))

    async def _run(self, clip_id: int, track_ids: list[int]) -> None:
        async with self.engine.db.session() as s:
            clip = await s.get(Clip, clip_id)
            tracks = [await s.get(Track, t) for t in track_ids]
        await self._update(clip_id, state="running")
        loop = asyncio.get_running_loop()
        done_tracks = 0
        last_reported = [0.0]

        def progress(fraction: float) -> None:
            overall = (done_tracks + fraction) / len(tracks)
            if overall - last_reported[0] >= 0.1:
                last_reported[0] = overall
                asyncio.run_coroutine_threadsafe(self._progress(clip_id, round(overall, 3)), loop)

        try:
            with tempfile.TemporaryDirectory(prefix="valt-clip-") as tmp:
                for track in tracks:
                    segments = await track_segments(self.engine, track.id)
                    out = Path(tmp) / f"track-{track.id}.mp4"
                    end = min(clip.end_s, recording_length(segments))
                    await build_track_file(self.engine, segments, out, clip.start_s, end, clip.exact, progress)
                    key = f"clips/{clip_id}/{_safe(track.camera_name) or 'track'}-{track.id}.mp4"
                    size, sha256 = await store_file(self.engine, out, key)
                    out.unlink()
                    async with self.engine.db.session() as s:
                        s.add(ClipFile(clip_id=clip_id, track_id=track.id, key=key, bytes=size, sha256=sha256))
                        await s.commit()
                    done_tracks += 1
                    await self._progress(clip_id, round(done_tracks / len(tracks), 3))
            await self._update(clip_id, state="done", progress=1.0, finished_at=utcnow())
            await self.engine.plugins.notify(ClipReady(clip_id=clip_id))
        except Exception as err:  # noqa: BLE001 - the job's failure is its result
            log.exception("clip %s failed", clip_id)
            await self._update(clip_id, state="failed", error=str(err)[:500], finished_at=utcnow())
        finally:
            self.tasks.pop(clip_id, None)
            self._running.pop(clip_id, None)
            self._dispatch()

    def zip_stream(self, files: list[ClipFile], extra: dict[str, bytes] | None = None) -> AsyncIterator[bytes]:
        """A clip's files as one zip, packed while it is sent, with ``extra`` small files (name: bytes)."""
        async def once(data: bytes) -> AsyncIterator[bytes]:
            yield data

        entries = [(f.key.rsplit("/", 1)[-1], f.bytes, self.engine.storage.read(f.key)) for f in files]
        entries += [(name, len(data), once(data)) for name, data in (extra or {}).items()]
        return zip_stream(entries)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-")
