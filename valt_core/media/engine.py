"""The media engine: one media server's cameras, recordings and live streams.

It knows nothing of Quart, the app context or the database. It is given its settings, the
storage backend, the camera drivers and a bus, and speaks to the rest of Valt only through that
bus: it answers the commands of :mod:`valt_core.bus.messages` on its command subject and tells
what happens (camera status, segments, gaps, recording ends) as events in its durable stream,
which the app server indexes. ``valt serve`` runs one in its own process over the in-process
bus; ``valt media-server`` runs one over NATS.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Callable, TypeVar

from ..bus.base import Bus, Message, Subscription
from ..bus.messages import (
    CONTROL_ACTIONS,
    READ_CHUNK_MAX,
    BusMessage,
    CameraSpec,
    CameraStatus,
    Command,
    ControlCamera,
    ControlResult,
    DeleteObject,
    Done,
    IngestCamera,
    LiveKey,
    LiveOpened,
    LiveRevoke,
    ObjectStat,
    OpenLive,
    PauseRecording,
    ReadObject,
    RecordingEnded,
    ReleaseCamera,
    ResumeRecording,
    SegmentSalvaged,
    SnapshotCamera,
    StartRecording,
    StatObject,
    StopRecording,
    TakeStill,
    TrackEnded,
    command_subject,
    decode,
    error_headers,
    live_subject,
)
from ..cameras.service import CameraService
from ..errors import CameraUnreachable, Conflict, NotFound, StorageError, ValtError
from ..settings import Settings
from ..storage.base import StorageBackend
from .direct import DirectLiveAccess
from .leases import CameraLeases
from .live import BROWSER_VIDEO, IDLE_STOP_S, LiveFragmenter
from .outbox import EventOutbox
from .pipeline import CameraPipeline
from .presence import Presence
from .recorder import RecordingSession, TrackRecorder, parse_segment_key
from .relay import RELAY_IDLE_S, RelayedCamera
from .salvage import salvage_object
from .stills import jpeg_from_keyframe

log = logging.getLogger(__name__)
T = TypeVar("T")
#: How long a new live stream waits for the camera's first connection to learn its video codec.
LIVE_PROBE_S = 5.0
#: How long ingesting a camera waits for another media server's lease on it to expire.
LEASE_WAIT_S = 10.0


class MediaEngine:
    """Owns every camera pipeline, running recording and live stream of one media server."""

    def __init__(self, settings: Settings, storage: StorageBackend, cameras: CameraService, bus: Bus,
                 name: str = "local", lease_s: float = 4.0, pool: str = "", live_url: str = "") -> None:
        self.settings = settings
        self.storage = storage
        self.cameras = cameras
        self.bus = bus
        self.name = name
        self.events = EventOutbox(bus, name)
        self.leases = CameraLeases(bus, name, lease_s, self._lost_camera)
        self.presence = Presence(self, lease_s, pool, live_url)
        #: Free bytes of the storage at the last check (``None``: unknown or unlimited).
        self.free_bytes: int | None = None
        self.specs: dict[int, CameraSpec] = {}
        self.pipelines: dict[int, CameraPipeline] = {}
        self.sessions: dict[int, RecordingSession] = {}
        self.live_streams: dict[int, LiveFragmenter] = {}
        self.live_pipelines: dict[int, CameraPipeline] = {}
        #: Cameras whose live stream is relayed over the bus to app servers, by camera id.
        self.relays: dict[int, RelayedCamera] = {}
        #: The host of direct live viewers (``valt media-server`` serves them on its live port).
        self.direct = DirectLiveAccess(self)
        self._live_lock = asyncio.Lock()
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._commands: Subscription | None = None
        self.started = False

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Salvage what an unclean stop left unfinished, then take commands."""
        self.events.start()
        await self._salvage_unfinished()
        await self.leases.start()
        self._commands = await self.bus.serve(command_subject(self.name), self._answer)
        await self.presence.start()
        self._tasks = [asyncio.create_task(self._watch_disk(), name="media-disk"),
                       asyncio.create_task(self._reap_live(), name="media-live-reaper")]
        self.started = True

    async def stop(self, flush_s: float = 5.0) -> None:
        """Stop recordings cleanly (what they have stays playable), then ingest; flush the events."""
        if self._commands is not None:
            await self._commands.close()
        await self.presence.stop()
        for task in self._tasks:
            task.cancel()
        for camera_id in list(self.live_streams):
            await self._stop_live(camera_id)
        for recording_id in list(self.sessions):
            try:
                await self.end_recording(recording_id, "shutdown", "server shutdown")
            except Exception as err:  # noqa: BLE001 - the next start salvages it
                log.error("recording %s could not be stopped cleanly: %s", recording_id, err)
        for pipe in self.pipelines.values():
            await pipe.stop()
        self.pipelines.clear()
        await self.leases.stop()
        if not await self.events.flush(flush_s):
            log.warning("media server %s: %d events not delivered at shutdown", self.name, self.events.pending)
        await self.events.close()
        self.started = False

    async def _salvage_unfinished(self) -> None:
        # Objects whose writes were never closed (the process was killed): cut each to its
        # whole fragments and tell the index; the app server decides what they belong to.
        for key in await self.storage.unfinished("recordings"):
            parsed = parse_segment_key(key)
            if parsed is None:
                await self.storage.discard_unfinished(key)
                continue
            await self.salvage(*parsed, key)

    async def salvage(self, recording_id: int, track_id: int, seq: int, key: str) -> None:
        """Cut an unfinished segment to its whole fragments and tell the index what it holds."""
        found = await salvage_object(self.storage, key)
        self.events.emit(SegmentSalvaged(recording_id=recording_id, track_id=track_id, seq=seq, key=key,
                                         duration_s=found.duration_s if found else 0.0,
                                         bytes=found.bytes if found else 0, sha256=found.sha256 if found else ""))

    # --- commands --------------------------------------------------------------------------

    async def _answer(self, msg: Message) -> Message:
        try:
            command = decode(msg.data)
            if not isinstance(command, Command):
                raise Conflict(f"{command.kind} is not a command")
            result = await self.handle(command)
        except ValtError as err:
            return Message(msg.subject, b"", error_headers(err))
        except Exception as err:  # noqa: BLE001 - a bug: the asker gets an error, not a timeout
            log.exception("media server %s: command failed", self.name)
            return Message(msg.subject, b"", error_headers(ValtError(f"{type(err).__name__} in the media server")))
        if isinstance(result, bytes):
            return Message(msg.subject, result)
        return Message(msg.subject, result.encode())

    async def handle(self, command: Command) -> BusMessage | bytes:
        """Carry out one command; its answer."""
        if isinstance(command, IngestCamera):
            await self.ingest(command.camera)
        elif isinstance(command, ReleaseCamera):
            await self.release(command.camera_id)
        elif isinstance(command, TakeStill):
            return await self.still(command.camera)
        elif isinstance(command, StartRecording):
            await self.start_recording(command)
        elif isinstance(command, PauseRecording):
            self._session(command.recording_id).pause()
        elif isinstance(command, ResumeRecording):
            self._session(command.recording_id).resume()
        elif isinstance(command, StopRecording):
            await self.end_recording(command.recording_id, "command", command.reason)
        elif isinstance(command, OpenLive):
            return await self.open_relay(command)
        elif isinstance(command, ControlCamera):
            return await self.control(command)
        elif isinstance(command, SnapshotCamera):
            return await self.cameras.call(command.camera, lambda d: d.snapshot())  # type: ignore[arg-type]
        elif isinstance(command, (ReadObject, StatObject)):
            return await self.read_object(command)
        elif isinstance(command, DeleteObject):
            await self.delete_object(command)
        elif isinstance(command, LiveKey):
            self.direct.set_key(command)
        elif isinstance(command, LiveRevoke):
            self.direct.revoke(command)
        else:
            raise Conflict(f"{command.kind} is not a command of media servers")
        return Done(epoch=self.events.epoch, upto=self.events.last)

    # --- cameras ---------------------------------------------------------------------------

    async def ingest(self, spec: CameraSpec) -> CameraPipeline:
        """The camera's pipeline, started on first use (restarted when its settings changed)."""
        pipe = self.pipelines.get(spec.id)
        if pipe is not None and self.specs.get(spec.id) != spec:
            if any(t.pipeline is pipe for s in self.sessions.values() for t in s.tracks):
                raise Conflict(f"camera {spec.name!r} is being recorded; stop the recording to change it")
            await self.release(spec.id)
            pipe = None
        if pipe is None:
            await self.leases.acquire(spec.id, LEASE_WAIT_S)
            driver = self.cameras.driver(spec)  # type: ignore[arg-type] - a spec has what a camera row has
            camera_id = spec.id

            async def on_status(status: str, previous: str) -> None:
                self._camera_status(camera_id, status, previous)

            pipe = CameraPipeline(
                driver, name=spec.name, profile=self.settings.media.profile,
                no_frames_after_s=self.settings.media.no_frames_after_s,
                reconnect_max_s=self.settings.media.reconnect_max_s, on_status=on_status,
            )
            self.pipelines[camera_id] = pipe
            self.specs[camera_id] = spec
            await pipe.start()
        return pipe

    def _camera_status(self, camera_id: int, status: str, previous: str) -> None:
        pipe = self.pipelines.get(camera_id)
        if pipe is None:
            return  # a pipeline being stopped: the app server says what the camera is now
        self.events.emit(CameraStatus(camera_id=camera_id, status=status, previous=previous,
                                      reason=pipe.status_reason[:200]))

    async def release(self, camera_id: int) -> None:
        """Stop ingesting a camera (removed, disabled or reconfigured), and its live stream."""
        await self._stop_live(camera_id)
        self.specs.pop(camera_id, None)
        pipe = self.pipelines.pop(camera_id, None)
        if pipe is not None:
            await pipe.stop()
        await self.leases.release(camera_id)

    async def _lost_camera(self, camera_id: int, holder: str) -> None:
        # Another media server holds the camera now: stop recording and ingesting it here at
        # once (its tracks go on there), without giving back a lease that is not ours.
        pipe = self.pipelines.get(camera_id)
        for session in list(self.sessions.values()):
            for track in [t for t in session.tracks if t.pipeline is pipe]:
                log.warning("recording %s track %s: camera moved to %s; stopped here", session.recording_id,
                            track.track_id, holder)
                await session.drop_track(track.track_id)
            if not session.tracks:
                session.stop_watchdog()
                self.sessions.pop(session.recording_id, None)
        await self._stop_live(camera_id)
        self.specs.pop(camera_id, None)
        pipe = self.pipelines.pop(camera_id, None)
        if pipe is not None:
            await pipe.stop()

    async def still(self, spec: CameraSpec) -> bytes:
        """A JPEG of the camera's newest keyframe (waits up to a few seconds for one)."""
        pipe = await self.ingest(spec)
        found = await _poll(pipe.last_keyframe, LIVE_PROBE_S)
        if found is None:
            raise CameraUnreachable(f"camera {spec.name!r} sent no picture within {LIVE_PROBE_S:g} s "
                                    f"({pipe.status})")
        video, keyframe = found
        return await asyncio.to_thread(jpeg_from_keyframe, video, keyframe)

    # --- live view -------------------------------------------------------------------------

    async def live_stream(self, spec: CameraSpec) -> LiveFragmenter:
        """The camera's shared live stream, started on first use."""
        async with self._live_lock:
            stream = self.live_streams.get(spec.id)
            if stream is None:
                stream = LiveFragmenter(await self._live_source(spec))
                stream.start()
                self.live_streams[spec.id] = stream
            return stream

    async def control(self, command: ControlCamera) -> ControlResult:
        """Call the camera's driver for the app server (PTZ, presets) under the control time limit."""
        names = CONTROL_ACTIONS.get(command.action)
        if names is None or set(command.args) != set(names):
            raise Conflict(f"{command.action[:40]!r} with {sorted(command.args)[:5]} is not a camera control")
        action, args = command.action, command.args
        result = await self.cameras.call(command.camera, lambda d: getattr(d, action)(**args))  # type: ignore[arg-type]
        if isinstance(result, list):
            return ControlResult(value=[dataclasses.asdict(r) for r in result])
        return ControlResult(value=dataclasses.asdict(result) if dataclasses.is_dataclass(result) else None)

    async def read_object(self, command: ReadObject | StatObject) -> ObjectStat | bytes:
        """A segment's size, or a chunk of it, from this server's store (for an app server without it)."""
        if parse_segment_key(command.key) is None:
            # Only what this server recorded: never an arbitrary path of its store.
            raise NotFound(f"{command.key[:120]!r} is not a segment")
        if isinstance(command, StatObject):
            return ObjectStat(size=await self.storage.size(command.key))
        length = min(command.length, READ_CHUNK_MAX)
        parts = [chunk async for chunk in self.storage.read(command.key, command.offset, command.offset + length)]
        return b"".join(parts)

    async def delete_object(self, command: DeleteObject) -> None:
        """Delete a segment of a deleted recording from this server's store (absent: nothing to do)."""
        if parse_segment_key(command.key) is None:
            raise NotFound(f"{command.key[:120]!r} is not a segment")
        try:
            await self.storage.delete(command.key)
        except (NotFound, FileNotFoundError):
            pass

    async def open_relay(self, command: OpenLive) -> LiveOpened:
        """Relay the camera's live stream over the bus (started, or renewed when it runs)."""
        stream = await self.live_stream(command.camera)
        relay = self.relays.get(command.camera.id)
        if relay is None or relay.stream is not stream:
            if relay is not None:
                await relay.close()
            relay = self.relays[command.camera.id] = RelayedCamera(
                self.bus, live_subject(self.name, command.camera.id), stream)
        relay.renew(command.replay)
        return LiveOpened(subject=relay.subject, profile=stream.profile, transcoding=stream.transcoding)

    async def _live_source(self, camera: CameraSpec) -> CameraPipeline:
        """The pipeline live view reads: the recorded one, unless a browser cannot play it.

        Browsers play H.264. When the recorded stream is something else (H.265) and the driver
        offers an H.264 ``sub`` stream, viewers get that instead of a transcode: no encoder
        running, at the cost of a smaller picture. The sub pipeline lives as long as the live
        stream does.
        """
        main = await self.ingest(camera)
        connected = await _poll(lambda: main.connected, LIVE_PROBE_S)
        video = connected.video if connected is not None else None
        if video is None or video.codec_context.name in BROWSER_VIDEO or main.profile == "sub":
            return main
        try:
            streams = await self.cameras.call(camera, lambda d: d.streams())  # type: ignore[arg-type]
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
        relay = self.relays.pop(camera_id, None)
        if relay is not None:
            await relay.close()
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
            for camera_id, relay in list(self.relays.items()):
                if relay.idle_for > RELAY_IDLE_S:
                    # No app server renewed it: nobody watches through the bus any more.
                    self.relays.pop(camera_id, None)
                    await relay.close()
            for camera_id, stream in list(self.live_streams.items()):
                if stream.idle_for > IDLE_STOP_S:
                    await self._stop_live(camera_id)

    # --- recordings ------------------------------------------------------------------------

    async def start_recording(self, command: StartRecording) -> RecordingSession:
        """Start recording the tracks of a recording."""
        async with self._lock:
            session = self.sessions.get(command.recording_id)
            known = {t.track_id for t in session.tracks} if session is not None else set()
            if known & {t.track_id for t in command.tracks}:
                raise Conflict(f"recording {command.recording_id} is already running here")
            await self._check_free_space()
            pipes = [(track, await self.ingest(track.camera)) for track in command.tracks]
            if session is None:
                session = RecordingSession(self, command.recording_id, command.room_id, command.elapsed_s,
                                           command.paused)
            for track, pipe in pipes:
                session.add_track(track, pipe)
            self.sessions[command.recording_id] = session
            return session

    def _session(self, recording_id: int) -> RecordingSession:
        session = self.sessions.get(recording_id)
        if session is None:
            raise Conflict(f"recording {recording_id} is not running")
        return session

    async def end_recording(self, recording_id: int, cause: str, reason: str = "") -> None:
        """Stop a recording: every track's last segment is written and told, then its end."""
        session = self._session(recording_id)
        async with session.stop_lock:
            if self.sessions.get(recording_id) is not session:
                raise Conflict(f"recording {recording_id} is not running")
            await session.stop()
            reason = reason or session.stop_reason
            if session.stop_reason and cause == "command":
                cause = "failure"
            notes = [f"track {t.track_id}: {t.errors} recording error(s), last: {t.error}"
                     for t in session.tracks if t.error is not None and t.failed is None]
            for t in session.tracks:
                self.events.emit(TrackEnded(recording_id=recording_id, track_id=t.track_id, failed=t.failed,
                                            errors=t.errors, last_error=t.error))
            self.events.emit(RecordingEnded(recording_id=recording_id, cause=cause, reason=reason, notes=notes))
            self.sessions.pop(recording_id, None)

    def track_failed(self, track: TrackRecorder, reason: str) -> None:
        """A track ended on a failure (its storage refused a write): end its recording, saying why."""
        session = self.sessions.get(track.recording_id)
        if session is None or session.stop_reason:
            return
        why = f"track {track.track_id} ({track.camera_name}): {reason}"
        session.stop_reason = why
        log.error("stopping recording %s: %s", track.recording_id, why)

        async def stop() -> None:
            try:
                await self.end_recording(track.recording_id, "failure", why)
            except Conflict:
                pass  # stopped meanwhile by someone else

        self._tasks.append(asyncio.create_task(stop(), name=f"stop-failed-{track.recording_id}"))

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
            try:
                free = await self.storage.free_bytes()
            except StorageError as err:
                free, why = 0, err.message
            else:
                why = f"storage nearly full: {0 if free is None else free / 2**20:.0f} MiB free"
            self.free_bytes = free
            if not self.sessions:
                continue
            if free is not None and free < self._floor():
                for recording_id in list(self.sessions):
                    log.warning("stopping recording %s: %s", recording_id, why)
                    try:
                        await self.end_recording(recording_id, "disk_full", why)
                    except ValtError as err:
                        log.error("recording %s: %s", recording_id, err.message)


async def _poll(get: Callable[[], T | None], timeout_s: float) -> T | None:
    """``get()`` once it is not ``None``, checked every 50 ms for up to ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (value := get()) is None and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return value
