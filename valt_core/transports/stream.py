"""The live-stream API transports see: a camera's fMP4 stream, fanned out to viewers.

A transport never touches the media engine's fragmenter or pipeline. It gets a
:class:`LiveStream` from its host and asks it for a :class:`Viewer`: a bounded queue that starts
with the init segment and the current GOP, then gets every fragment. A viewer that cannot keep up
loses whole GOPs (its queue is emptied and restarts at the next keyframe); the others never wait
for it. The same stream class serves a camera of this process (fed by the engine's fragmenter) and
a camera of another media server relayed over the bus (fed by its messages), so transports work
the same either way.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Viewer:
    """One viewer's queue of fMP4 pieces (bounded; overflow skips to the next keyframe)."""

    maxsize: int = 150
    items: collections.deque = field(default_factory=collections.deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    skipping: bool = False
    dropped: int = 0
    closed: bool = False
    latency: list | None = None
    """When a list, send delays (seconds from packet arrival to send) are appended to it."""
    close_reason: str = ""
    """Why the viewer was closed on purpose (signed out, camera disabled); empty otherwise."""

    def close(self, reason: str) -> None:
        """End this viewer now: nothing queued is sent, :meth:`next` raises ``ConnectionError``."""
        self.close_reason = reason
        self.closed = True
        self.items.clear()
        self.ready.set()

    def offer(self, item: tuple[str, Any], keyframe: bool = False, arrival: float = 0.0) -> None:
        """Queue ``("init", (mime, bytes))`` or ``("media", bytes)``.

        ``arrival`` is when the newest packet in the fragment reached the media server (this
        process's ``time.monotonic()``); the transport reports send time minus arrival to
        :attr:`latency` (a server-side delay figure).
        """
        if self.closed:
            return
        if item[0] == "media":
            if self.skipping:
                if not keyframe:
                    self.dropped += 1
                    return
                self.skipping = False
            elif len(self.items) >= self.maxsize:
                self.dropped += len(self.items)
                self.items = collections.deque(i for i in self.items if i[0] == "init")
                self.skipping = True
                if not keyframe:
                    self.dropped += 1
                    self.ready.set()
                    return
                self.skipping = False
        self.items.append((item[0], item[1], arrival, keyframe))
        self.ready.set()

    def sent(self, arrival: float) -> None:
        """Note that a fragment whose newest packet arrived at ``arrival`` was just sent."""
        if arrival and self.latency is not None:
            self.latency.append(time.monotonic() - arrival)

    async def next(self) -> tuple[str, Any, float, bool]:
        """The next ``(kind, payload, arrival, starts a GOP)`` to send, waiting for one."""
        while not self.items:
            if self.closed:
                raise ConnectionError("viewer closed")
            self.ready.clear()
            await self.ready.wait()
        return self.items.popleft()


class LiveStream:
    """A camera's live fMP4 stream and its viewers: what a transport reads.

    Whoever feeds it calls :meth:`offer_init` when the stream (re)starts and :meth:`offer_media`
    for each fragment; transports call :meth:`add_viewer` and :meth:`remove_viewer`.
    """

    def __init__(self) -> None:
        self.viewers: set[Viewer] = set()
        #: ``(mime, init segment)`` of the current stream, once known.
        self.init: tuple[str, bytes] | None = None
        #: The fragments since the last keyframe, so a new viewer starts at once.
        self.gop: list[bytes] = []
        #: What is converted for browsers (e.g. ``["audio pcm_mulaw -> aac"]``).
        self.transcoding: list[str] = []
        #: The camera stream profile it shows (``main`` or ``sub``).
        self.profile = "main"
        self.fragments = 0
        self.latency_log: list | None = None
        """Set to a list to collect every viewer's send delays (benchmarks do)."""
        self._idle_since = time.monotonic()

    def add_viewer(self, maxsize: int = 150) -> Viewer:
        """A new viewer, primed with the init segment and the current GOP."""
        viewer = Viewer(maxsize=maxsize, latency=self.latency_log)
        if self.init is not None:
            viewer.offer(("init", self.init))
            for i, frag in enumerate(self.gop):
                viewer.offer(("media", frag), keyframe=(i == 0))
        self.viewers.add(viewer)
        return viewer

    def remove_viewer(self, viewer: Viewer) -> None:
        """Forget a viewer (disconnected)."""
        viewer.closed = True
        self.viewers.discard(viewer)
        if not self.viewers:
            self._idle_since = time.monotonic()

    @property
    def idle_for(self) -> float:
        """Seconds without any viewer (0 while someone watches)."""
        return 0.0 if self.viewers else time.monotonic() - self._idle_since

    def offer_init(self, init: tuple[str, bytes]) -> None:
        """The stream (re)started with this init segment: every viewer gets it next."""
        self.init = init
        self.gop = []
        for v in self.viewers:
            v.offer(("init", init))

    def offer_media(self, data: bytes, keyframe: bool, arrival: float) -> None:
        """One fragment, to the GOP cache and every viewer."""
        if keyframe:
            self.gop = [data]
        elif self.gop:
            self.gop.append(data)
        self.fragments += 1
        for v in list(self.viewers):
            v.offer(("media", data), keyframe, arrival)

    def end(self, reason: str = "") -> None:
        """The stream stopped: every viewer is closed (with ``reason`` when it is worth telling)."""
        for v in list(self.viewers):
            if reason:
                v.close(reason)
            else:
                v.closed = True
                v.ready.set()
