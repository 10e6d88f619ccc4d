"""The media engine: camera pipelines, running recordings, crash recovery and the disk floor."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, TypeVar

from sqlmodel import select

from ..db.models import Camera, Clip, Gap, Recording, Room, Segment, Track, User
from ..db.types import utcnow
from ..errors import (
    CameraDisabled,
    CameraUnreachable,
    Conflict,
    DatabaseError,
    NotFound,
    StorageError,
    ValidationFailed,
    ValtError,
)
from ..events import CameraStatusChanged, RecordingPaused, RecordingResumed, RecordingStarted, RecordingStopped
from .clips import ClipService, PlaybackCache
from .fmp4 import playable_length
from .live import BROWSER_VIDEO, IDLE_STOP_S, LiveFragmenter
from .pipeline import CameraPipeline
from .recorder import RecordingSession, TrackRecorder, chain_hash, is_transient_db_error, parse_segment_key, segment_key
from .stills import jpeg_from_keyframe

if TYPE_CHECKING:
    from ..context import ValtContext

log = logging.getLogger(__name__)
T = TypeVar("T")
#: How long a new live stream waits for the camera's first connection to learn its video codec.
LIVE_PROBE_S = 5.0

RUNNING_STATES = ("recording", "paused")
#: How long stopping a recording waits for its index to catch up (the database may be down).
STOP_INDEX_WAIT_S = 5.0
#: How often the engine tries again to stop a recording it ended on a failure.
FAILED_STOP_RETRY_S = 2.0


@dataclass
class VerifyReport:
    """What ``valt verify`` found for one recording."""

    recording_id: int
    segments: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every track has segments, all present, unaltered and in an unbroken chain."""
        return not self.problems


class MediaEngine:
    """Owns every camera pipeline and every running recording of this process."""

    def __init__(self, ctx: "ValtContext") -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.db = ctx.db
        self.storage = ctx.storage
        self.plugins = ctx.plugins
        self.pipelines: dict[int, CameraPipeline] = {}
        self.sessions: dict[int, RecordingSession] = {}
        self._disk_task: asyncio.Task | None = None
        self._status_task: asyncio.Task | None = None
        self._status_unsaved: set[int] = set()
        self._lock = asyncio.Lock()
        self._status_lock = asyncio.Lock()
        self.started = False
        self.live_streams: dict[int, LiveFragmenter] = {}
        self.live_pipelines: dict[int, CameraPipeline] = {}
        self._live_lock = asyncio.Lock()
        self._reaper: asyncio.Task | None = None
        self._failure_stops: dict[int, asyncio.Task] = {}
        self.playback = PlaybackCache(self)
        self.clips = ClipService(self)

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover from an unclean stop, then start ingest of the enabled cameras."""
        await self.recover()
        if self.settings.media.always_on:
            async with self.db.session() as s:
                cameras = (await s.exec(select(Camera).where(Camera.enabled == True))).all()  # noqa: E712
            for cam in cameras:
                try:
                    await self.pipeline(cam)
                except ValtError as err:
                    # One misconfigured camera (driver removed or disabled, settings no longer
                    # valid) must not keep the others, or the server, from starting.
                    log.error("camera %s (%s) cannot start: %s", cam.name, cam.driver, err.message)
                    await self._set_camera_error(cam.id, err.message)
        self._disk_task = asyncio.create_task(self._watch_disk())
        self._status_task = asyncio.create_task(self._save_statuses())
        self._reaper = asyncio.create_task(self._reap_live())
        self.started = True

    async def stop(self) -> None:
        """Stop recordings cleanly (what they have stays playable) and then ingest."""
        if self._disk_task:
            self._disk_task.cancel()
        if self._status_task:
            self._status_task.cancel()
        if self._reaper:
            self._reaper.cancel()
        for camera_id in list(self.live_streams):
            await self._stop_live(camera_id)
        for task in self._failure_stops.values():
            task.cancel()
        for recording_id in list(self.sessions):
            try:
                await self.stop_recording(recording_id, reason="server shutdown")
            except Exception as err:  # noqa: BLE001 - the next start recovers it as interrupted
                log.error("recording %s could not be stopped cleanly: %s", recording_id, err)
        for pipe in self.pipelines.values():
            await pipe.stop()
        self.pipelines.clear()
        self.started = False

    async def pipeline(self, camera: Camera) -> CameraPipeline:
        """The camera's pipeline, started on first use."""
        pipe = self.pipelines.get(camera.id)
        if pipe is None:
            driver = self.ctx.cameras.driver(camera)
            camera_id = camera.id

            async def on_status(status: str, previous: str) -> None:
                await self._camera_status(camera_id, status, previous)

            pipe = CameraPipeline(
                driver, name=camera.name, profile=self.settings.media.profile,
                no_frames_after_s=self.settings.media.no_frames_after_s,
                reconnect_max_s=self.settings.media.reconnect_max_s, on_status=on_status,
            )
            self.pipelines[camera_id] = pipe
            await pipe.start()
        return pipe

    # --- live view -------------------------------------------------------------------------

    async def live_stream(self, camera_id: int) -> LiveFragmenter:
        """The camera's shared live stream, started on first use."""
        async with self._live_lock:
            stream = self.live_streams.get(camera_id)
            if stream is None:
                async with self.db.session() as s:
                    camera = await s.get(Camera, camera_id)
                if camera is None:
                    raise NotFound(f"no camera {camera_id}")
                if not camera.enabled:
                    raise CameraDisabled(f"camera {camera.name!r} is disabled")
                stream = LiveFragmenter(await self._live_source(camera))
                stream.start()
                self.live_streams[camera_id] = stream
            return stream

    async def still(self, camera: Camera) -> bytes:
        """A JPEG of the camera's newest keyframe (waits up to a few seconds for one)."""
        pipe = await self.pipeline(camera)
        found = await _poll(pipe.last_keyframe, LIVE_PROBE_S)
        if found is None:
            raise CameraUnreachable(f"camera {camera.name!r} sent no picture within {LIVE_PROBE_S:g} s "
                                    f"({pipe.status})")
        video, keyframe = found
        return await asyncio.to_thread(jpeg_from_keyframe, video, keyframe)

    async def _live_source(self, camera: Camera) -> CameraPipeline:
        """The pipeline live view reads: the recorded one, unless a browser cannot play it.

        Browsers play H.264. When the recorded stream is something else (H.265) and the driver
        offers an H.264 ``sub`` stream, viewers get that instead of a transcode: no encoder
        running, at the cost of a smaller picture. The sub pipeline lives as long as the live
        stream does.
        """
        main = await self.pipeline(camera)
        connected = await _poll(lambda: main.connected, LIVE_PROBE_S)
        video = connected.video if connected is not None else None
        if video is None or video.codec_context.name in BROWSER_VIDEO or main.profile == "sub":
            return main
        try:
            streams = await self.ctx.cameras.call(camera, lambda d: d.streams())
        except ValtError as err:
            log.info("camera %s: cannot list streams for live view (%s); converting instead", camera.name, err)
            return main
        if not any(p.name == "sub" and p.codec in BROWSER_VIDEO for p in streams):
            return main
        sub = CameraPipeline(main.driver, name=f"{camera.name} (live sub)", profile="sub",
                             no_frames_after_s=self.settings.media.no_frames_after_s,
                             reconnect_max_s=self.settings.media.reconnect_max_s)
        await sub.start()
        self.live_pipelines[camera.id] = sub
        log.info("camera %s: live view uses the H.264 sub stream (main is %s)", camera.name,
                 video.codec_context.name)
        return sub

    async def _stop_live(self, camera_id: int) -> None:
        stream = self.live_streams.pop(camera_id, None)
        if stream is not None:
            await stream.stop()
        sub = self.live_pipelines.pop(camera_id, None)
        if sub is not None:
            await sub.stop()

    async def _reap_live(self) -> None:
        # A live stream nobody watched for a while stops (and with it any transcoding).
        while True:
            await asyncio.sleep(2)
            for camera_id, stream in list(self.live_streams.items()):
                if stream.idle_for > IDLE_STOP_S:
                    await self._stop_live(camera_id)

    async def remove_camera(self, camera_id: int) -> None:
        """Stop ingesting a camera (removed, disabled or reconfigured), and its live stream."""
        await self._stop_live(camera_id)
        pipe = self.pipelines.pop(camera_id, None)
        if pipe is not None:
            await pipe.stop()

    async def _set_camera_error(self, camera_id: int, message: str) -> None:
        async with self._status_lock, self.db.session() as s:
            cam = await s.get(Camera, camera_id)
            if cam is not None and cam.status != "error":
                previous = cam.status
                cam.status, cam.status_changed_at = "error", utcnow()
                cam.status_reason = message[:200]
                s.add(cam)
                await s.commit()
                await self.plugins.notify(CameraStatusChanged(camera_id=camera_id, status="error", previous=previous))

    async def _camera_status(self, camera_id: int, status: str, previous: str) -> None:
        # Changes can come quicker than the database writes them: store the state in force
        # now, one write at a time, so the last write always holds the latest state.
        # ``status == previous``: the same status for another reason (the reason is stored, no
        # status change is announced).
        try:
            async with self._status_lock, self.db.session() as s:
                cam = await s.get(Camera, camera_id)
                pipe = self.pipelines.get(camera_id)
                # A report from a pipeline that is being stopped must not hide "disabled".
                if cam is not None and cam.enabled:
                    cam.status = pipe.status if pipe is not None else status
                    cam.status_reason = (pipe.status_reason if pipe is not None else "")[:200]
                    cam.status_changed_at = utcnow()
                    s.add(cam)
                    await s.commit()
        except Exception as err:  # noqa: BLE001 - the database may be down; ingest goes on
            log.warning("camera %s: status %s not stored (stored when the database answers): %s",
                        camera_id, status, err)
            self._status_unsaved.add(camera_id)
        else:
            self._status_unsaved.discard(camera_id)
        if status != previous:
            await self.plugins.notify(CameraStatusChanged(camera_id=camera_id, status=status, previous=previous))

    async def _save_statuses(self) -> None:
        # Statuses that changed while the database was down are stored once it answers again,
        # or a camera lost meanwhile would show "online" for good.
        while True:
            await asyncio.sleep(1.0)
            for camera_id in list(self._status_unsaved):
                pipe = self.pipelines.get(camera_id)
                if pipe is None:
                    self._status_unsaved.discard(camera_id)
                else:
                    await self._camera_status(camera_id, pipe.status, pipe.status)

    # --- recordings ------------------------------------------------------------------------

    async def start_recording(self, room_id: int, author: User | None, name: str = "") -> Recording:
        """Start recording every enabled camera of a room."""
        async with self._lock:
            if any(s.room_id == room_id for s in self.sessions.values()):
                raise Conflict(f"room {room_id} is already being recorded")
            await self._check_free_space()
            async with self.db.session() as s:
                room = await s.get(Room, room_id)
                if room is None:
                    raise NotFound(f"no room {room_id}")
                cameras = (await s.exec(select(Camera).where(Camera.room_id == room_id, Camera.enabled == True)  # noqa: E712
                                        .order_by(Camera.name))).all()
                if not cameras:
                    raise ValidationFailed(f"room {room.name!r} has no enabled camera to record")
                recording = Recording(room_id=room_id, author_id=author.id if author else None,
                                      name=name or f"{room.name} {utcnow():%Y-%m-%d %H:%M}", state="recording")
                s.add(recording)
                await s.flush()
                tracks = []
                for cam in cameras:
                    track = Track(recording_id=recording.id, camera_id=cam.id, camera_name=cam.name,
                                  storage_prefix=f"recordings/{recording.id}/")
                    s.add(track)
                    tracks.append((track, cam))
                await s.commit()
            session = RecordingSession(self, recording)
            for track, cam in tracks:
                session.add_track(track, await self.pipeline(cam))
            self.sessions[recording.id] = session
        await self.plugins.notify(RecordingStarted(recording_id=recording.id, room_id=room_id))
        return recording

    def session_for_room(self, room_id: int) -> RecordingSession | None:
        """The running recording of a room, if any."""
        return next((s for s in self.sessions.values() if s.room_id == room_id), None)

    async def pause_recording(self, recording_id: int) -> None:
        """Pause a running recording."""
        session = self._session(recording_id)
        if session.state != "recording":
            raise Conflict("the recording is not running")
        session.pause()
        await self._set_state(recording_id, "paused")
        await self.plugins.notify(RecordingPaused(recording_id=recording_id))

    async def resume_recording(self, recording_id: int) -> None:
        """Resume a paused recording."""
        session = self._session(recording_id)
        if session.state != "paused":
            raise Conflict("the recording is not paused")
        session.resume()
        await self._set_state(recording_id, "recording")
        await self.plugins.notify(RecordingResumed(recording_id=recording_id))

    async def stop_recording(self, recording_id: int, state: str = "stopped", reason: str = "") -> Recording:
        """Stop a recording: every track's last segment is finished and indexed.

        When the database cannot take the index or the new state, the media is finished all the
        same and :class:`DatabaseError` (503) says so; the recording stays listed as running so
        that stopping it again completes the index.
        """
        session = self._session(recording_id)
        async with session.stop_lock:
            if self.sessions.get(recording_id) is not session:
                raise Conflict(f"recording {recording_id} is not running")
            if not await session.stop(STOP_INDEX_WAIT_S):
                pending = next((t.index_error for t in session.tracks if t.index_error), "")
                raise DatabaseError(f"recording {recording_id} is stopped, but its index is not written yet "
                                    f"(the database fails: {pending}); stop it again once the database is back")
            reason = reason or session.stop_reason
            troubled = [t for t in session.tracks if t.error is not None and t.failed is None]
            try:
                async with self.db.session() as s:
                    rec = await s.get(Recording, recording_id)
                    rec.state = state
                    rec.stopped_at = utcnow()
                    notes = [f"stopped: {reason}"] if reason else []
                    notes += [f"track {t.track_id}: {t.errors} recording error(s), last: {t.error}" for t in troubled]
                    if notes:
                        rec.notes = "\n".join(([rec.notes] if rec.notes else []) + notes)
                    s.add(rec)
                    for t in session.tracks:
                        track = await s.get(Track, t.track_id)
                        if track is not None:
                            track.state = "failed" if t.failed is not None else "stopped"
                            s.add(track)
                    await s.commit()
            except Exception as err:
                if is_transient_db_error(err) and not isinstance(err, DatabaseError):
                    raise DatabaseError(f"recording {recording_id} is stopped, but the database could not "
                                        f"record it: {getattr(err, 'orig', None) or err}") from err
                raise
            self.sessions.pop(recording_id, None)
        await self.plugins.notify(RecordingStopped(recording_id=recording_id, state=state))
        return rec

    def track_failed(self, track: TrackRecorder, reason: str) -> None:
        """A track ended on a failure (its storage refused a write): stop its recording, saying why.

        Retried while the database cannot take it, e.g. SQLite on the same full disk.
        """
        session = self.sessions.get(track.recording_id)
        if session is None or track.recording_id in self._failure_stops:
            return
        why = f"track {track.track_id} ({track.camera_name}): {reason}"
        session.stop_reason = why

        async def stop() -> None:
            try:
                while track.recording_id in self.sessions:
                    try:
                        await self.stop_recording(track.recording_id, reason=why)
                    except Conflict:
                        return  # stopped meanwhile by someone else
                    except Exception as err:  # noqa: BLE001 - try again; the media is safe
                        log.warning("recording %s: stopping after a failure did not complete (%s); retrying",
                                    track.recording_id, err)
                        await asyncio.sleep(FAILED_STOP_RETRY_S)
            finally:
                self._failure_stops.pop(track.recording_id, None)

        log.error("stopping recording %s: %s", track.recording_id, why)
        self._failure_stops[track.recording_id] = asyncio.create_task(stop(), name=f"stop-failed-{track.recording_id}")

    def _session(self, recording_id: int) -> RecordingSession:
        session = self.sessions.get(recording_id)
        if session is None:
            raise Conflict(f"recording {recording_id} is not running")
        return session

    async def _set_state(self, recording_id: int, state: str) -> None:
        async with self.db.session() as s:
            rec = await s.get(Recording, recording_id)
            rec.state = state
            s.add(rec)
            await s.commit()

    # --- disk floor ------------------------------------------------------------------------

    def _floor(self) -> int:
        return int(self.settings.media.min_free_mb * 1024 * 1024)

    async def _check_free_space(self) -> None:
        free = await self.storage.free_bytes()
        if free == 0:
            # With the floor off (0) nothing else would stop a recording that cannot write.
            raise StorageError("storage is full (0 bytes free): free space before recording")
        await self.storage.check()  # a disk that refuses writes (read-only, failing) says so now
        if free is not None and free < self._floor():
            raise StorageError(
                f"storage is nearly full ({free / 2**20:.0f} MiB free, the floor is "
                f"{self.settings.media.min_free_mb:.0f} MiB): free space before recording")

    async def _watch_disk(self) -> None:
        while True:
            await asyncio.sleep(self.settings.media.disk_check_s)
            if not self.sessions:
                continue
            try:
                free = await self.storage.free_bytes()
            except StorageError as err:
                free, why = 0, err.message
            else:
                why = f"storage nearly full: {0 if free is None else free / 2**20:.0f} MiB free"
            if free is not None and free < self._floor():
                for recording_id in list(self.sessions):
                    log.warning("stopping recording %s: %s", recording_id, why)
                    try:
                        await self.stop_recording(recording_id, reason=why)
                    except ValtError as err:
                        log.error("recording %s: %s", recording_id, err.message)
                        continue  # checked again in a moment
                    await self.ctx.audit.record("recording.stopped_disk_full", target_type="recording",
                                                target_id=recording_id, detail={"reason": why})

    # --- recovery and verification ---------------------------------------------------------

    async def recover(self) -> list[int]:
        """After an unclean stop: mark running recordings interrupted, index what their
        unfinished segments hold, close open gaps, and delete unknown unfinished objects."""
        async with self.db.session() as s:
            stale = (await s.exec(select(Recording).where(Recording.state.in_(RUNNING_STATES)))).all()
            stale_ids = [r.id for r in stale]
            open_segments = (await s.exec(select(Segment).where(Segment.complete == False))).all()  # noqa: E712
        known = {seg.key for seg in open_segments}
        adopted: list[Segment] = []
        for key in await self.storage.unfinished("recordings"):
            if key not in known:
                orphan = await self._adopt_segment(key)
                if orphan is not None:
                    adopted.append(orphan)
                else:
                    await self.storage.discard_unfinished(key)
        adopted += await self._adopt_finished_orphans(stale_ids)
        adopted_ids = {seg.id for seg in adopted}
        # In order, so each salvaged segment chains onto the one before it.
        for seg in sorted(open_segments + adopted, key=lambda seg: (seg.track_id, seg.seq)):
            await self.salvage_segment(seg, place_after_previous=seg.id in adopted_ids)
        async with self.db.session() as s:
            for rid in stale_ids:
                rec = await s.get(Recording, rid)
                rec.state = "interrupted"
                rec.stopped_at = rec.stopped_at or utcnow()
                rec.notes = (rec.notes + "\n" if rec.notes else "") + "interrupted: the server stopped unexpectedly"
                s.add(rec)
                tracks = (await s.exec(select(Track).where(Track.recording_id == rid))).all()
                for track in tracks:
                    track.state = "interrupted"
                    s.add(track)
                    last = (await s.exec(select(Segment).where(Segment.track_id == track.id, Segment.complete == True)  # noqa: E712
                                         .order_by(Segment.seq.desc()).limit(1))).first()
                    end = (last.start_s + last.duration_s) if last else 0.0
                    for gap in (await s.exec(select(Gap).where(Gap.track_id == track.id, Gap.end_s == None))).all():  # noqa: E711
                        gap.end_s = max(gap.start_s, end)
                        s.add(gap)
            await s.commit()
        async with self.db.session() as s:
            for clip in (await s.exec(select(Clip).where(Clip.state.in_(("queued", "running"))))).all():
                clip.state, clip.finished_at = "failed", utcnow()
                clip.error = "interrupted: the server stopped; ask again"
                s.add(clip)
            await s.commit()
        for rid in stale_ids:
            log.warning("recording %s was interrupted; its segments were recovered", rid)
            await self.plugins.notify(RecordingStopped(recording_id=rid, state="interrupted"))
        return stale_ids

    async def _adopt_segment(self, key: str) -> Segment | None:
        # A segment started while the database was down has no index row yet: if its key names
        # a track we know, it is that track's media (flushed, so kept), not garbage.
        parsed = parse_segment_key(key)
        if parsed is None:
            return None
        recording_id, track_id, seq = parsed
        async with self.db.session() as s:
            track = await s.get(Track, track_id)
            if track is None or track.recording_id != recording_id:
                return None
            if (await s.exec(select(Segment).where(Segment.track_id == track_id, Segment.seq == seq))).first():
                return None
            row = Segment(track_id=track_id, seq=seq, key=key, start_s=0.0, complete=False)
            s.add(row)
            await s.commit()
        log.warning("segment %s had no index row (written while the database was down): indexing it", key)
        return row

    async def _adopt_finished_orphans(self, recording_ids: list[int]) -> list[Segment]:
        # Segments finished while the database was down are whole objects without a row: look
        # for the keys the recorder would have used, between and just after the indexed ones.
        found: list[Segment] = []
        async with self.db.session() as s:
            tracks = ((await s.exec(select(Track).where(Track.recording_id.in_(recording_ids)))).all()
                      if recording_ids else [])
            seqs = {t.id: set((await s.exec(select(Segment.seq).where(Segment.track_id == t.id))).all())
                    for t in tracks}
        for track in tracks:
            seq, last = 0, max(seqs[track.id], default=0)
            while True:
                seq += 1
                if seq in seqs[track.id]:
                    continue
                key = await self._existing_key(track, seq)
                if key is not None:
                    row = await self._adopt_segment(key)
                    if row is not None:
                        found.append(row)
                elif seq > last:
                    break
        return found

    async def _existing_key(self, track: Track, seq: int) -> str | None:
        for ext in ("mp4", "mov"):
            key = segment_key(track.recording_id, track.id, seq, ext)
            try:
                await self.storage.size(key)
            except NotFound:
                continue
            return key
        return None

    async def salvage_segment(self, seg: Segment, place_after_previous: bool = False) -> None:
        """Index an unfinished segment as the whole fragments its object holds.

        Used after a crash and after a failed write; a segment with no whole fragment is
        dropped from the index (there is no media in it to keep). The object is its unfinished
        write or, when that was finished but never indexed (database down), the object itself.
        ``place_after_previous``: its start was never indexed; it follows the segment before.
        """
        await self.storage.salvage(seg.key)
        try:
            data = b"".join([c async for c in self.storage.read(seg.key)])
        except NotFound:
            data = b""
        good, fragments = playable_length(data)
        async with self.db.session() as s:
            row = await s.get(Segment, seg.id)
            if good == 0 or fragments == 0:
                await self.storage.delete(seg.key)
                await s.delete(row)
                await s.commit()
                return
            if good < len(data):
                # Drop the fragment torn by the crash: rewrite the object with whole ones only.
                data = data[:good]
                writer = await self.storage.open_writer(seg.key)
                try:
                    await writer.write(data)
                    await writer.close()
                except BaseException:
                    # Drop the copy, not the object: it keeps every byte it had (the next
                    # recovery tries again) instead of a failed rewrite replacing it later.
                    await writer.abort()
                    raise
            prev = (await s.exec(select(Segment).where(Segment.track_id == seg.track_id, Segment.seq < seg.seq,
                                                       Segment.complete == True)  # noqa: E712
                                 .order_by(Segment.seq.desc()).limit(1))).first()
            if place_after_previous and prev is not None:
                row.start_s = prev.start_s + prev.duration_s
            row.bytes = len(data)
            row.sha256 = hashlib.sha256(data).hexdigest()
            row.chain_hash = chain_hash(prev.chain_hash if prev else "", row.sha256)
            row.duration_s = await asyncio.to_thread(_media_duration, data)
            row.complete = True
            s.add(row)
            await s.commit()

    async def verify(self, recording_id: int) -> VerifyReport:
        """Re-hash every segment of a recording and check the chains and the sequence."""
        report = VerifyReport(recording_id)
        async with self.db.session() as s:
            rec = await s.get(Recording, recording_id)
            if rec is None:
                raise NotFound(f"no recording {recording_id}")
            tracks = (await s.exec(select(Track).where(Track.recording_id == recording_id).order_by(Track.id))).all()
            per_track = {t.id: (await s.exec(select(Segment).where(Segment.track_id == t.id)
                                             .order_by(Segment.seq))).all()
                         for t in tracks}
        if not tracks:
            report.problems.append("the recording has no tracks: nothing was recorded")
        for track in tracks:
            chain = ""
            expected_seq = 1
            if not per_track[track.id]:
                # Nothing to check is not "intact": a track that should hold media holds none.
                report.problems.append(f"track {track.id} ({track.camera_name}): no segments, nothing was recorded")
            for seg in per_track[track.id]:
                where = f"track {track.id} ({track.camera_name}) segment {seg.seq}"
                if seg.seq != expected_seq:
                    report.problems.append(f"track {track.id}: segment {expected_seq} is missing from the index")
                expected_seq = seg.seq + 1
                if not seg.complete:
                    report.problems.append(f"{where}: never finished")
                    continue
                digest = hashlib.sha256()
                try:
                    async for chunk in self.storage.read(seg.key):
                        digest.update(chunk)
                except NotFound:
                    report.problems.append(f"{where}: file {seg.key} is missing")
                    chain = chain_hash(chain, seg.sha256)
                    continue
                report.segments += 1
                if digest.hexdigest() != seg.sha256:
                    report.problems.append(f"{where}: content changed (SHA-256 differs)")
                chain = chain_hash(chain, seg.sha256)
                if chain != seg.chain_hash:
                    report.problems.append(f"{where}: hash chain broken (a segment before it was removed or altered)")
        return report



async def _poll(get: Callable[[], T | None], timeout_s: float) -> T | None:
    """``get()`` once it is not ``None``, checked every 50 ms for up to ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (value := get()) is None and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return value

def _media_duration(data: bytes) -> float:
    import io

    import av

    with av.open(io.BytesIO(data)) as f:
        video = f.streams.video[0]
        first = last = None
        step = 0.0
        for packet in f.demux(video):
            if packet.dts is None:
                continue
            t = float(packet.dts * packet.time_base)
            first = t if first is None else first
            last = t
            step = float(packet.duration * packet.time_base) if packet.duration else step
        return 0.0 if first is None else (last - first + step)
