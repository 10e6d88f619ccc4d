"""Pushed media: cameras that send their media to Valt (a phone publishing RTMP) instead of being opened.

Two plugins meet here and nowhere else. An ingest transport (``rtmp``) accepts a publisher, asks
:meth:`PushRegistry.authenticate` which camera its stream key belongs to, and hands the
publisher's FLV tags to :meth:`PushEndpoint.publish`. The camera driver (``mobile``) keeps its
camera's :class:`PushEndpoint` registered and reads the tags back through
:meth:`PushEndpoint.open`: a PyAV input (a :class:`~valt_core.cameras.base.MediaInput`), so the
engine records, snapshots and shows a pushed camera exactly as an RTSP one.

What makes a pushed camera differ from an opened one is handled here once:

- **Reconnects.** A publisher that drops and comes back on the same key within the grace window
  (``[media] push_grace_s``), from any address, continues the same input: its timestamps are moved
  on by the outage, so the recording shows it as a gap, not a new start. Only different codec
  settings (another resolution, say) end the input, and the engine opens the next one at once.
- **Takeover.** A new publish on a key that is publishing replaces the old connection, which is
  closed: the newest wins, and a half-dead connection can never lock a key out.
- **Keys.** Only the SHA-256 of a stream key is known here (the camera's settings carry it);
  keys are compared in constant time and never stored or logged.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator

#: FLV tag types (the RTMP message types of the same media).
AUDIO, VIDEO, SCRIPT = 8, 9, 18
#: An endpoint nobody has read from for this long is gone (its camera is no longer ingested here).
ENDPOINT_STALE_S = 5.0
#: The most a stalled reader may fall behind before the feed drops to the next keyframe.
FEED_MAX_BYTES = 32 * 1024 * 1024
#: Tags kept since the last keyframe, so an input opened mid-stream starts at once.
GOP_MAX_TAGS = 2000
#: Status words of :meth:`PushRegistry.authenticate`.
ACCEPTED, NO_KEY, WRONG_KEY, REVOKED_KEY = "accepted", "no key", "wrong key", "revoked key"


def new_stream_key() -> str:
    """A new random stream key (256 bits, URL-safe): shown once, only its hash is kept."""
    return secrets.token_urlsafe(32)


def hash_stream_key(key: str) -> str:
    """The SHA-256 (hex) of a stream key: what the camera's settings and the media server hold.

    A plain hash is enough: the key is 256 random bits, so there is nothing to guess from it.
    """
    return hashlib.sha256(key.encode()).hexdigest()


def _is_keyframe(kind: int, payload: bytes) -> bool:
    # Legacy and Enhanced RTMP both put the frame type in the high nibble (bits 4-6); 1 = key.
    return kind == VIDEO and len(payload) > 1 and (payload[0] >> 4) & 0x07 == 1


def _is_sequence_header(kind: int, payload: bytes) -> bool:
    if len(payload) < 2:
        return False
    if kind == VIDEO:
        if payload[0] & 0x80:  # Enhanced RTMP: packet type in the low nibble, 0 = SequenceStart
            return payload[0] & 0x0F == 0
        return payload[0] & 0x0F in (7, 12) and payload[1] == 0  # AVC / legacy HEVC config
    if kind == AUDIO:
        return payload[0] >> 4 == 10 and payload[1] == 0  # AAC AudioSpecificConfig
    return False


def flv_tag(kind: int, timestamp_ms: int, payload: bytes) -> bytes:
    """One FLV tag with its trailing previous-tag-size."""
    ts = max(0, timestamp_ms) & 0xFFFFFFFF
    header = struct.pack(">B", kind) + len(payload).to_bytes(3, "big") + (ts & 0xFFFFFF).to_bytes(3, "big") \
        + bytes([ts >> 24]) + b"\x00\x00\x00"
    return header + payload + struct.pack(">I", 11 + len(payload))


def flv_header(audio: bool) -> bytes:
    """The FLV file header (with the zero previous-tag-size) for video, and audio if there is some."""
    return b"FLV\x01" + bytes([0x05 if audio else 0x01]) + b"\x00\x00\x00\x09" + b"\x00\x00\x00\x00"


class NotPublishing(Exception):
    """No device is publishing to this camera now (the engine asks again at once)."""


@dataclass(slots=True)
class _Tag:
    kind: int
    timestamp_ms: int
    payload: bytes


class Publication:
    """One publisher connection's media (the transport's side). Methods run on the event loop."""

    def __init__(self, endpoint: "PushEndpoint", remote_addr: str, on_superseded: Callable[[], None]) -> None:
        self.endpoint = endpoint
        self.remote_addr = remote_addr
        self.on_superseded = on_superseded
        self.metadata: bytes = b""
        self.video_config: bytes | None = None
        self.audio_config: bytes | None = None
        self.gop: list[_Tag] = []
        self.started_at = time.monotonic()
        self.ended = False
        self.tags = 0

    @property
    def ready(self) -> bool:
        """True once a keyframe arrived after the video's codec settings."""
        return self.video_config is not None and bool(self.gop)

    def set_metadata(self, body: bytes) -> None:
        """The publisher's ``onMetaData`` as an FLV script tag body (name and ECMA array)."""
        self.metadata = body

    def tag(self, kind: int, timestamp_ms: int, payload: bytes) -> None:
        """One audio (8) or video (9) message of the publisher, payload as in an FLV tag."""
        if self.ended or kind not in (AUDIO, VIDEO) or not payload:
            return
        self.tags += 1
        if _is_sequence_header(kind, payload):
            if kind == VIDEO:
                self.video_config = payload
            else:
                self.audio_config = payload
            return
        item = _Tag(kind, timestamp_ms, payload)
        if _is_keyframe(kind, payload):
            self.gop = [item]
        elif self.gop and len(self.gop) < GOP_MAX_TAGS:
            self.gop.append(item)
        self.endpoint._deliver(self, item)

    def close(self) -> None:
        """The connection ended (or was replaced); a reader waits out the grace window for the next."""
        if not self.ended:
            self.ended = True
            self.endpoint._ended(self)


class _Feed:
    """The byte stream of one input: an FLV file built from one publication, or several in turn.

    Written on the event loop, read by PyAV in the ingest thread; nothing here blocks the loop.
    """

    def __init__(self, endpoint: "PushEndpoint", pub: Publication, grace_s: float) -> None:
        self.endpoint = endpoint
        self.grace_s = grace_s
        self.cond = threading.Condition()
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.eof = False
        self.closed = False
        self.skip_to_keyframe = False
        self.signature = (pub.video_config, pub.audio_config)
        self.pub: Publication | None = None
        self.offset = 0  # added to the current publication's timestamps
        self.last_ts = -1
        self.anchor = time.monotonic()
        self.orphaned_at: float | None = None
        audio = pub.audio_config is not None
        head = [flv_header(audio)]
        if pub.metadata:
            head.append(flv_tag(SCRIPT, 0, pub.metadata))
        head.append(flv_tag(VIDEO, 0, pub.video_config or b""))
        if audio:
            head.append(flv_tag(AUDIO, 0, pub.audio_config or b""))
        self._push(b"".join(head))
        self.attach(pub, first=True)

    def matches(self, pub: Publication) -> bool:
        """True when ``pub`` sends what this feed already declared (it can continue the feed)."""
        return (pub.video_config, pub.audio_config) == self.signature

    def attach(self, pub: Publication, first: bool = False) -> None:
        """Follow ``pub`` from its newest keyframe on, its timestamps moved past what was written."""
        with self.cond:
            self.pub = pub
            self.orphaned_at = None
            gop = list(pub.gop)
            if gop:
                elapsed = 0 if first else int((time.monotonic() - self.anchor) * 1000)
                self.offset = max(self.last_ts + 1, elapsed) - gop[0].timestamp_ms
                if first:
                    self.anchor = time.monotonic()
            else:
                self.offset = None  # set by the first keyframe
            for item in gop:
                self._write(item)

    def offer(self, pub: Publication, item: _Tag) -> None:
        """A tag of ``pub``; only the followed publication's tags are written."""
        if pub is not self.pub:
            return
        with self.cond:
            if self.offset is None:
                if not _is_keyframe(item.kind, item.payload):
                    return
                elapsed = int((time.monotonic() - self.anchor) * 1000)
                self.offset = max(self.last_ts + 1, elapsed) - item.timestamp_ms
            self._write(item)

    def _write(self, item: _Tag) -> None:
        if self.skip_to_keyframe:
            if not _is_keyframe(item.kind, item.payload):
                return
            self.skip_to_keyframe = False
        if self.buffered > FEED_MAX_BYTES:
            # The reader stalled: drop what waits and resume at a keyframe, never grow without bound.
            self.chunks.clear()
            self.buffered = 0
            self.skip_to_keyframe = True
            return
        ts = item.timestamp_ms + (self.offset or 0)
        self.last_ts = max(self.last_ts, ts)
        self._push(flv_tag(item.kind, ts, item.payload))

    def _push(self, data: bytes) -> None:
        with self.cond:
            self.chunks.append(data)
            self.buffered += len(data)
            self.cond.notify()

    def orphan(self, pub: Publication) -> None:
        """The followed publication ended: wait out the grace window for the next."""
        with self.cond:
            if pub is self.pub:
                self.pub = None
                self.orphaned_at = time.monotonic()
                self.cond.notify()

    def end(self) -> None:
        """No more bytes: the reader sees the end of the file once it read what is buffered."""
        with self.cond:
            self.eof = True
            self.cond.notify()

    def close(self) -> None:
        """The reader is done: wake it, and read nothing more."""
        with self.cond:
            self.closed = True
            self.eof = True
            self.chunks.clear()
            self.cond.notify()

    # --- the reader's side (PyAV calls these in the ingest thread) --------------------------

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes, waiting for them; ``b""`` at the end."""
        self.endpoint.touch()
        with self.cond:
            while not self.chunks:
                if self.eof:
                    return b""
                if self.orphaned_at is not None and time.monotonic() - self.orphaned_at > self.grace_s:
                    self.eof = True
                    return b""
                self.endpoint.touch()
                self.cond.wait(0.25)
            data = self.chunks.popleft()
            if 0 < size < len(data):
                self.chunks.appendleft(data[size:])
                data = data[:size]
            self.buffered -= len(data)
            return data


class PushedInput:
    """A pushed camera's live input: PyAV's FLV demuxer over the endpoint's feed (a ``MediaInput``)."""

    def __init__(self, feed: _Feed) -> None:
        import av  # here: only the media path needs PyAV

        self._feed = feed
        try:
            # A short probe: the codec settings came first, so a keyframe or two tell the rest.
            self._container = av.open(feed, format="flv", options={"analyzeduration": "1000000",
                                                                   "probesize": "2000000"})
        except Exception:
            feed.close()
            raise
        self.streams = self._container.streams
        video = self.streams.video[0] if self.streams.video else None
        if video is not None:
            audio = self.streams.audio[0].codec_context.name if self.streams.audio else None
            feed.endpoint.media = (video.codec_context.name, video.codec_context.width, video.codec_context.height,
                                   float(video.average_rate or 0), audio)

    def demux(self, *streams: Any) -> Iterator[Any]:
        """Packets as the device sends them, until its feed ends."""
        for packet in self._container.demux(*streams):
            if packet.dts is None:
                continue
            yield packet

    def interrupt(self) -> None:
        """End a waiting :meth:`demux` now (from another thread: the engine is stopping)."""
        self._feed.close()

    def close(self) -> None:
        """Stop reading the feed."""
        self._feed.close()
        try:
            self._container.close()
        finally:
            self._feed.endpoint._detach(self._feed)


@dataclass
class PushEndpoint:
    """One pushed camera: the key it accepts, its current publisher, and the input reading it."""

    device: str
    key_hash: str = ""
    revoked_hashes: tuple[str, ...] = ()
    registry: "PushRegistry | None" = None
    current: Publication | None = None
    feed: _Feed | None = None
    touched_at: float = field(default_factory=time.monotonic)
    publishes: int = 0
    #: What the newest input carried: (video codec, width, height, fps, audio codec or None).
    media: tuple[str, int, int, float, str | None] | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def touch(self) -> None:
        """A reader is (still) waiting here: the endpoint is in use."""
        self.touched_at = time.monotonic()

    @property
    def stale(self) -> bool:
        """True when nobody read from the endpoint for a while (its camera is not ingested here)."""
        return time.monotonic() - self.touched_at > ENDPOINT_STALE_S

    def publish(self, remote_addr: str, on_superseded: Callable[[], None]) -> Publication:
        """A new publisher on this key; one already publishing is replaced (and told, to close it)."""
        old = self.current
        pub = Publication(self, remote_addr, on_superseded)
        self.publishes += 1
        with self._cond:
            self.current = pub
            self._cond.notify_all()
        if old is not None and not old.ended:
            old.ended = True
            if self.feed is not None:
                self.feed.orphan(old)
            try:
                old.on_superseded()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close; it is replaced anyway
                pass
        return pub

    def disconnect(self) -> None:
        """Close the current publisher's connection (a reader waits out the grace window)."""
        current = self.current
        if current is None:
            return
        current.close()
        try:
            current.on_superseded()
        except Exception:  # noqa: BLE001 - a dead connection may fail to close; it is gone anyway
            pass

    def _deliver(self, pub: Publication, item: _Tag) -> None:
        feed = self.feed
        if feed is None:
            if pub.ready:
                with self._cond:
                    self._cond.notify_all()  # a reader waiting in open() can start now
            return
        if feed.pub is None and pub is self.current and _is_keyframe(item.kind, item.payload):
            if feed.matches(pub):
                feed.attach(pub)  # a reconnect or a takeover: the same input goes on
            else:
                feed.end()  # other codec settings: this input ends, the engine opens the next
            return
        feed.offer(pub, item)

    def _ended(self, pub: Publication) -> None:
        with self._cond:
            if self.current is pub:
                self.current = None
        if self.feed is not None:
            self.feed.orphan(pub)

    def _detach(self, feed: _Feed) -> None:
        if self.feed is feed:
            self.feed = None

    def open(self, grace_s: float, wait_s: float = 1.0) -> PushedInput:
        """The input of the current publisher (blocking; the ingest thread calls it).

        Waits up to ``wait_s`` for a publisher that sent its codec settings and a keyframe;
        :class:`NotPublishing` when there is none.
        """
        self.touch()
        deadline = time.monotonic() + wait_s
        with self._cond:
            while self.current is None or not self.current.ready:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NotPublishing("no device is publishing to this camera")
                self._cond.wait(min(left, 0.25))
                self.touch()
            pub = self.current
        if self.feed is not None:
            self.feed.close()
        self.feed = _Feed(self, pub, grace_s)
        return PushedInput(self.feed)


class PushRegistry:
    """The pushed cameras of this process, by device id; shared by ingest transports and drivers."""

    _process: ClassVar["PushRegistry | None"] = None
    _process_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, grace_s: float = 60.0) -> None:
        #: How long an input waits for a dropped publisher to come back (``[media] push_grace_s``).
        self.grace_s = grace_s
        self._endpoints: dict[str, PushEndpoint] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_process(cls) -> "PushRegistry":
        """This process's registry, made on first use (never at import)."""
        with cls._process_lock:
            if cls._process is None:
                cls._process = cls()
            return cls._process

    def endpoint(self, device: str, key_hash: str, revoked_hashes: tuple[str, ...] = ()) -> PushEndpoint:
        """The endpoint of ``device`` (made on first use), accepting ``key_hash`` ("": no key)."""
        with self._lock:
            ep = self._endpoints.get(device)
            if ep is None:
                ep = self._endpoints[device] = PushEndpoint(device=device, registry=self)
            changed = ep.key_hash != key_hash
            ep.key_hash, ep.revoked_hashes = key_hash, tuple(revoked_hashes)
            ep.touch()
        if changed:
            ep.disconnect()  # a publisher of the old key goes: it must come back with the new one
        return ep

    def release(self, device: str, key_hash: str) -> None:
        """Forget ``device`` if it still accepts ``key_hash`` (its camera was changed or removed),
        disconnecting its publisher. A newer registration with another key is left alone."""
        with self._lock:
            ep = self._endpoints.get(device)
            if ep is None or ep.key_hash != key_hash:
                return
            del self._endpoints[device]
        ep.disconnect()
        if ep.feed is not None:
            ep.feed.end()

    def authenticate(self, key: str) -> tuple[str, PushEndpoint | None]:
        """Which endpoint ``key`` opens: ``(ACCEPTED, endpoint)``, or a refusal word and the
        endpoint whose revoked key it was (``None`` for a wrong or missing key).

        Every endpoint's hash is compared, each in constant time, so the answer's timing tells
        nothing about which keys exist.
        """
        if not key:
            return NO_KEY, None
        wanted = hash_stream_key(key)
        with self._lock:
            endpoints = [ep for ep in self._endpoints.values() if not ep.stale]
        found: PushEndpoint | None = None
        revoked: PushEndpoint | None = None
        for ep in endpoints:
            if ep.key_hash and hmac.compare_digest(ep.key_hash, wanted):
                found = ep
            for old in ep.revoked_hashes:
                if hmac.compare_digest(old, wanted):
                    revoked = ep
        if found is not None:
            return ACCEPTED, found
        if revoked is not None:
            return REVOKED_KEY, revoked
        return WRONG_KEY, None
