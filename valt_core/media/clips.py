"""Clip jobs and playback files: cut ranges of recorded tracks into MP4 files, with progress."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import select

from ..db.models import Clip, ClipFile, Recording, Segment, Track
from ..db.types import utcnow
from ..errors import NotFound, ValidationFailed
from .playback import BuildResult, SegmentRef, build_mp4

if TYPE_CHECKING:
    from .engine import MediaEngine

log = logging.getLogger(__name__)


async def track_segments(engine: "MediaEngine", track_id: int) -> list[SegmentRef]:
    """The finished segments of a track, in order."""
    async with engine.db.session() as s:
        rows = (await s.exec(select(Segment).where(Segment.track_id == track_id, Segment.complete == True)  # noqa: E712
                             .order_by(Segment.seq))).all()
    return [SegmentRef(r.key, r.start_s, r.duration_s) for r in rows]


def recording_length(segments: list[SegmentRef]) -> float:
    """Recording time just after a track's last segment."""
    return max((s.start_s + s.duration_s for s in segments), default=0.0)


async def build_track_file(engine: "MediaEngine", segments: list[SegmentRef], out_path: Path,
                           start_s: float, end_s: float, exact: bool = False,
                           progress=None) -> BuildResult:
    """Build ``[start_s, end_s)`` of a track into ``out_path`` in a worker thread."""
    loop = asyncio.get_running_loop()

    async def read_all(key: str) -> bytes:
        return b"".join([c async for c in engine.storage.read(key)])

    def fetch(key: str) -> bytes | str:
        return engine.storage.local_path(key) or asyncio.run_coroutine_threadsafe(read_all(key), loop).result()

    return await asyncio.to_thread(build_mp4, segments, fetch, str(out_path), start_s, end_s, exact, progress)


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
        tag = hashlib.sha256(repr((track_id, start, end, [(s.key, s.duration_s) for s in segments])).encode()).hexdigest()[:24]
        path = self.dir / f"track-{track_id}-{tag}.mp4"
        lock = self._locks.setdefault(tag, asyncio.Lock())
        async with lock:
            if not path.exists():
                self.dir.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".building")
                await build_track_file(self.engine, segments, tmp, start, end)
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


class ClipService:
    """Runs clip jobs in the background and records their progress and results."""

    def __init__(self, engine: "MediaEngine") -> None:
        self.engine = engine
        self.tasks: dict[int, asyncio.Task] = {}

    async def create(self, recording_id: int, start_s: float, end_s: float, exact: bool,
                     track_ids: list[int] | None, author_id: int | None) -> Clip:
        """Validate and queue a clip of ``[start_s, end_s)`` over the chosen tracks."""
        async with self.engine.db.session() as s:
            rec = await s.get(Recording, recording_id)
            if rec is None:
                raise NotFound(f"no recording {recording_id}")
            tracks = (await s.exec(select(Track).where(Track.recording_id == recording_id).order_by(Track.id))).all()
        by_id = {t.id: t for t in tracks}
        if track_ids:
            unknown = [t for t in track_ids if t not in by_id]
            if unknown:
                raise ValidationFailed(f"recording {recording_id} has no track {unknown[0]}",
                                       fields={"track_ids": "unknown track"})
            chosen = [by_id[t] for t in track_ids]
        else:
            chosen = list(tracks)
        lengths = [recording_length(await track_segments(self.engine, t.id)) for t in chosen]
        chosen = [t for t, n in zip(chosen, lengths) if n > 0]
        if not chosen:
            raise ValidationFailed("the recording has no recorded media to clip")
        check_range(start_s, end_s, max(lengths))
        clip = Clip(recording_id=recording_id, author_id=author_id, start_s=start_s, end_s=end_s, exact=exact,
                    state="queued")
        async with self.engine.db.session() as s:
            s.add(clip)
            await s.commit()
        self.tasks[clip.id] = asyncio.create_task(self._run(clip.id, [t.id for t in chosen]))
        return clip

    async def _update(self, clip_id: int, **fields) -> None:
        async with self.engine.db.session() as s:
            clip = await s.get(Clip, clip_id)
            for k, v in fields.items():
                setattr(clip, k, v)
            s.add(clip)
            await s.commit()

    async def _progress(self, clip_id: int, value: float) -> None:
        # Reports from the build thread may land late: never move a clip backwards.
        async with self.engine.db.session() as s:
            clip = await s.get(Clip, clip_id)
            if clip.state == "running" and value > clip.progress:
                clip.progress = value
                s.add(clip)
                await s.commit()

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
                    data = out.read_bytes()
                    key = f"clips/{clip_id}/{_safe(track.camera_name) or 'track'}-{track.id}.mp4"
                    writer = await self.engine.storage.open_writer(key)
                    await writer.write(data)
                    size = await writer.close()
                    async with self.engine.db.session() as s:
                        s.add(ClipFile(clip_id=clip_id, track_id=track.id, key=key, bytes=size,
                                       sha256=hashlib.sha256(data).hexdigest()))
                        await s.commit()
                    done_tracks += 1
                    await self._progress(clip_id, round(done_tracks / len(tracks), 3))
            await self._update(clip_id, state="done", progress=1.0, finished_at=utcnow())
            await self.engine.plugins.notify("clip_ready", clip_id=clip_id)
        except Exception as err:  # noqa: BLE001 - the job's failure is its result
            log.exception("clip %s failed", clip_id)
            await self._update(clip_id, state="failed", error=str(err)[:500], finished_at=utcnow())
        finally:
            self.tasks.pop(clip_id, None)

    async def zip_of(self, files: list[ClipFile], path: Path) -> None:
        """Pack a clip's files into one zip (stored, not compressed: MP4 does not shrink)."""
        datas = [(f, b"".join([c async for c in self.engine.storage.read(f.key)])) for f in files]

        def write() -> None:
            with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
                for f, data in datas:
                    z.writestr(f.key.rsplit("/", 1)[-1], data)

        await asyncio.to_thread(write)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-")
