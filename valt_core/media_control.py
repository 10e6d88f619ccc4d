"""The app server's side of recording: the database rows, and commands to the media servers.

:class:`MediaControl` is what the API and the CLI call (``ctx.media``). It makes a recording's
rows, asks the media server that owns each camera to record it, and knows which recordings run
and since when; the media server's events come back through :class:`~valt_core.index.IndexWriter`,
which writes the index and ends recordings. It also recovers after an unclean stop and verifies
recordings, reading the store itself (shared storage, or the one machine of ``valt serve``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlmodel import select

from .audit import AuditLog
from .auth.media_tokens import camera_key, server_live_secret
from .bus.base import Bus, BusUnavailable
from .bus.messages import (
    CameraSpec,
    Command,
    Done,
    IngestCamera,
    LiveKey,
    LiveOpened,
    LiveRevoke,
    OpenLive,
    PauseRecording,
    ReleaseCamera,
    ResumeRecording,
    StartRecording,
    StopRecording,
    TakeStill,
    TrackSpec,
    answer_error,
    command_subject,
    decode,
)
from .cluster import ClusterWatch
from .db import Database, is_transient_db_error
from .db.models import Camera, Clip, Gap, MediaServer, Recording, Room, Segment, Track, User
from .db.types import utcnow
from .errors import CameraDisabled, Conflict, DatabaseError, NotFound, ValidationFailed, ValtError
from .events import CameraStatusChanged, RecordingPaused, RecordingResumed, RecordingStarted, RecordingStopped
from .index import CONSUMER, IndexWriter, chain_hash
from .live_relay import LiveRelays
from .media.clips import ClipService, PlaybackCache
from .media.recorder import RecordingClock, parse_segment_key, segment_key
from .media.salvage import salvage_object
from .media_store import RecordingStore
from .plugins import PluginHost
from .settings import Settings
from .storage.base import StorageBackend

if TYPE_CHECKING:
    from .media.engine import MediaEngine
    from .transports.stream import LiveStream

log = logging.getLogger(__name__)
RUNNING_STATES = ("recording", "paused")
#: How long stopping a recording waits for its index to catch up (the database may be down).
STOP_INDEX_WAIT_S = 5.0
#: How long a command may take on the media server; a still waits for a keyframe first.
COMMAND_TIMEOUT_S = 30.0
#: How long start-up waits for the local media server's salvage to be indexed.
RECOVERY_WAIT_S = 60.0


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


@dataclass
class RunningRecording:
    """A recording running on media servers, as the app server knows it."""

    recording_id: int
    room_id: int
    #: The media server recording each track.
    track_servers: dict[int, str]
    #: The media servers whose part has not ended yet.
    servers: set[str]
    clock: RecordingClock = field(default_factory=RecordingClock)
    state: str = "recording"
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    stop_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def camera_spec(camera: Camera) -> CameraSpec:
    """What a media server needs of a camera row."""
    return CameraSpec(id=camera.id, name=camera.name, driver=camera.driver, config=dict(camera.config or {}),
                      key=camera_key(camera.created_at))


class MediaControl:
    """Recordings, cameras and live streams as the API sees them (see the module docstring)."""

    def __init__(self, settings: Settings, db: Database, storage: StorageBackend, plugins: PluginHost,
                 audit: AuditLog, bus: Bus, engine: "MediaEngine | None" = None, server: str = "local",
                 secret: bytes = b"") -> None:
        self.settings = settings
        self.db = db
        #: Reads segments it lacks from the media server that wrote them (:mod:`valt_core.media_store`).
        self.storage = RecordingStore(storage, self)
        self.plugins = plugins
        self.audit = audit
        self.bus = bus
        self.engine = engine
        self.server = server
        self.index = IndexWriter(db, plugins, audit, self)
        self.cluster = ClusterWatch(self, bus, settings.bus.lease_s)
        self.relays = LiveRelays(bus, self._open_live, self._owner_of)
        #: The app server's secret, from which each media server's direct live key is derived.
        self.secret = secret
        self._background: set[asyncio.Task] = set()
        self.sessions: dict[int, RunningRecording] = {}
        self.playback = PlaybackCache(self)
        self.clips = ClipService(self)
        self._lock = asyncio.Lock()
        self.started = False

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover from an unclean stop, start the local media server, then ingest the cameras."""
        stale = await self._stale_recordings()
        await self._salvage_finished(stale)
        await self.index.start(self.bus)
        if self.engine is not None:
            await self.engine.start()
            # What the media server salvaged is indexed before the recordings are closed.
            await self.index.wait_applied(self.engine.name, self.engine.events.epoch, self.engine.events.last,
                                          RECOVERY_WAIT_S)
        await self._close_stale(stale)
        if self.settings.media.always_on and self.engine is not None:
            # The cameras of other media servers are ingested when those servers are present.
            async with self.db.session() as s:
                cameras = (await s.exec(select(Camera).where(Camera.enabled == True,  # noqa: E712
                                                             Camera.media_server_id == None))).all()  # noqa: E711
            for cam in cameras:
                try:
                    await self.ingest(cam)
                except ValtError as err:
                    # One misconfigured camera (driver removed or disabled, settings no longer
                    # valid) must not keep the others, or the server, from starting.
                    log.error("camera %s (%s) cannot start: %s", cam.name, cam.driver, err.message)
        await self.cluster.start()
        self.started = True

    async def stop(self) -> None:
        """Stop the recordings (their index written while the database answers), then the media server."""
        await self.cluster.stop()
        await self.relays.close()
        for recording_id in list(self.sessions):
            try:
                await self.stop_recording(recording_id, reason="server shutdown")
            except Exception as err:  # noqa: BLE001 - the next start recovers it as interrupted
                log.error("recording %s could not be stopped cleanly: %s", recording_id, err)
        if self.engine is not None:
            await self.engine.stop()
        await self.index.stop()
        self.started = False

    async def command(self, command: Command, server: str | None = None,
                      timeout_s: float = COMMAND_TIMEOUT_S) -> Done | bytes:
        """Send ``command`` to a media server; its answer, or the error it answered as a Valt error."""
        try:
            answer = await self.bus.request(command_subject(server or self.server), command.encode(), timeout_s)
        except BusUnavailable as err:
            # A media server that is away is the site's state, not a fault of this server (409).
            raise Conflict(f"media server {server or self.server} does not answer: {err.message}") from err
        err = answer_error(answer.headers)
        if err is not None:
            raise err
        if command.answer is None:
            return answer.data
        return decode(answer.data)  # type: ignore[return-value]

    # --- cameras ---------------------------------------------------------------------------

    async def server_for(self, camera: Camera) -> str:
        """The name of the media server that records ``camera``.

        A camera assigned to none is this process's own media server's or, when there is none
        (``[media] embedded`` off), assigned now to the least loaded present server.
        """
        if camera.media_server_id is None:
            if self.engine is not None:
                return self.engine.name
            name = self.cluster.least_loaded("")
            if name is None:
                raise BusUnavailable("no media server is present to take the camera")
            async with self.db.session() as s:
                row = (await s.exec(select(MediaServer).where(MediaServer.name == name))).first()
                cam = await s.get(Camera, camera.id)
                if row is None or cam is None:
                    raise BusUnavailable(f"media server {name} is not enrolled")
                cam.media_server_id = camera.media_server_id = row.id
                s.add(cam)
                await s.commit()
            return name
        async with self.db.session() as s:
            row = await s.get(MediaServer, camera.media_server_id)
        if row is None:
            raise NotFound(f"camera {camera.name!r} names a media server that does not exist")
        return row.name

    async def ingest(self, camera: Camera) -> None:
        """Have the camera's media server ingest it; a camera that cannot start is stored as ``error``."""
        try:
            await self.command(IngestCamera(camera=camera_spec(camera)), await self.server_for(camera))
        except ValtError as err:
            if err.code not in ("bus_unavailable", "conflict"):
                await self._set_camera_error(camera.id, err.message)
            raise

    async def remove_camera(self, camera_id: int) -> None:
        """Stop ingesting a camera (removed, disabled or reconfigured), and its live stream."""
        async with self.db.session() as s:
            camera = await s.get(Camera, camera_id)
        await self.relays.release(camera_id)
        if camera is None or (camera.media_server_id is None and self.engine is None):
            return
        try:
            await self.command(ReleaseCamera(camera_id=camera_id), await self.server_for(camera))
        except (BusUnavailable, Conflict) as err:
            # A media server that is away holds no camera anyway once its lease expires.
            log.warning("camera %s: not released on its media server: %s", camera.name, err.message)

    async def still(self, camera: Camera) -> bytes:
        """A JPEG of the camera's newest keyframe, from its media server."""
        return await self.command(TakeStill(camera=camera_spec(camera)), await self.server_for(camera),
                                  timeout_s=self.settings.bus.command_timeout_s)  # type: ignore[return-value]

    async def live_stream(self, camera_id: int) -> "LiveStream":
        """The camera's shared live stream, started on first use.

        A camera of this process's media engine is read directly; one of another media server
        is relayed over the bus (:mod:`valt_core.live_relay`).
        """
        async with self.db.session() as s:
            camera = await s.get(Camera, camera_id)
        if camera is None:
            raise NotFound(f"no camera {camera_id}")
        if not camera.enabled:
            raise CameraDisabled(f"camera {camera.name!r} is disabled")
        try:
            server = await self.server_for(camera)
        except BusUnavailable as err:
            raise Conflict(err.message) from err
        if self.engine is not None and server == self.engine.name:
            return await self.engine.live_stream(camera_spec(camera))
        return await self.relays.stream(camera_spec(camera), server)

    def live_key(self, server: str) -> bytes:
        """The key direct live tokens for media server ``server`` are signed with."""
        return server_live_secret(self.secret, server)

    async def send_live_key(self, server: str) -> None:
        """Give media server ``server`` its direct live key (when it joins)."""
        key = base64.b64encode(self.live_key(server)).decode()
        await self.command(LiveKey(key=key, token_ttl_s=self.settings.live.token_ttl_s), server, timeout_s=10.0)

    def revoke_direct_live(self, reason: str, *, session_id: int = 0, user_id: int = 0, camera_id: int = 0) -> None:
        """Tell every present media server to close and refuse direct viewers of what is named.

        Tokens issued until now expire by now plus their lifetime, so that is how long the media
        servers refuse them. Sent in the background: signing out must not wait for the servers.
        """
        servers = [name for name in self.cluster.present if self.engine is None or name != self.engine.name]
        if not servers:
            return
        revoke = LiveRevoke(session_id=session_id, user_id=user_id, camera_id=camera_id, reason=reason,
                            until=time.time() + self.settings.live.token_ttl_s + 1)

        async def send(server: str) -> None:
            try:
                await self.command(revoke, server, timeout_s=10.0)
            except ValtError as err:
                log.warning("media server %s not told to close live viewers (%s): %s", server, reason, err.message)

        for server in servers:
            task = asyncio.create_task(send(server), name=f"live-revoke-{server}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _open_live(self, command: OpenLive, server: str) -> LiveOpened:
        return await self.command(command, server, timeout_s=10.0)  # type: ignore[return-value]

    async def _owner_of(self, camera_id: int) -> str | None:
        async with self.db.session() as s:
            camera = await s.get(Camera, camera_id)
        return None if camera is None else await self.server_for(camera)

    async def _set_camera_error(self, camera_id: int, message: str) -> None:
        async with self.db.session() as s:
            cam = await s.get(Camera, camera_id)
            if cam is None or cam.status == "error":
                return
            previous = cam.status
            cam.status, cam.status_changed_at, cam.status_reason = "error", utcnow(), message[:200]
            s.add(cam)
            await s.commit()
        await self.plugins.notify(CameraStatusChanged(camera_id=camera_id, status="error", previous=previous))

    # --- recordings ------------------------------------------------------------------------

    async def start_recording(self, room_id: int, author: User | None, name: str = "") -> Recording:
        """Start recording every enabled camera of a room."""
        async with self._lock:
            if self.session_for_room(room_id) is not None:
                raise Conflict(f"room {room_id} is already being recorded")
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
                for track, _cam in tracks:
                    await s.refresh(track)
            by_server: dict[str, list[TrackSpec]] = {}
            try:
                for track, cam in tracks:
                    by_server.setdefault(await self.server_for(cam), []).append(
                        TrackSpec(track_id=track.id, camera=camera_spec(cam)))
                started: list[str] = []
                try:
                    for server, specs in by_server.items():
                        await self.command(StartRecording(recording_id=recording.id, room_id=room_id, tracks=specs),
                                           server)
                        started.append(server)
                except BaseException:
                    for server in started:  # all tracks or none
                        await self.command(StopRecording(recording_id=recording.id, reason="start failed"), server)
                    raise
            except BaseException:
                await self._forget_recording(recording.id)  # nothing was recorded: leave no trace
                raise
            self.sessions[recording.id] = RunningRecording(
                recording.id, room_id, {spec.track_id: server for server, specs in by_server.items() for spec in specs},
                set(by_server))
        await self.plugins.notify(RecordingStarted(recording_id=recording.id, room_id=room_id))
        return recording

    async def _forget_recording(self, recording_id: int) -> None:
        async with self.db.session() as s:
            for track in (await s.exec(select(Track).where(Track.recording_id == recording_id))).all():
                await s.delete(track)
            await s.flush()
            rec = await s.get(Recording, recording_id)
            if rec is not None:
                await s.delete(rec)
            await s.commit()

    def session_for_room(self, room_id: int) -> RunningRecording | None:
        """The running recording of a room, if any."""
        return next((s for s in self.sessions.values() if s.room_id == room_id), None)

    def _session(self, recording_id: int) -> RunningRecording:
        session = self.sessions.get(recording_id)
        if session is None:
            raise Conflict(f"recording {recording_id} is not running")
        return session

    async def pause_recording(self, recording_id: int) -> None:
        """Pause a running recording."""
        await self._switch(recording_id, "recording", "paused")

    async def resume_recording(self, recording_id: int) -> None:
        """Resume a paused recording."""
        await self._switch(recording_id, "paused", "recording")

    async def _switch(self, recording_id: int, current: str, to: str) -> None:
        # Pause and resume: every media server of the recording first, then the clock and the row.
        session = self._session(recording_id)
        if session.state != current:
            raise Conflict("the recording is not running" if to == "paused" else "the recording is not paused")
        command = PauseRecording if to == "paused" else ResumeRecording
        for server in session.servers:
            await self.command(command(recording_id=recording_id), server)
        if to == "paused":
            session.clock.pause()
        else:
            session.clock.resume()
        session.state = to
        await self._set_state(recording_id, to)
        await self.plugins.notify((RecordingPaused if to == "paused" else RecordingResumed)(recording_id=recording_id))

    async def _set_state(self, recording_id: int, state: str) -> None:
        async with self.db.session() as s:
            rec = await s.get(Recording, recording_id)
            rec.state = state
            s.add(rec)
            await s.commit()

    async def stop_recording(self, recording_id: int, reason: str = "") -> Recording:
        """Stop a recording: every track's last segment is finished and indexed.

        When the database cannot take the index or the new state, the media is finished all the
        same and :class:`DatabaseError` (503) says so; the recording stays listed as running so
        that stopping it again completes the index.
        """
        session = self._session(recording_id)
        async with session.stop_lock:
            for server in list(session.servers):
                try:
                    await self.command(StopRecording(recording_id=recording_id, reason=reason), server)
                except Conflict:
                    pass  # it ended there already (a failure, a full disk, an earlier stop)
            try:
                await asyncio.wait_for(session.ended.wait(), STOP_INDEX_WAIT_S)
            except asyncio.TimeoutError:
                raise DatabaseError(f"recording {recording_id} is stopped, but its index is not written yet "
                                    f"(the database fails: {self.index.error or 'no answer'}); stop it again "
                                    "once the database is back") from None
        try:
            async with self.db.session() as s:
                return await s.get(Recording, recording_id)
        except Exception as err:
            if is_transient_db_error(err) and not isinstance(err, DatabaseError):
                raise DatabaseError(f"recording {recording_id} is stopped, but the database does not answer: "
                                    f"{getattr(err, 'orig', None) or err}") from err
            raise

    def track_owner(self, recording_id: int | None, track_id: int | None) -> str | None:
        """The media server recording a track of a running recording (``None``: not known here)."""
        session = self.sessions.get(recording_id) if recording_id is not None else None
        return session.track_servers.get(track_id) if session is not None and track_id is not None else None

    async def part_ended(self, recording_id: int, server: str, cause: str) -> bool:
        """A media server's part of a recording ended (and is indexed); True once every part has.

        A part that ended on its own (a failure, a full disk) ends the recording: the other
        servers are told to stop theirs.
        """
        session = self.sessions.get(recording_id)
        if session is None:
            return True
        session.servers.discard(server)
        if cause != "command":
            for other in list(session.servers):
                try:
                    await self.command(StopRecording(recording_id=recording_id, reason=f"stopped on {server}"), other)
                except ValtError as err:
                    log.warning("recording %s: could not stop it on %s: %s", recording_id, other, err.message)
                    session.servers.discard(other)
        return not session.servers

    def finished(self, recording_id: int) -> None:
        """The recording's end is indexed: it no longer runs."""
        session = self.sessions.pop(recording_id, None)
        if session is not None:
            session.ended.set()

    async def take_over(self, camera: Camera, lost: str, target: str) -> None:
        """``target`` takes ``camera`` from the lost server; a running track goes on there."""
        session = self.session_for_room(camera.room_id) if camera.room_id is not None else None
        track = await self.cluster.track_of(session.recording_id, camera.id) if session is not None else None
        if session is None or track is None or session.track_servers.get(track.id) != lost:
            await self.ingest(camera)
            return
        # What the lost server told is indexed first, then what it left unfinished (read from
        # the shared store), so the track goes on after its last segment.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while loop.time() < deadline and await self.bus.durable_pending(CONSUMER) > 0:
            await asyncio.sleep(0.1)
        for key in await self.storage.unfinished(f"recordings/{track.recording_id}/track-{track.id}"):
            parsed = parse_segment_key(key)
            if parsed is not None and parsed[:2] == (track.recording_id, track.id):
                await self._salvage_key(track, parsed[2], key)
        first_seq, gap_from = await self.cluster.next_segment(track.id)
        spec = TrackSpec(track_id=track.id, camera=camera_spec(camera), first_seq=first_seq, gap_from_s=gap_from,
                         gap_reason=f"media server {lost} lost")
        session.track_servers[track.id] = target
        if lost not in session.track_servers.values():
            session.servers.discard(lost)
        session.servers.add(target)
        await self.command(StartRecording(recording_id=session.recording_id, room_id=session.room_id, tracks=[spec],
                                          elapsed_s=session.clock.now(), paused=session.state == "paused"), target)

    async def _salvage_key(self, track: Track, seq: int, key: str) -> None:
        row = await self._adopt_segment(track, seq, key)
        if row is None:
            async with self.db.session() as s:
                row = (await s.exec(select(Segment).where(Segment.track_id == track.id, Segment.seq == seq))).first()
        if row is not None and not row.complete:
            await self.salvage_segment(row, place_after_previous=row.start_s == 0.0 and seq > 1)

    # --- recovery ----------------------------------------------------------------------------

    async def _stale_recordings(self) -> list[int]:
        async with self.db.session() as s:
            return [r.id for r in (await s.exec(select(Recording).where(Recording.state.in_(RUNNING_STATES)))).all()]

    async def _salvage_finished(self, stale_ids: list[int]) -> None:
        # Segments whose objects were finished but whose index was not (the database or the
        # link was down, then the server stopped): found by their keys, indexed in order. The
        # objects left unfinished are the media server's to salvage.
        async with self.db.session() as s:
            open_rows = (await s.exec(select(Segment).where(Segment.complete == False))).all()  # noqa: E712
        finished = [seg for seg in open_rows if await self._exists(seg.key)]
        adopted = await self._adopt_finished_orphans(stale_ids)
        adopted_ids = {seg.id for seg in adopted}
        for seg in sorted(finished + adopted, key=lambda seg: (seg.track_id, seg.seq)):
            await self.salvage_segment(seg, place_after_previous=seg.id in adopted_ids)

    async def _exists(self, key: str) -> bool:
        try:
            await self.storage.size(key)
        except (NotFound, Conflict):
            return False  # Conflict: on a media server that is away, which salvages its own at its start
        return True

    async def _close_stale(self, stale_ids: list[int]) -> None:
        async with self.db.session() as s:
            # What is still unfinished has no media left (the media server found nothing of it).
            leftovers = (await s.exec(select(Segment).join(Track).where(
                Segment.complete == False, Track.recording_id.in_(stale_ids)))).all() if stale_ids else []  # noqa: E712
        for seg in leftovers:
            await self.salvage_segment(seg)
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

    async def _adopt_segment(self, track: Track, seq: int, key: str) -> Segment | None:
        async with self.db.session() as s:
            if (await s.exec(select(Segment).where(Segment.track_id == track.id, Segment.seq == seq))).first():
                return None
            row = Segment(track_id=track.id, seq=seq, key=key, start_s=0.0, complete=False)
            s.add(row)
            await s.commit()
        log.warning("segment %s had no index row (written while the database was down): indexing it", key)
        return row

    async def _adopt_finished_orphans(self, recording_ids: list[int]) -> list[Segment]:
        # Look for the keys the recorder would have used, between and just after the indexed ones.
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
                    row = await self._adopt_segment(track, seq, key)
                    if row is not None:
                        found.append(row)
                elif seq > last:
                    break
        return found

    async def _existing_key(self, track: Track, seq: int) -> str | None:
        for ext in ("mp4", "mov"):
            key = segment_key(track.recording_id, track.id, seq, ext)
            if await self._exists(key):
                return key
        return None

    async def salvage_segment(self, seg: Segment, place_after_previous: bool = False) -> None:
        """Index a segment as the whole fragments its object holds (dropped when it holds none).

        ``place_after_previous``: its start was never indexed; it follows the segment before.
        """
        found = await salvage_object(self.storage, seg.key)
        async with self.db.session() as s:
            row = await s.get(Segment, seg.id)
            if found is None:
                await s.delete(row)
                await s.commit()
                return
            prev = (await s.exec(select(Segment).where(Segment.track_id == seg.track_id, Segment.seq < seg.seq,
                                                       Segment.complete == True)  # noqa: E712
                                 .order_by(Segment.seq.desc()).limit(1))).first()
            if place_after_previous and prev is not None:
                row.start_s = prev.start_s + prev.duration_s
            row.bytes, row.sha256, row.duration_s = found.bytes, found.sha256, found.duration_s
            row.chain_hash = chain_hash(prev.chain_hash if prev else "", row.sha256)
            row.complete = True
            s.add(row)
            await s.commit()

    # --- verification ------------------------------------------------------------------------

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
                except Conflict as err:
                    report.problems.append(f"{where}: cannot be read now: {err.message}")
                    chain = chain_hash(chain, seg.sha256)
                    continue
                report.segments += 1
                if digest.hexdigest() != seg.sha256:
                    report.problems.append(f"{where}: content changed (SHA-256 differs)")
                chain = chain_hash(chain, seg.sha256)
                if chain != seg.chain_hash:
                    report.problems.append(f"{where}: hash chain broken (a segment before it was removed or altered)")
        return report
