"""The app server's side of the media servers' events: the segment index and camera states.

Events arrive in order from each media server's durable stream, at least once. Each is
written to the database idempotently (a segment by its track and number, a gap by its track
and start), so a delivery repeated after a lost acknowledgement changes nothing. While the
database is down a write fails, the event is delivered again a second later, and the media
server meanwhile goes on recording: the index catches up when the database is back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from .audit import AuditLog
from .bus.base import Bus, Message, Subscription
from .bus.messages import (
    ALL_EVENTS,
    CameraStatus,
    GapClosed,
    GapOpened,
    LiveViewOpened,
    PublishRefused,
    PublishStarted,
    RecordingEnded,
    SegmentClosed,
    SegmentOpened,
    SegmentSalvaged,
    TrackEnded,
    decode,
)
from .db import Database, is_transient_db_error
from .db.models import Camera, Gap, MobileDevice, Recording, Segment, Track, User
from .db.types import utcnow
from .errors import StorageError
from .events import CameraStatusChanged, RecordingStopped, SegmentWritten
from .plugins import PluginHost

if TYPE_CHECKING:
    from .media_control import MediaControl

log = logging.getLogger(__name__)
#: The durable consumer's name: one index for the whole site.
CONSUMER = "valt-index"
#: Gap starts are matched within this (MariaDB keeps floats in single precision).
GAP_MATCH_S = 0.01


def chain_hash(previous: str, sha256: str) -> str:
    """The chain value of a segment: SHA-256 over the previous chain value and its own hash."""
    import hashlib

    return hashlib.sha256(f"{previous}:{sha256}".encode()).hexdigest()


class IndexWriter:
    """Applies the media servers' events to the database (see the module docstring)."""

    def __init__(self, db: Database, plugins: PluginHost, audit: AuditLog, control: "MediaControl") -> None:
        self.db = db
        self.plugins = plugins
        self.audit = audit
        self.control = control
        #: Per media server: (epoch, number of the newest event applied).
        self.applied: dict[str, tuple[str, int]] = {}
        #: The last write that failed (the database is down), until one succeeds.
        self.error: str | None = None
        self._sub: Subscription | None = None
        self._progress = asyncio.Event()

    async def start(self, bus: Bus) -> None:
        """Consume every media server's events."""
        self._sub = await bus.consume_durable(ALL_EVENTS, CONSUMER, self._handle)

    async def stop(self) -> None:
        """Stop consuming (what is not applied is delivered again at the next start)."""
        if self._sub is not None:
            await self._sub.close()

    async def wait_applied(self, server: str, epoch: str, upto: int, timeout_s: float) -> bool:
        """Wait until ``server``'s events of ``epoch`` are applied up to ``upto``; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self._reached(server, epoch, upto):
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), min(left, 0.5))
            except asyncio.TimeoutError:
                pass
        return True

    def _reached(self, server: str, epoch: str, upto: int) -> bool:
        held = self.applied.get(server)
        return upto == 0 or (held is not None and held[0] == epoch and held[1] >= upto)

    async def _handle(self, msg: Message) -> None:
        try:
            event = decode(msg.data)
            server = msg.headers.get("valt-server", "")
            owner = self.control.track_owner(getattr(event, "recording_id", None), getattr(event, "track_id", None))
            if owner is not None and owner != server:
                # A media server that lost the camera to another and did not know it yet (it was
                # cut off from the bus): the track goes on at the new owner, not here.
                log.warning("index: %s of track %s from %s dropped: the track is %s's now",
                            event.kind, getattr(event, "track_id", "?"), server, owner)
            else:
                await self.apply(event, server)
        except Exception as err:
            if is_transient_db_error(err):
                self.error = f"{type(err).__name__}: {getattr(err, 'orig', None) or err}"
                raise  # delivered again in a moment
            # A bug or a message not ours: keep the stream moving, say so.
            log.exception("index: event on %s dropped", msg.subject)
        self.error = None
        server, epoch = msg.headers.get("valt-server", ""), msg.headers.get("valt-epoch", "")
        try:
            self.applied[server] = (epoch, int(msg.headers.get("valt-seq", "0")))
        except ValueError:
            pass
        self._progress.set()

    async def apply(self, event: Any, server: str = "") -> None:
        """Write one event of media server ``server`` to the database (idempotently)."""
        handler = {
            CameraStatus: self._camera_status, SegmentOpened: self._segment_opened,
            SegmentClosed: self._segment_closed, SegmentSalvaged: self._segment_salvaged,
            GapOpened: self._gap_opened, GapClosed: self._gap_closed, TrackEnded: self._track_ended,
            RecordingEnded: self._recording_ended, LiveViewOpened: self._live_view_opened,
            PublishRefused: self._publish_refused, PublishStarted: self._publish_started,
        }.get(type(event))
        if handler is None:
            log.warning("index: no use for %s events", event.kind)
            return
        if isinstance(event, (RecordingEnded, LiveViewOpened, PublishRefused, PublishStarted)):
            await handler(event, server)
        else:
            await handler(event)

    # --- cameras -----------------------------------------------------------------------------

    async def _live_view_opened(self, e: LiveViewOpened, server: str) -> None:
        # A direct opening on a media server is audited like one on this server.
        async with self.db.session() as s:
            user = await s.get(User, e.user_id)
        await self.audit.record("camera.live.open", actor=user, target_type="camera", target_id=e.camera_id,
                                detail={"transport": e.transport, "media_server": server},
                                remote_addr=e.remote_addr)

    async def _publish_refused(self, e: PublishRefused, server: str) -> None:
        # Counted against the device whose revoked key it was; a wrong or missing key names none.
        device_id = None
        async with self.db.session() as s:
            row = (await s.exec(select(MobileDevice).where(MobileDevice.device == e.device))).first() \
                if e.device else None
            if row is not None:
                device_id = row.id
                row.refused_publishes += 1
                row.last_refused_at = utcnow()
                s.add(row)
                await s.commit()
        await self.audit.record("device.publish.refused", target_type="device" if device_id else "",
                                target_id=device_id or "",
                                detail={"reason": e.reason, "transport": e.transport, "media_server": server},
                                remote_addr=e.remote_addr)

    async def _publish_started(self, e: PublishStarted, server: str) -> None:
        async with self.db.session() as s:
            row = (await s.exec(select(MobileDevice).where(MobileDevice.device == e.device))).first()
            if row is not None:
                row.last_published_at, row.last_published_from = utcnow(), e.remote_addr[:64]
                s.add(row)
                await s.commit()
        await self.audit.record("device.publish.start", target_type="device", target_id=row.id if row else "",
                                detail={"transport": e.transport, "media_server": server}, remote_addr=e.remote_addr)

    async def _camera_status(self, e: CameraStatus) -> None:
        async with self.db.session() as s:
            cam = await s.get(Camera, e.camera_id)
            # A report from a pipeline that was being stopped must not hide "disabled".
            if cam is None or not cam.enabled:
                return
            cam.status, cam.status_reason, cam.status_changed_at = e.status, e.reason[:200], utcnow()
            s.add(cam)
            await s.commit()
        if e.status != e.previous:
            await self.plugins.notify(CameraStatusChanged(camera_id=e.camera_id, status=e.status,
                                                          previous=e.previous))

    # --- segments ----------------------------------------------------------------------------

    async def _track(self, s: Any, recording_id: int, track_id: int) -> Track | None:
        track = await s.get(Track, track_id)
        if track is None or track.recording_id != recording_id:
            log.warning("index: recording %s has no track %s; event dropped", recording_id, track_id)
            return None
        return track

    async def _segment_opened(self, e: SegmentOpened) -> None:
        async with self.db.session() as s:
            track = await self._track(s, e.recording_id, e.track_id)
            if track is None:
                return
            if await _segment(s, e.track_id, e.seq) is None:
                s.add(Segment(track_id=e.track_id, seq=e.seq, key=e.key, start_s=e.start_s, complete=False))
            if e.seq == 1 or not track.video_codec:
                track.video_codec, track.width, track.height = e.video_codec, e.width, e.height
                track.audio_codec = e.audio_codec
                s.add(track)
            await s.commit()

    async def _segment_closed(self, e: SegmentClosed) -> None:
        async with self.db.session() as s:
            if await self._track(s, e.recording_id, e.track_id) is None:
                return
            row = await _segment(s, e.track_id, e.seq)
            if row is None:
                log.warning("index: segment %s of track %s closed but never opened; dropped", e.seq, e.track_id)
                return
            if row.complete and row.sha256 == e.sha256:
                return  # delivered twice
            await _finish(s, row, e.bytes, e.sha256, e.duration_s)
            await s.commit()
            segment_id, key = row.id, row.key
            held = await _held(s, e.recording_id)
        if held:
            await self._hold(key)
        await self.plugins.notify(SegmentWritten(recording_id=e.recording_id, track_id=e.track_id,
                                                 segment_id=segment_id, key=key))

    async def _hold(self, key: str) -> None:
        """A segment finished in a recording under legal hold: the store holds it too.

        The hold route holds the segments finished before it (it sets the flag first, then
        lists them); this holds each one finished after, so none slips between the two.
        """
        try:
            await self.control.storage.set_legal_hold(key, True)
        except StorageError as err:
            # Valt's own refusal to delete still protects it; the store's hold is retried by
            # putting the hold on again (PUT .../legal-hold), which holds every segment.
            log.error("index: segment %s of a held recording is not held in the store: %s", key, err.message)

    async def _segment_salvaged(self, e: SegmentSalvaged) -> None:
        async with self.db.session() as s:
            row = await _segment(s, e.track_id, e.seq)
            if e.bytes == 0:
                if row is not None:
                    await s.delete(row)
                    await s.commit()
                return
            if row is None:
                if await self._track(s, e.recording_id, e.track_id) is None:
                    return
                # Started while the database was down: it follows the segment before it.
                prev = await _previous(s, e.track_id, e.seq)
                row = Segment(track_id=e.track_id, seq=e.seq, key=e.key,
                              start_s=(prev.start_s + prev.duration_s) if prev else 0.0, complete=False)
                log.warning("segment %s had no index row (written while the database was down): indexing it", e.key)
            elif row.complete and row.sha256 == e.sha256:
                return
            await _finish(s, row, e.bytes, e.sha256, e.duration_s)
            await s.commit()
            key, held = row.key, await _held(s, e.recording_id)
        if held:
            await self._hold(key)

    async def _gap_opened(self, e: GapOpened) -> None:
        async with self.db.session() as s:
            if await self._track(s, e.recording_id, e.track_id) is None:
                return
            if await _gap(s, e.track_id, e.start_s) is None:
                s.add(Gap(track_id=e.track_id, start_s=e.start_s, end_s=None, reason=e.reason))
                await s.commit()

    async def _gap_closed(self, e: GapClosed) -> None:
        async with self.db.session() as s:
            gap = await _gap(s, e.track_id, e.start_s)
            if gap is None:
                return
            gap.end_s = max(e.end_s, gap.start_s)
            s.add(gap)
            await s.commit()

    # --- recordings --------------------------------------------------------------------------

    async def _track_ended(self, e: TrackEnded) -> None:
        async with self.db.session() as s:
            track = await self._track(s, e.recording_id, e.track_id)
            if track is None:
                return
            track.state = "failed" if e.failed is not None else "stopped"
            s.add(track)
            await s.commit()

    async def _recording_ended(self, e: RecordingEnded, server: str = "") -> None:
        if not await self.control.part_ended(e.recording_id, server, e.cause):
            return  # its tracks on other media servers are still being stopped
        async with self.db.session() as s:
            rec = await s.get(Recording, e.recording_id)
            if rec is None:
                return
            ended_now = rec.state in ("recording", "paused")
            if ended_now:
                rec.state = "stopped"
                rec.stopped_at = utcnow()
                notes = ([f"stopped: {e.reason}"] if e.reason else []) + list(e.notes)
                if notes:
                    rec.notes = "\n".join(([rec.notes] if rec.notes else []) + notes)
                s.add(rec)
                await s.commit()
        if e.cause == "disk_full" and ended_now:
            await self.audit.record("recording.stopped_disk_full", target_type="recording",
                                    target_id=e.recording_id, detail={"reason": e.reason})
        self.control.finished(e.recording_id)
        if ended_now:
            await self.plugins.notify(RecordingStopped(recording_id=e.recording_id, state="stopped"))


async def _held(s: Any, recording_id: int) -> bool:
    """Whether the recording is under legal hold (read after its segment's commit: see ``_hold``)."""
    rec = await s.get(Recording, recording_id, populate_existing=True)
    return bool(rec is not None and rec.legal_hold)


async def _segment(s: Any, track_id: int, seq: int) -> Segment | None:
    return (await s.exec(select(Segment).where(Segment.track_id == track_id, Segment.seq == seq))).first()


async def _previous(s: Any, track_id: int, seq: int) -> Segment | None:
    return (await s.exec(select(Segment).where(Segment.track_id == track_id, Segment.seq < seq,
                                               Segment.complete == True)  # noqa: E712
                         .order_by(Segment.seq.desc()).limit(1))).first()


async def _finish(s: Any, row: Segment, size: int, sha256: str, duration_s: float) -> None:
    # The chain is the index's: each finished segment chains onto the one before it.
    prev = await _previous(s, row.track_id, row.seq)
    row.duration_s, row.bytes, row.sha256 = duration_s, size, sha256
    row.chain_hash, row.complete = chain_hash(prev.chain_hash if prev else "", sha256), True
    s.add(row)


async def _gap(s: Any, track_id: int, start_s: float) -> Gap | None:
    return (await s.exec(select(Gap).where(Gap.track_id == track_id, Gap.start_s >= start_s - GAP_MATCH_S,
                                           Gap.start_s <= start_s + GAP_MATCH_S)
                         .order_by(Gap.id.desc()).limit(1))).first()
