"""One ingest pipeline per camera: demux in a worker thread, shared by every consumer.

The pipeline reconnects with backoff, keeps timestamps monotonic across reconnects (all on
one timeline: seconds of ``time.monotonic()``), keeps the packets since the last keyframe
(the GOP cache) so a new consumer starts at once, and reports the camera's state:
``starting``, ``online``, ``no_frames`` (connected, nothing arriving) or ``offline``.

Consumers come in two kinds. A :class:`ThreadSink` (the recorder) is called in the ingest
thread for every packet: stream copy is cheap and waking the event loop for each packet costs
more than the copy itself. A :class:`Subscription` (live viewers) gets packets on the event
loop; packets cross to the loop only while someone subscribes.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from ..cameras.base import CameraDriver
from ..errors import CameraAuthFailed, CameraUnreachable
from ..redact import redact
from .ticker import Ticker

log = logging.getLogger(__name__)

STARTING, ONLINE, NO_FRAMES, OFFLINE = "starting", "online", "no_frames", "offline"
#: Longest wait between connection attempts while a camera is in use (recorded or watched):
#: a camera that comes back is recording again within about a second (a refused connection
#: fails in milliseconds, so trying twice a second costs nothing).
IN_USE_RETRY_S = 0.5
#: How often a camera is checked for frames that stopped coming.
WATCH_S = 0.5
WRONG_CREDENTIALS, UNREACHABLE, NO_FRAMES_REASON = "wrong credentials", "unreachable", "no frames"
#: The status reason of a pushed camera (a phone) while no device publishes to it.
NOT_PUBLISHING = "waiting for the device to publish"
#: How soon a pushed camera's driver is asked again after nothing was publishing (its
#: ``open_media`` itself waits about a second, so this is no busy loop).
PUSHED_RETRY_S = 0.05
_UNREACHABLE_ERRNOS = {errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH,
                       errno.EHOSTDOWN, errno.ECONNRESET, errno.ECONNABORTED}


def failure_reason(err: BaseException) -> str:
    """Why a connection failed, in plain words for the camera's status.

    ``wrong credentials`` (RTSP/HTTP 401), ``unreachable`` (refused, timed out, no route, unknown
    host), else the driver's or FFmpeg's own message with any credentials masked.
    """
    import av.error  # here, as nothing else in this module needs PyAV loaded

    from ..push import NotPublishing

    if isinstance(err, NotPublishing):
        return NOT_PUBLISHING
    if isinstance(err, (av.error.HTTPUnauthorizedError, CameraAuthFailed)) or "401 Unauthorized" in str(err):
        return WRONG_CREDENTIALS
    if isinstance(err, (CameraUnreachable, TimeoutError, socket.gaierror, ConnectionError)) or (
            isinstance(err, OSError) and err.errno in _UNREACHABLE_ERRNOS):
        return UNREACHABLE
    return redact(f"{type(err).__name__}: {err}")


@dataclass(frozen=True)
class Connected:
    """The camera (re)connected; ``generation`` numbers connections, streams may differ."""

    generation: int
    video: Any | None
    audio: Any | None


@dataclass(slots=True)
class MediaPacket:
    """An encoded packet on the pipeline's timeline.

    ``packet.pts``/``dts`` are rebased (monotonic across reconnects) in ``packet.time_base``;
    ``dts_s``/``pts_s`` are the same instants in seconds of ``time.monotonic()``.
    """

    generation: int
    kind: str
    packet: Any
    dts_s: float
    pts_s: float
    keyframe: bool
    arrived: float = 0.0
    """``time.monotonic()`` when the demuxer handed the packet over (for latency figures)."""


Event = Connected | MediaPacket


@dataclass
class Subscription:
    """A consumer's bounded queue of pipeline events.

    When it overflows the queue is emptied and delivery resumes at the next video keyframe:
    a slow consumer loses whole GOPs, never the pipeline's pace. ``dropped`` counts losses.
    """

    maxsize: int
    items: collections.deque = field(default_factory=collections.deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    skip_to_keyframe: bool = False
    dropped: int = 0
    closed: bool = False

    def offer(self, event: Event) -> None:
        """Queue ``event`` (called on the event loop by the pipeline)."""
        if self.closed:
            return
        if isinstance(event, MediaPacket):
            if self.skip_to_keyframe:
                if not (event.kind == "video" and event.keyframe):
                    self.dropped += 1
                    return
                self.skip_to_keyframe = False
            if len(self.items) >= self.maxsize:
                self.dropped += len(self.items) + 1
                # Keep connection events: consumers need the stream layout.
                kept = [e for e in self.items if isinstance(e, Connected)]
                self.items.clear()
                self.items.extend(kept[-1:])
                self.skip_to_keyframe = True
                return
        self.items.append(event)
        self.ready.set()

    async def get(self) -> Event:
        """The next event, waiting for one."""
        while not self.items:
            if self.closed:
                raise asyncio.CancelledError("subscription closed")
            self.ready.clear()
            await self.ready.wait()
        return self.items.popleft()

    def close(self) -> None:
        """Stop receiving; wakes a waiting :meth:`get`."""
        self.closed = True
        self.ready.set()


StatusCallback = Callable[[str, str], Awaitable[None] | None]


class ThreadSink(Protocol):
    """A consumer called in the ingest thread. It must be quick and never block on I/O."""

    def on_connected(self, connected: Connected) -> None:
        """The camera (re)connected with these streams."""

    def on_packet(self, mp: MediaPacket) -> None:
        """One packet, in arrival order."""


class LoopInbox:
    """Hands events from ingest threads to the event loop, one wake-up per batch.

    Waking the loop costs far more than handling a packet; when several cameras deliver
    at once, one wake-up carries all their packets. Nothing waits: the first packet of a
    batch schedules the drain at once.
    """

    _by_loop: "dict[asyncio.AbstractEventLoop, LoopInbox]" = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: collections.deque = collections.deque()
        self.lock = threading.Lock()
        self.scheduled = False

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop) -> "LoopInbox":
        inbox = cls._by_loop.get(loop)
        if inbox is None:
            for old in [k for k in cls._by_loop if k.is_closed()]:
                del cls._by_loop[old]
            inbox = cls._by_loop[loop] = cls(loop)
        return inbox

    def put(self, handler: Callable[[Any], None], event: Any) -> None:
        """Queue ``handler(event)`` to run on the loop (called from any thread)."""
        self.items.append((handler, event))
        with self.lock:
            if self.scheduled:
                return
            self.scheduled = True
        self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self.lock:
            self.scheduled = False
        items = self.items
        while items:
            handler, event = items.popleft()
            handler(event)


class CameraPipeline:
    """Ingest of one camera, shared by every consumer (recorder, live transports)."""

    def __init__(
        self,
        driver: CameraDriver,
        *,
        name: str = "",
        profile: str = "main",
        no_frames_after_s: float = 5.0,
        reconnect_max_s: float = 30.0,
        on_status: StatusCallback | None = None,
    ) -> None:
        self.driver = driver
        self.name = name or driver.name
        self.profile = profile
        self.no_frames_after_s = no_frames_after_s
        self.reconnect_max_s = reconnect_max_s
        self.on_status = on_status
        self.status = STARTING
        self.last_error = ""
        #: Why the camera is not online, in plain words (see :func:`failure_reason`); "" when it is.
        self.status_reason = ""
        self.connected: Connected | None = None
        self.gop: list[MediaPacket] = []
        self.subscriptions: list[Subscription] = []
        self.sinks: tuple[ThreadSink, ...] = ()
        self.packets_received = 0
        #: Bytes of media received (its ingest bit rate is reported in the media server's presence).
        self.bytes_received = 0
        self.last_video_at = 0.0
        self._connected_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watchdog: int | None = None  # the no-frames check's handle on the shared ticker
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0
        self._status_tasks: set[asyncio.Future] = set()
        self._media: Any = None  # the open input, while one is

    # --- control ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start ingest in a worker thread and the no-frames watchdog."""
        self._loop = asyncio.get_running_loop()
        self._inbox = LoopInbox.for_loop(self._loop)
        self._thread = threading.Thread(target=self._run, name=f"ingest-{self.name}", daemon=True)
        self._thread.start()
        self._watchdog = Ticker.for_loop(WATCH_S).add(self._check_frames)

    async def stop(self) -> None:
        """Stop ingest and close every subscription."""
        self._stop.set()
        interrupt = getattr(self._media, "interrupt", None)
        if interrupt is not None:
            interrupt()  # a pushed camera's demux may be waiting for its device: end it now
        if self._loop is not None:
            Ticker.for_loop(WATCH_S, self._loop).remove(self._watchdog)
            self._watchdog = None
        if self._thread:
            await asyncio.to_thread(self._thread.join, 10)
        for sub in self.subscriptions:
            sub.close()
        self.subscriptions = []
        self.sinks = ()

    def last_keyframe(self) -> tuple[Any, bytes] | None:
        """The video stream and the bytes of the newest keyframe; ``None`` before the first."""
        with self._lock:
            if self.connected is None or self.connected.video is None or not self.gop:
                return None
            return self.connected.video, bytes(self.gop[0].packet)

    def subscribe(self, maxsize: int = 4096, from_gop: bool = True) -> Subscription:
        """A new event-loop consumer; it first gets the stream layout and (by default) the GOP."""
        sub = Subscription(maxsize=maxsize)
        with self._lock:
            if self.connected is not None:
                sub.offer(self.connected)
                if from_gop:
                    for p in self.gop:
                        sub.offer(p)
            # Replaced, not mutated: the ingest thread iterates the list it read.
            self.subscriptions = self.subscriptions + [sub]
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Remove an event-loop consumer."""
        sub.close()
        with self._lock:
            self.subscriptions = [s for s in self.subscriptions if s is not sub]

    def add_sink(self, sink: ThreadSink) -> None:
        """Call ``sink`` in the ingest thread from the next packet on."""
        with self._lock:
            if self.connected is not None:
                sink.on_connected(self.connected)
            self.sinks = self.sinks + (sink,)

    def remove_sink(self, sink: ThreadSink) -> None:
        """Stop calling ``sink``; once this returns, it is not being called."""
        with self._lock:
            self.sinks = tuple(s for s in self.sinks if s is not sink)

    # --- event loop side -------------------------------------------------------------------

    def _offer(self, event: Event) -> None:
        for sub in self.subscriptions:
            sub.offer(event)

    def _post(self, handler: Callable[[Any], None], event: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            self._stop.set()
            return
        try:
            self._inbox.put(handler, event)
        except RuntimeError:  # loop closed while we were posting
            self._stop.set()

    def _online(self, _event: Any = None) -> None:
        if self.status != ONLINE:
            self.status_reason = ""
            self._set_status(ONLINE)

    def _failed(self, why: tuple[str, str]) -> None:
        self.last_error, reason = why
        with self._lock:
            self.connected = None
            self.gop = []
        changed = reason != self.status_reason
        self.status_reason = reason
        if self.status != OFFLINE:
            self._set_status(OFFLINE)
        elif changed:
            self._notify(OFFLINE, OFFLINE)  # still offline, for another reason

    def _set_status(self, status: str) -> None:
        previous, self.status = self.status, status
        if previous != status:
            log.info("camera %s: %s -> %s%s", self.name, previous, status,
                     f" ({self.last_error})" if status == OFFLINE and self.last_error else "")
            self._notify(status, previous)

    def _notify(self, status: str, previous: str) -> None:
        if self.on_status is not None:
            result = self.on_status(status, previous)
            if asyncio.iscoroutine(result):
                self._status_tasks.add(task := asyncio.ensure_future(result))
                task.add_done_callback(self._status_tasks.discard)

    def _check_frames(self, now: float) -> None:
        # The no-frames watchdog, called by the shared ticker every WATCH_S.
        if self.connected is None:
            return
        since = now - max(self.last_video_at, self._connected_at)
        if since > self.no_frames_after_s and self.status != NO_FRAMES:
            self.last_error = f"no video for {since:.1f} s"
            self.status_reason = NO_FRAMES_REASON
            self._set_status(NO_FRAMES)

    # --- worker thread ---------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 1.0
        last: dict[str, float] = {}  # kind -> last dts in seconds, across connections
        while not self._stop.is_set():
            media = None
            try:
                uri = None
                if self._loop is not None:
                    fut = asyncio.run_coroutine_threadsafe(self.driver.stream_uri(self.profile), self._loop)
                    uri = fut.result(timeout=30)
                opened_at = time.monotonic()
                media = self._media = self.driver.open_media(self.profile, uri)
                video = media.streams.video[0] if media.streams.video else None
                audio = media.streams.audio[0] if media.streams.audio else None
                if video is None:
                    raise RuntimeError("the stream has no video")
                if not video.codec_context.width or not video.codec_context.height:
                    # Probing gave up before it saw a picture: nothing could mux this stream.
                    raise RuntimeError("the camera's video parameters could not be read")
                self._generation += 1
                connected = Connected(self._generation, video, audio)
                with self._lock:
                    self.connected = connected
                    self.gop = []
                    self._connected_at = time.monotonic()
                    for sink in self.sinks:
                        sink.on_connected(connected)
                self._post(self._offer, connected)
                self._pump(media, video, audio, last, opened_at)
                if not self._stop.is_set():
                    self._post(self._failed, ("the stream ended", "the stream ended"))
                backoff = 1.0
            except Exception as err:  # noqa: BLE001 - any failure means: reconnect later
                if not self._stop.is_set():
                    self._post(self._failed, (redact(f"{type(err).__name__}: {err}"), failure_reason(err)))
            finally:
                self._media = None
                if media is not None:
                    try:
                        media.close()
                    except Exception:  # noqa: BLE001
                        pass
            # A pushed camera is not dialled: waiting for it costs nothing (its open_media waits),
            # and a phone that starts publishing must be ingested at once, not after a backoff.
            if self._pause(PUSHED_RETRY_S if self.driver.pushed else backoff):
                break
            backoff = min(backoff * 2, self.reconnect_max_s)

    @property
    def in_use(self) -> bool:
        """True while something records or watches this camera."""
        return bool(self.sinks or self.subscriptions)

    def _pause(self, backoff: float) -> bool:
        # The backoff spares an idle camera's network; while the camera is in use, a
        # recording must resume within about a second of its return, so it is tried each
        # second. Re-checked as it waits: a recording may start during a long backoff.
        started = time.monotonic()
        while True:
            limit = min(backoff, IN_USE_RETRY_S) if self.in_use else backoff
            left = started + limit - time.monotonic()
            if left <= 0:
                return self._stop.is_set()
            if self._stop.wait(min(left, 0.1)):
                return True

    def _pump(self, media: Any, video: Any, audio: Any, last: dict[str, float], opened_at: float) -> None:
        kinds = {video.index: "video"}
        if audio is not None:
            kinds[audio.index] = "audio"
        offset_s: float | None = None
        # Per stream index: [time base as a float, shift in time-base units, kind]. Floats, not
        # Fractions, and names bound once: this loop runs for every packet of every camera.
        streams: dict[int, list] = {}
        generation = self._generation
        monotonic = time.monotonic
        stopping = self._stop.is_set
        lock = self._lock
        post = self._post
        offer = self._offer
        for packet in media.demux(*[s for s in (video, audio) if s is not None]):
            if stopping():
                return
            dts = packet.dts
            if dts is None:
                continue
            size = packet.size
            if size == 0:
                continue
            index = packet.stream_index
            info = streams.get(index)
            if info is None:
                tb = packet.time_base
                if offset_s is None:
                    # The first packet was captured about when opening began: opening (probing)
                    # buffers a second or so of media, delivered in a burst afterwards. Anchoring
                    # at arrival would put every later packet that far ahead of the wall clock.
                    offset_s = opened_at - float(dts * tb)
                info = streams[index] = [float(tb), round(offset_s / tb), kinds[index]]
            tbf, shift, kind = info
            pts = packet.pts
            if pts is None:
                pts = dts
            dts += shift
            dts_s = dts * tbf
            prev = last.get(kind)
            if prev is not None and dts_s <= prev:
                # A camera that jumps back (restart, wrap, a keyframe stamped a tick before the
                # frame it follows) is pushed forward: never backwards, never onto the previous
                # instant. Counted in whole ticks: the float difference alone can round down by
                # one, leaving two packets at one time, which a muxer refuses.
                bump = int((prev - dts_s) / tbf) + 1
                while (dts + bump) * tbf <= prev:
                    bump += 1
                info[1] = shift = shift + bump
                dts += bump
                dts_s = dts * tbf
            pts += shift
            packet.dts = dts
            packet.pts = pts
            last[kind] = dts_s
            keyframe = packet.is_keyframe
            now = monotonic()
            mp = MediaPacket(generation, kind, packet, dts_s, pts * tbf, keyframe, now)
            self.packets_received += 1
            self.bytes_received += size
            video_packet = kind == "video"
            if video_packet:
                self.last_video_at = now
                if self.status != ONLINE:
                    post(self._online, None)
            for sink in self.sinks:
                sink.on_packet(mp)
            # Under the lock, so a new subscriber gets each packet once: from the GOP cache
            # or from the loop, never both.
            with lock:
                if video_packet and keyframe:
                    self.gop = [mp]
                elif self.gop:
                    self.gop.append(mp)
                if self.subscriptions:
                    post(offer, mp)
