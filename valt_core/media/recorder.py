"""Recording a room: one track per camera, each cut into indexed, hash-chained segments.

A :class:`RecordingSession` owns the recording's clock (paused time is taken out) and its
:class:`TrackRecorder` tasks. Each track consumes its camera pipeline, starts segments at
keyframes, writes them through the storage backend, and indexes every finished segment (times,
bytes, SHA-256 and a chain hash) in the database. A camera lost mid-recording becomes a gap.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..db.models import Gap, Recording, Segment, Track
from .pipeline import CameraPipeline, Connected, MediaPacket
from .segments import SegmentWriter, container_for

if TYPE_CHECKING:
    from .engine import MediaEngine

log = logging.getLogger(__name__)


def chain_hash(previous: str, sha256: str) -> str:
    """The chain value of a segment: SHA-256 over the previous chain value and its own hash."""
    return hashlib.sha256(f"{previous}:{sha256}".encode()).hexdigest()


def segment_key(recording_id: int, track_id: int, seq: int, ext: str) -> str:
    """Storage key of a segment."""
    return f"recordings/{recording_id}/track-{track_id}/{seq:06d}.{ext}"


@dataclass
class Control:
    """A command for a track task, queued among its packets: pause, stop or lost."""

    kind: str


class RecordingClock:
    """Maps pipeline time (monotonic seconds) to recording time, with paused time removed."""

    def __init__(self) -> None:
        self.started_at = time.monotonic()
        self.paused_total = 0.0
        self.paused_since: float | None = None

    def rec_time(self, t: float) -> float:
        """Seconds into the recording of the instant ``t`` (never below zero)."""
        return max(0.0, t - self.started_at - self.paused_total)

    def now(self) -> float:
        """Recording time now (frozen while paused)."""
        if self.paused_since is not None:
            return self.rec_time(self.paused_since)
        return self.rec_time(time.monotonic())

    def pause(self) -> None:
        """Stop the clock."""
        if self.paused_since is None:
            self.paused_since = time.monotonic()

    def resume(self) -> None:
        """Run the clock again; the pause is not counted."""
        if self.paused_since is not None:
            self.paused_total += time.monotonic() - self.paused_since
            self.paused_since = None


class TrackRecorder:
    """Records one camera's pipeline into the segments of one track."""

    def __init__(self, engine: "MediaEngine", recording_id: int, track: Track, pipeline: CameraPipeline,
                 clock: RecordingClock) -> None:
        self.engine = engine
        self.recording_id = recording_id
        self.track_id: int = track.id  # type: ignore[assignment]
        self.pipeline = pipeline
        self.clock = clock
        self.media = engine.settings.media
        self.paused = False
        self.seq = 0
        self.chain = ""
        self.connected: Connected | None = None
        self.segment: SegmentWriter | None = None
        self.segment_row: Segment | None = None
        self.last_video_s: float | None = None
        self.last_packet_at = time.monotonic()
        self.open_gap: Gap | None = None
        self.lost = False
        self.error: BaseException | None = None
        self.sub = pipeline.subscribe(maxsize=20000, from_gop=False)
        self.task = asyncio.create_task(self._run(), name=f"track-{self.track_id}")

    def send(self, kind: str) -> None:
        """Queue a control command after the packets already received."""
        self.sub.items.append(Control(kind))
        self.sub.ready.set()

    async def _run(self) -> None:
        try:
            while True:
                event = await self.sub.get()
                if isinstance(event, MediaPacket):
                    await self._packet(event)
                elif isinstance(event, Connected):
                    if self.connected is not None and event.generation != self.connected.generation:
                        await self._close_segment()
                    self.connected = event
                elif event.kind == "pause":
                    self.paused = True
                    self.last_video_s = None  # paused time is no gap
                    await self._close_segment()
                elif event.kind == "resume":
                    self.paused = False
                    self.last_packet_at = time.monotonic()
                elif event.kind == "lost":
                    await self._camera_lost()
                elif event.kind == "stop":
                    await self._close_segment()
                    await self._end_gap(self.clock.now())
                    return
        except Exception as err:  # noqa: BLE001 - reported through the session
            self.error = err
            log.exception("track %s failed", self.track_id)
            if self.segment is not None:
                await self.segment.abort()
                self.segment = None
        finally:
            self.pipeline.unsubscribe(self.sub)

    async def _packet(self, mp: MediaPacket) -> None:
        if self.paused:
            return
        self.last_packet_at = time.monotonic()
        starts_gop = mp.kind == "video" and mp.keyframe
        if self.segment is None:
            if not starts_gop or self.connected is None or mp.generation != self.connected.generation:
                return  # a segment must begin with a keyframe
            await self._open_segment(mp)
        elif starts_gop and self.segment.duration_s >= self.media.segment_seconds:
            await self._close_segment()
            await self._open_segment(mp)
        if mp.kind == "video":
            if self.last_video_s is not None and mp.dts_s - self.last_video_s > self.media.gap_after_s:
                # A hole the watchdog did not see (e.g. a short drop between two checks).
                await self._record_gap(self.last_video_s, mp.dts_s)
            self.last_video_s = mp.dts_s
        assert self.segment is not None
        await self.segment.write(mp)

    async def _open_segment(self, first: MediaPacket) -> None:
        assert self.connected is not None
        start = self.clock.rec_time(first.dts_s)
        if self.open_gap is not None:
            await self._end_gap(start)
        self.lost = False
        self.seq += 1
        _fmt, ext = container_for(self.connected)
        key = segment_key(self.recording_id, self.track_id, self.seq, ext)
        # The index row exists before any byte is written, so recovery after a crash finds
        # every object the recorder ever started.
        row = Segment(track_id=self.track_id, seq=self.seq, key=key, start_s=start, complete=False)
        async with self.engine.db.session() as s:
            s.add(row)
            if self.seq == 1:
                track = await s.get(Track, self.track_id)
                if track is not None:
                    v, a = self.connected.video, self.connected.audio
                    track.video_codec = v.codec_context.name
                    track.width, track.height = v.codec_context.width, v.codec_context.height
                    track.audio_codec = a.codec_context.name if a is not None else ""
                    s.add(track)
            await s.commit()
        self.segment_row = row
        writer = await self.engine.storage.open_writer(key)
        self.segment = SegmentWriter(writer, self.connected, first, self.media.fragment_seconds)

    async def _close_segment(self) -> None:
        segment, row = self.segment, self.segment_row
        if segment is None or row is None:
            return
        self.segment = self.segment_row = None
        size = await segment.close()
        digest = segment.sha256.hexdigest()
        self.chain = chain_hash(self.chain, digest)
        async with self.engine.db.session() as s:
            fresh = await s.get(Segment, row.id)
            fresh.duration_s = segment.duration_s
            fresh.bytes = size
            fresh.sha256 = digest
            fresh.chain_hash = self.chain
            fresh.complete = True
            s.add(fresh)
            await s.commit()
        await self.engine.plugins.notify("segment_written", recording_id=self.recording_id,
                                         track_id=self.track_id, segment_id=row.id, key=row.key)

    async def _camera_lost(self) -> None:
        if self.lost or self.paused:
            return
        self.lost = True
        await self._close_segment()
        start = self.clock.rec_time(self.last_video_s) if self.last_video_s is not None else 0.0
        self.last_video_s = None  # the open gap covers the hole: do not count it twice
        gap = Gap(track_id=self.track_id, start_s=start, end_s=None,
                  reason=self.pipeline.last_error or self.pipeline.status)
        async with self.engine.db.session() as s:
            s.add(gap)
            await s.commit()
        self.open_gap = gap

    async def _end_gap(self, end: float) -> None:
        gap, self.open_gap = self.open_gap, None
        if gap is None:
            return
        async with self.engine.db.session() as s:
            fresh = await s.get(Gap, gap.id)
            fresh.end_s = max(end, fresh.start_s)
            s.add(fresh)
            await s.commit()

    async def _record_gap(self, start_t: float, end_t: float) -> None:
        async with self.engine.db.session() as s:
            s.add(Gap(track_id=self.track_id, start_s=self.clock.rec_time(start_t),
                      end_s=self.clock.rec_time(end_t), reason="no video"))
            await s.commit()


class RecordingSession:
    """A running (or paused) recording of a room."""

    def __init__(self, engine: "MediaEngine", recording: Recording) -> None:
        self.engine = engine
        self.recording_id: int = recording.id  # type: ignore[assignment]
        self.room_id = recording.room_id
        self.clock = RecordingClock()
        self.tracks: list[TrackRecorder] = []
        self.state = "recording"
        self._watchdog = asyncio.create_task(self._watch())

    def add_track(self, track: Track, pipeline: CameraPipeline) -> None:
        """Start recording ``pipeline`` into ``track``."""
        self.tracks.append(TrackRecorder(self.engine, self.recording_id, track, pipeline, self.clock))

    async def _watch(self) -> None:
        # Marks a track's camera as lost when nothing arrived for gap_after_s.
        gap_after = self.engine.settings.media.gap_after_s
        while True:
            await asyncio.sleep(min(0.5, gap_after / 2))
            if self.state != "recording":
                continue
            now = time.monotonic()
            for track in self.tracks:
                if not track.lost and now - track.last_packet_at > gap_after:
                    track.send("lost")

    def pause(self) -> None:
        """Pause every track; nothing is recorded until :meth:`resume`."""
        self.clock.pause()
        self.state = "paused"
        for t in self.tracks:
            t.send("pause")

    def resume(self) -> None:
        """Resume every track at its camera's next keyframe."""
        self.clock.resume()
        self.state = "recording"
        for t in self.tracks:
            t.send("resume")

    async def stop(self) -> None:
        """Finish every track's last segment and wait for the tasks."""
        self._watchdog.cancel()
        for t in self.tracks:
            t.send("stop")
        await asyncio.gather(*(t.task for t in self.tracks), return_exceptions=True)
