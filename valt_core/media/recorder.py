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
import hashlib
import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from ..db.models import Gap, Recording, Segment, Track
from ..errors import StorageError
from ..events import SegmentWritten
from .pipeline import CameraPipeline, Connected, LoopInbox, MediaPacket
from .segments import SegmentWriter, container_for

if TYPE_CHECKING:
    from .engine import MediaEngine

log = logging.getLogger(__name__)
#: How soon an index write that failed (database down) is tried again.
INDEX_RETRY_S = 1.0


def chain_hash(previous: str, sha256: str) -> str:
    """The chain value of a segment: SHA-256 over the previous chain value and its own hash."""
    return hashlib.sha256(f"{previous}:{sha256}".encode()).hexdigest()


def segment_key(recording_id: int, track_id: int, seq: int, ext: str) -> str:
    """Storage key of a segment."""
    return f"recordings/{recording_id}/track-{track_id}/{seq:06d}.{ext}"


_SEGMENT_KEY = re.compile(r"recordings/(\d+)/track-(\d+)/(\d+)\.(mp4|mov)")


def parse_segment_key(key: str) -> tuple[int, int, int] | None:
    """(recording id, track id, seq) of a key made by :func:`segment_key`; ``None`` otherwise."""
    m = _SEGMENT_KEY.fullmatch(key)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


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
    """Records one camera's pipeline into the segments of one track.

    Methods named ``on_*`` run in the ingest thread; the rest on the event loop. Both sides
    change the segment state only under ``self.lock``.
    """

    def __init__(self, engine: "MediaEngine", recording_id: int, track: Track, pipeline: CameraPipeline,
                 clock: RecordingClock) -> None:
        self.engine = engine
        self.recording_id = recording_id
        self.track_id: int = track.id  # type: ignore[assignment]
        self.camera_name = track.camera_name
        self.pipeline = pipeline
        self.clock = clock
        self.media = engine.settings.media
        self.lock = threading.Lock()
        self.paused = False
        self.stopped = False
        self.lost = False
        self.gap_open = False
        self.seq = 0
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
        #: The last index write that failed (database trouble), cleared when one succeeds.
        self.index_error: str | None = None
        self._events: collections.deque = collections.deque()
        self._wake = asyncio.Event()
        self._wake_pending = False
        self._ops: collections.deque = collections.deque()
        self._ops_ready = asyncio.Event()
        self._loop_thread = threading.get_ident()
        self._inbox = LoopInbox.for_loop(asyncio.get_running_loop())
        self.task = asyncio.create_task(self._write(), name=f"track-{self.track_id}")
        self.index_task = asyncio.create_task(self._index(), name=f"track-{self.track_id}-index")
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
        self.last_packet_at = time.monotonic()
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
            self._emit(("gap_close", start))
        self.lost = False
        self.seq += 1
        _fmt, ext = container_for(self.connected)
        v, a = self.connected.video, self.connected.audio
        codecs = (v.codec_context.name, v.codec_context.width, v.codec_context.height,
                  a.codec_context.name if a is not None else "")
        self.segment = SegmentWriter(self.connected, first, self.media.fragment_seconds)
        self._emit(("open", self.seq, segment_key(self.recording_id, self.track_id, self.seq, ext), start, codecs))
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
            self.gap_open = True
            self._emit(("gap_open", start, self.pipeline.last_error or self.pipeline.status))

    async def stop(self, index_timeout_s: float | None = None) -> bool:
        """Finish the last segment, close any open gap, and wait until all is indexed.

        Returns False when the index did not catch up within ``index_timeout_s`` (the database
        is down): it goes on trying in the background, and a later call waits again.
        """
        self.pipeline.remove_sink(self)
        with self.lock:
            if not self.task.done():
                self.stopped = True
                self._close_segment()
                if self.gap_open:
                    self.gap_open = False
                    self._emit(("gap_close", self.clock.now()))
                self._emit(("done",))
        await asyncio.gather(self.task, return_exceptions=True)
        done, _ = await asyncio.wait([self.index_task], timeout=index_timeout_s)
        return bool(done)

    # --- event loop: the media writer and the indexer ---------------------------------------

    async def _write(self) -> None:
        # Writes and flushes media in order. It never waits for the database: a database that
        # is down (or a full disk under SQLite) must not stop media reaching the storage.
        writer: Any = None
        seq = 0
        open_seq = 0  # the segment asked for in the index and not finished
        kept = 0  # bytes of the open segment written *and* flushed
        chain = ""
        while True:
            await self._wake.wait()
            with self.lock:
                self._wake.clear()
                self._wake_pending = False
                events, self._events = self._events, collections.deque()
            for event in events:
                kind = event[0]
                if kind == "done":
                    self._index_op(("done",))
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
                        _k, seq, key, start, codecs = event
                        # The index row is asked for before any byte is written, so recovery
                        # after a crash finds every object the recorder started (while the
                        # database answers).
                        self._index_op(("open", seq, key, start, codecs))
                        open_seq, kept = seq, 0
                        writer = await self.engine.storage.open_writer(key)
                    elif kind == "close":
                        _k, duration, digest = event
                        if writer is None:
                            continue
                        size = await writer.close()
                        writer, open_seq = None, 0
                        chain = chain_hash(chain, digest)
                        self._index_op(("close", seq, duration, size, digest, chain))
                    else:  # gaps: index only
                        self._index_op(event)
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
                            self._index_op(("salvage", open_seq))
                    writer, open_seq = None, 0
                    self.engine.track_failed(self, reason)

    def _fail(self, reason: str) -> None:
        with self.lock:
            self.failed = self.error = reason
            self.errors += 1
            self.stopped = True
            segment, self.segment = self.segment, None
        if segment is not None:
            segment.abort()

    def _index_op(self, op: tuple) -> None:
        self._ops.append(op)
        self._ops_ready.set()

    async def _index(self) -> None:
        # Index rows in order; a database that fails is retried each second, so the index
        # catches up when it returns while the media went on being written.
        db = self.engine.db
        gap_id: int | None = None
        while True:
            if not self._ops:
                self._ops_ready.clear()
                await self._ops_ready.wait()
                continue
            op = self._ops[0]
            kind = op[0]
            if kind == "done":
                return
            try:
                async with db.session() as s:
                    if kind == "open":
                        _k, seq, key, start, (vcodec, width, height, acodec) = op
                        if await self._segment_row(s, seq) is None:  # not if a retry already made it
                            s.add(Segment(track_id=self.track_id, seq=seq, key=key, start_s=start, complete=False))
                        if seq == 1:
                            track = await s.get(Track, self.track_id)
                            track.video_codec, track.width, track.height = vcodec, width, height
                            track.audio_codec = acodec
                            s.add(track)
                        await s.commit()
                    elif kind == "close":
                        _k, seq, duration, size, digest, chain = op
                        row = await self._segment_row(s, seq)
                        row.duration_s, row.bytes, row.sha256 = duration, size, digest
                        row.chain_hash, row.complete = chain, True
                        s.add(row)
                        await s.commit()
                        await self.engine.plugins.notify(SegmentWritten(
                            recording_id=self.recording_id, track_id=self.track_id, segment_id=row.id, key=row.key))
                    elif kind == "salvage":
                        row = await self._segment_row(s, op[1])
                        if row is not None:
                            await self.engine.salvage_segment(row)
                    elif kind == "gap_open":
                        gap = Gap(track_id=self.track_id, start_s=op[1], end_s=None, reason=op[2])
                        s.add(gap)
                        await s.commit()
                        gap_id = gap.id
                    elif kind == "gap_close" and gap_id is not None:
                        gap = await s.get(Gap, gap_id)
                        gap.end_s = max(op[1], gap.start_s)
                        s.add(gap)
                        await s.commit()
                        gap_id = None
                    elif kind == "gap":
                        s.add(Gap(track_id=self.track_id, start_s=op[1], end_s=op[2], reason=op[3]))
                        await s.commit()
            except Exception as err:  # noqa: BLE001 - database trouble, or a bug: say so, go on
                transient = is_transient_db_error(err)
                log.warning("track %s: indexing %s failed%s: %s", self.track_id, kind,
                            ", retrying" if transient else "", err)
                with self.lock:
                    self.index_error = f"{type(err).__name__}: {err}"
                if transient:
                    await asyncio.sleep(INDEX_RETRY_S)
                    continue
            else:
                self.index_error = None
            self._ops.popleft()

    async def _segment_row(self, s: Any, seq: int) -> Segment | None:
        return (await s.exec(select(Segment).where(Segment.track_id == self.track_id, Segment.seq == seq))).first()


def is_transient_db_error(err: BaseException) -> bool:
    """True for a database that is down or full (worth retrying), not for a bad statement."""
    from sqlalchemy import exc as sa_exc

    from ..errors import DatabaseError

    if isinstance(err, (DatabaseError, OSError, TimeoutError, sa_exc.OperationalError, sa_exc.InterfaceError)):
        return True
    return isinstance(err, sa_exc.DBAPIError) and bool(err.connection_invalidated)


class RecordingSession:
    """A running (or paused) recording of a room."""

    def __init__(self, engine: "MediaEngine", recording: Recording) -> None:
        self.engine = engine
        self.recording_id: int = recording.id  # type: ignore[assignment]
        self.room_id = recording.room_id
        self.clock = RecordingClock()
        self.tracks: list[TrackRecorder] = []
        self.state = "recording"
        #: Why the engine ended the recording on its own (a track failed); noted when it stops.
        self.stop_reason = ""
        self.stop_lock = asyncio.Lock()
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

    async def stop(self, index_timeout_s: float | None = None) -> bool:
        """Finish every track's last segment and wait until everything is indexed.

        False when some index writes were still pending after ``index_timeout_s``.
        """
        self._watchdog.cancel()
        self.state = "stopping"
        return all(await asyncio.gather(*(t.stop(index_timeout_s) for t in self.tracks)))
