"""Recording a room: one track per camera, each cut into indexed, hash-chained segments.

A :class:`RecordingSession` owns the recording's clock (paused time is taken out) and its
:class:`TrackRecorder` objects. A track recorder is a :class:`ThreadSink` of its camera's
pipeline: in the ingest thread it starts segments at keyframes and muxes every packet (stream
copy), which costs about what the copy itself costs. What needs I/O goes, in order, to two tasks
on the event loop: a writer (each finished fragment written and flushed, the hash chain) and an
indexer (the database rows, retried while the database fails, so media never waits for it). A
camera lost mid-recording becomes a gap; a write the storage refuses ends the track as failed,
keeping what was flushed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Any

from ..bus.messages import Event, GapClosed, GapOpened, SegmentClosed, SegmentOpened, TrackSpec
from ..errors import StorageError
from .pipeline import CameraPipeline, Connected, LoopInbox, MediaPacket
from .segments import SegmentWriter, container_for
from .ticker import Ticker

if TYPE_CHECKING:
    from .engine import MediaEngine

log = logging.getLogger(__name__)


def segment_key(recording_id: int, track_id: int, seq: int, ext: str, server: str = "local") -> str:
    """Storage key of a segment; a media server other than ``local`` puts its name in it.

    With the name in the key, two media servers can never write the same object, even the one
    that lost a camera to another and did not know it yet (it was cut off from the bus).
    """
    suffix = "" if server == "local" else f"-{server}"
    return f"recordings/{recording_id}/track-{track_id}/{seq:06d}{suffix}.{ext}"


_SEGMENT_KEY = re.compile(r"recordings/(\d+)/track-(\d+)/(\d+)(?:-[A-Za-z0-9_-]+)?\.(mp4|mov)")


def parse_segment_key(key: str) -> tuple[int, int, int] | None:
    """(recording id, track id, seq) of a key made by :func:`segment_key`; ``None`` otherwise."""
    m = _SEGMENT_KEY.fullmatch(key)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


class RecordingClock:
    """Maps pipeline time (monotonic seconds) to recording time, with paused time removed."""

    def __init__(self, elapsed_s: float = 0.0) -> None:
        # ``elapsed_s``: the recording ran that long already (on another media server).
        self.started_at = time.monotonic() - elapsed_s
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
    """Records one camera's pipeline into the segments of one track.

    Methods named ``on_*`` run in the ingest thread; the rest on the event loop. Both sides
    change the segment state only under ``self.lock``.
    """

    def __init__(self, engine: "MediaEngine", recording_id: int, track: TrackSpec, pipeline: CameraPipeline,
                 clock: RecordingClock) -> None:
        self.engine = engine
        self.recording_id = recording_id
        self.track_id = track.track_id
        self.camera_name = track.camera.name
        self.pipeline = pipeline
        self.clock = clock
        self.media = engine.settings.media
        self.lock = threading.Lock()
        self.paused = False
        self.stopped = False
        self.lost = False
        self.gap_open = False
        self.gap_start = 0.0
        self.server = engine.name
        self.seq = track.first_seq - 1
        # Recording time where the current segment starts, and the earliest the next may start.
        self.segment_start = 0.0
        self.next_start_min = 0.0
        self.connected: Connected | None = None
        self.segment: SegmentWriter | None = None
        self.last_video_s: float | None = None
        self.last_packet_at = time.monotonic()
        self.error: str | None = None
        self.errors = 0
        #: Why the track ended early (a storage write failed); ``None`` while it is fine.
        self.failed: str | None = None
        self._events: collections.deque = collections.deque()
        self._wake = asyncio.Event()
        self._wake_pending = False
        self._loop_thread = threading.get_ident()
        self._inbox = LoopInbox.for_loop(asyncio.get_running_loop())
        if track.gap_from_s is not None:
            # Taken over from a media server that was lost: the outage is a gap until the first
            # segment here, and nothing may start before what the other server recorded.
            self.gap_open, self.gap_start = True, track.gap_from_s
            self.next_start_min = track.gap_from_s
            self._emit(("gap_open", track.gap_from_s, track.gap_reason or "media server lost"))
        self.task = asyncio.create_task(self._write(), name=f"track-{self.track_id}")
        pipeline.add_sink(self)

    # --- ingest thread ---------------------------------------------------------------------

    def on_connected(self, connected: Connected) -> None:
        """A new connection may bring other stream parameters: start a new segment."""
        with self.lock:
            if self.connected is not None and connected.generation != self.connected.generation:
                self._close_segment()
            self.connected = connected

    def on_packet(self, mp: MediaPacket) -> None:
        """Mux one packet (stream copy) into the current segment."""
        with self.lock:
            if self.paused or self.stopped:
                return
            try:
                self._packet(mp)
            except Exception as err:  # noqa: BLE001 - a bad packet must not stop ingest
                # Keep what the segment has, and start afresh at the next keyframe.
                log.warning("track %s: muxing failed, new segment at the next keyframe: %s", self.track_id, err)
                self.error = f"{type(err).__name__}: {err}"
                self.errors += 1
                segment, self.segment = self.segment, None
                if segment is not None:
                    segment.abort()
                    self.next_start_min = self.segment_start + segment.duration_s
                    self._emit(("close", segment.duration_s, segment.sha256.hexdigest()))

    def _packet(self, mp: MediaPacket) -> None:
        # The pipeline stamped its arrival on the same clock just now: no second clock read.
        self.last_packet_at = mp.arrived or time.monotonic()
        starts_gop = mp.kind == "video" and mp.keyframe
        segment = self.segment
        if segment is None:
            if not starts_gop or self.connected is None or mp.generation != self.connected.generation:
                return  # a segment must begin with a keyframe
            segment = self._open_segment(mp)
        elif starts_gop and segment.duration_s >= self.media.segment_seconds:
            self._close_segment()
            segment = self._open_segment(mp)
        if mp.kind == "video":
            last = self.last_video_s
            if last is not None and mp.dts_s - last > self.media.gap_after_s:
                # A hole the watchdog did not see (e.g. a short drop between two checks).
                self._emit(("gap", self.clock.rec_time(last), self.clock.rec_time(mp.dts_s), "no video"))
            self.last_video_s = mp.dts_s
        data = segment.write(mp)
        if data:
            self._emit(("data", data))

    # --- either side, under self.lock ------------------------------------------------------

    def _open_segment(self, first: MediaPacket) -> SegmentWriter:
        assert self.connected is not None
        # Never before the end of the previous segment: the first segment's start is clamped to
        # 0 when its keyframe was stamped just before the recording began, and the next must
        # not overlap it, or clips across the join would squeeze frames together.
        start = max(self.clock.rec_time(first.dts_s), self.next_start_min)
        self.segment_start = start
        if self.gap_open:
            self.gap_open = False
            self._emit(("gap_close", self.gap_start, start))
        self.lost = False
        self.seq += 1
        _fmt, ext = container_for(self.connected)
        v, a = self.connected.video, self.connected.audio
        codecs = (v.codec_context.name, v.codec_context.width, v.codec_context.height,
                  a.codec_context.name if a is not None else "")
        self.segment = SegmentWriter(self.connected, first, self.media.fragment_seconds)
        self._emit(("open", self.seq, segment_key(self.recording_id, self.track_id, self.seq, ext, self.server),
                    start, codecs))
        return self.segment

    def _close_segment(self) -> None:
        segment, self.segment = self.segment, None
        if segment is None:
            return
        data = segment.close()
        if data:
            self._emit(("data", data))
        self.next_start_min = self.segment_start + segment.duration_s
        self._emit(("close", segment.duration_s, segment.sha256.hexdigest()))

    def _emit(self, event: tuple) -> None:
        self._events.append(event)
        if not self._wake_pending:
            self._wake_pending = True
            if threading.get_ident() == self._loop_thread:
                self._wake.set()
            else:
                self._inbox.put(lambda _e: self._wake.set(), None)

    # --- event loop: controls ----------------------------------------------------------------

    def pause(self) -> None:
        """Stop recording at once; the current segment is finished."""
        with self.lock:
            self.paused = True
            self.last_video_s = None  # paused time is no gap
            self._close_segment()

    def resume(self) -> None:
        """Record again from the camera's next keyframe."""
        with self.lock:
            self.paused = False
            self.last_packet_at = time.monotonic()

    def camera_lost(self) -> None:
        """Nothing arrived for a while: finish the segment and open a gap."""
        with self.lock:
            if self.lost or self.paused or self.stopped:
                return
            self.lost = True
            self._close_segment()
            start = self.clock.rec_time(self.last_video_s) if self.last_video_s is not None else 0.0
            self.last_video_s = None  # the open gap covers the hole: do not count it twice
            self.gap_open, self.gap_start = True, start
            self._emit(("gap_open", start, self.pipeline.last_error or self.pipeline.status))

    async def stop(self) -> None:
        """Finish the last segment, close any open gap, and wait until all is written and told."""
        self.pipeline.remove_sink(self)
        with self.lock:
            if not self.task.done():
                self.stopped = True
                self._close_segment()
                if self.gap_open:
                    self.gap_open = False
                    self._emit(("gap_close", self.gap_start, self.clock.now()))
                self._emit(("done",))
        await asyncio.gather(self.task, return_exceptions=True)

    # --- event loop: the media writer and the indexer ---------------------------------------

    async def _write(self) -> None:
        # Writes and flushes media in order, and tells the index what it wrote, through the
        # engine's events: it never waits for the app server or its database.
        writer: Any = None
        seq = 0
        open_seq = 0  # the segment announced and not finished
        open_key = ""
        kept = 0  # bytes of the open segment written *and* flushed
        while True:
            await self._wake.wait()
            with self.lock:
                self._wake.clear()
                self._wake_pending = False
                events, self._events = self._events, collections.deque()
            for event in events:
                kind = event[0]
                if kind == "done":
                    return
                if self.failed is not None and kind in ("data", "open", "close"):
                    continue  # the track ended on a storage failure: no more media (gaps still close)
                try:
                    if kind == "data":
                        if writer is not None:
                            await writer.write(event[1])
                            # A finished fragment: make it durable so a crash keeps it.
                            await writer.flush()
                            kept += len(event[1])
                    elif kind == "open":
                        _k, seq, key, start, (vcodec, width, height, acodec) = event
                        # Announced before any byte is written, so the index knows every object
                        # the recorder started (recovery after a crash finds them by it).
                        self._tell(SegmentOpened(seq=seq, key=key, start_s=start, video_codec=vcodec, width=width,
                                                 height=height, audio_codec=acodec, **self._ids))
                        open_seq, open_key, kept = seq, key, 0
                        writer = await self.engine.storage.open_writer(key)
                    elif kind == "close":
                        _k, duration, digest = event
                        if writer is None:
                            continue
                        size = await writer.close()
                        writer, open_seq = None, 0
                        self._tell(SegmentClosed(seq=seq, duration_s=duration, bytes=size, sha256=digest, **self._ids))
                    elif kind == "gap_open":
                        self._tell(GapOpened(start_s=event[1], reason=event[2], **self._ids))
                    elif kind == "gap_close":
                        self._tell(GapClosed(start_s=event[1], end_s=max(event[2], event[1]), **self._ids))
                    elif kind == "gap":
                        self._tell(GapOpened(start_s=event[1], reason=event[3], **self._ids))
                        self._tell(GapClosed(start_s=event[1], end_s=event[2], **self._ids))
                except (StorageError, OSError) as err:
                    # Keep what is flushed, end the track, and let the engine stop the recording.
                    reason = f"storage write failed: {err.message if isinstance(err, StorageError) else err}"
                    log.error("track %s: %s; keeping the %d bytes flushed of segment %d",
                              self.track_id, reason, kept, seq)
                    self._fail(reason)
                    try:
                        if writer is not None:
                            await writer.abandon(kept)
                    except Exception:  # noqa: BLE001 - recovery at the next start salvages it
                        log.exception("track %s: could not cut segment %d to its flushed bytes", self.track_id, seq)
                    else:
                        if open_seq:
                            # Finished as what was flushed (or dropped from the index if nothing was).
                            await self.engine.salvage(self.recording_id, self.track_id, open_seq, open_key)
                    writer, open_seq = None, 0
                    self.engine.track_failed(self, reason)

    @property
    def _ids(self) -> dict[str, int]:
        return {"recording_id": self.recording_id, "track_id": self.track_id}

    def _tell(self, event: Event) -> None:
        self.engine.events.emit(event)

    def _fail(self, reason: str) -> None:
        with self.lock:
            self.failed = self.error = reason
            self.errors += 1
            self.stopped = True
            segment, self.segment = self.segment, None
        if segment is not None:
            segment.abort()


class RecordingSession:
    """A running (or paused) recording of a room."""

    def __init__(self, engine: "MediaEngine", recording_id: int, room_id: int, elapsed_s: float = 0.0,
                 paused: bool = False) -> None:
        self.engine = engine
        self.recording_id = recording_id
        self.room_id = room_id
        self.clock = RecordingClock(elapsed_s)
        self.tracks: list[TrackRecorder] = []
        self.state = "recording"
        #: Why the engine ended the recording on its own (a track failed); noted when it stops.
        self.stop_reason = ""
        self.stop_lock = asyncio.Lock()
        # Marks a track's camera as lost when nothing arrived for gap_after_s.
        self._gap_after_s = engine.settings.media.gap_after_s
        self._ticker = Ticker.for_loop(min(0.5, self._gap_after_s / 2))
        self._watchdog: int | None = self._ticker.add(self._check_tracks)
        if paused:
            self.clock.pause()
            self.state = "paused"

    def add_track(self, track: TrackSpec, pipeline: CameraPipeline) -> None:
        """Start recording ``pipeline`` into ``track`` (paused if the recording is)."""
        recorder = TrackRecorder(self.engine, self.recording_id, track, pipeline, self.clock)
        if self.state == "paused":
            recorder.pause()
        self.tracks.append(recorder)

    async def drop_track(self, track_id: int) -> None:
        """Stop recording one track here (its camera moved to another media server)."""
        for recorder in [t for t in self.tracks if t.track_id == track_id]:
            await recorder.stop()
            self.tracks.remove(recorder)

    def _check_tracks(self, now: float) -> None:
        # The lost-camera watchdog, called by the shared ticker.
        if self.state != "recording":
            return
        for track in self.tracks:
            if not track.lost and now - track.last_packet_at > self._gap_after_s:
                track.camera_lost()

    def pause(self) -> None:
        """Pause every track; nothing is recorded until :meth:`resume`."""
        self.clock.pause()
        self.state = "paused"
        for t in self.tracks:
            t.pause()

    def resume(self) -> None:
        """Resume every track at its camera's next keyframe."""
        self.clock.resume()
        self.state = "recording"
        for t in self.tracks:
            t.resume()

    def stop_watchdog(self) -> None:
        """Stop watching for lost cameras (the session ends here without a stop)."""
        self._ticker.remove(self._watchdog)
        self._watchdog = None

    async def stop(self) -> None:
        """Finish every track's last segment and wait until everything is written and told."""
        self._ticker.remove(self._watchdog)
        self._watchdog = None
        self.state = "stopping"
        await asyncio.gather(*(t.stop() for t in self.tracks))
