"""Live view of cameras on other media servers, relayed through this app server.

For a media server that accepts no inbound connection (the hybrid-cloud form, or ``live_mode``
``relayed``), browsers connect to the app server as for its own cameras, and the app server
takes the camera's fragments from the media server over the bus: one subscription and one
:class:`~valt_core.bus.messages.OpenLive` renewal per camera, whatever the number of viewers
(the media server side is :mod:`valt_core.media.relay`, which documents the message headers).
Each camera is a :class:`RelayedStream`, the same :class:`~valt_core.transports.stream.LiveStream`
the transports read for a local camera, so a slow viewer still skips to the next keyframe on its
own and never slows the others, and transports need not know where a camera is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Awaitable, Callable

from .bus.base import Bus, Message, Subscription
from .bus.messages import CameraSpec, LiveOpened, OpenLive, live_subject
from .errors import ValtError
from .transports.stream import LiveStream

log = logging.getLogger(__name__)
#: How often an open relayed stream renews its :class:`OpenLive` (the media server gives up after 15 s).
RENEW_S = 5.0
#: Renewals that may fail in a row before the viewers are told the media server is gone.
RENEWALS_MISSED = 3
#: A relayed stream nobody watched for this long is let go.
IDLE_STOP_S = 10.0

Command = Callable[[OpenLive, str], Awaitable[LiveOpened]]


class RelayedStream(LiveStream):
    """A camera of another media server, fed by its relay's messages."""

    def __init__(self, server: str, camera_id: int) -> None:
        super().__init__()
        self.server, self.camera_id = server, camera_id
        self.subject = live_subject(server, camera_id)
        self.sub: Subscription | None = None
        #: The number of the last piece taken; after a hole, pieces wait for the next keyframe.
        self.last_seq = 0
        self.holes = 0
        self._waiting_key = True
        self._parts: tuple[int, list[bytes]] | None = None

    async def receive(self, msg: Message) -> None:
        """One message of the relay (a piece, or one part of a piece)."""
        h = msg.headers
        try:
            seq = int(h.get("valt-seq", ""))
        except ValueError:
            return
        data = self._whole(seq, h.get("valt-part", ""), msg.data)
        if data is None:
            return
        if h.get("valt-type") == "init":
            if self.init is not None and seq <= self.last_seq:
                return  # sent again for another subscriber: we have it
            self.last_seq, self._waiting_key = seq, True
            try:
                self.transcoding = list(json.loads(h.get("valt-transcoding", "[]")))
            except ValueError:
                self.transcoding = []
            self.profile = h.get("valt-profile", "main")
            self.offer_init((h.get("valt-mime", "video/mp4"), data))
            return
        if self.init is None or seq <= self.last_seq:
            return  # before our first init, or a piece we had
        keyframe = h.get("valt-key") == "1"
        if seq != self.last_seq + 1 and not self._waiting_key:
            self.holes += 1  # pieces were lost on the way: the GOP cannot be decoded
            self._waiting_key = True
        self.last_seq = seq
        if self._waiting_key:
            if not keyframe:
                return
            self._waiting_key = False
        self.offer_media(data, keyframe, _local_time(h.get("valt-at", "")))

    def _whole(self, seq: int, part: str, data: bytes) -> bytes | None:
        # A piece in parts is whole when its last part came after all the others, in order.
        if not part:
            return data
        try:
            i, n = (int(x) for x in part.split("/"))
        except ValueError:
            return None
        if i == 1:
            self._parts = (seq, [data])
        elif self._parts is not None and self._parts[0] == seq and len(self._parts[1]) == i - 1:
            self._parts[1].append(data)
        else:
            self._parts = None
            return None
        if i < n:
            return None
        whole, self._parts = b"".join(self._parts[1]), None
        return whole


def _local_time(at: str) -> float:
    """The monotonic time of this process matching a wall-clock time sent by a media server."""
    try:
        wall = float(at)
    except ValueError:
        return 0.0
    return time.monotonic() - (time.time() - wall)


class LiveRelays:
    """The relayed streams of this app server, one per camera."""

    def __init__(self, bus: Bus, command: Command, owner: Callable[[int], Awaitable[str | None]]) -> None:
        self.bus = bus
        self._command = command
        self._owner = owner
        self.streams: dict[int, RelayedStream] = {}
        self._keepers: dict[int, asyncio.Task] = {}
        # One lock per camera: a media server slow to answer holds up its own cameras only.
        self._locks: dict[int, asyncio.Lock] = {}

    def _lock(self, camera_id: int) -> asyncio.Lock:
        return self._locks.setdefault(camera_id, asyncio.Lock())

    async def stream(self, spec: CameraSpec, server: str) -> RelayedStream:
        """The camera's relayed stream from ``server`` (subscribed and opened on first use)."""
        async with self._lock(spec.id):
            stream = self.streams.get(spec.id)
            if stream is not None and stream.server == server:
                return stream
            if stream is not None:
                await self._drop(spec.id, "the camera moved to another media server")
            stream = RelayedStream(server, spec.id)
            # Subscribed before asking, so the init and GOP the media server sends are not missed.
            stream.sub = await self.bus.subscribe(stream.subject, stream.receive)
            try:
                opened = await self._command(OpenLive(camera=spec, replay=True), server)
            except BaseException:
                await stream.sub.close()
                raise
            stream.profile, stream.transcoding = opened.profile, list(opened.transcoding)
            self.streams[spec.id] = stream
            self._keepers[spec.id] = asyncio.create_task(self._keep(spec, stream), name=f"live-relay-{spec.id}")
            return stream

    async def _keep(self, spec: CameraSpec, stream: RelayedStream) -> None:
        # Renew while someone watches; let go when nobody has for a while, or the server is gone.
        missed, reason = 0, ""
        while True:
            await asyncio.sleep(RENEW_S)
            if stream.idle_for > IDLE_STOP_S:
                break
            try:
                if await self._owner(spec.id) != stream.server:
                    reason = "the camera moved to another media server"
                    break
                await self._command(OpenLive(camera=spec, replay=False), stream.server)
                missed = 0
            except ValtError as err:
                missed += 1
                log.warning("live relay of camera %s from %s: %s", spec.id, stream.server, err.message)
                if missed >= RENEWALS_MISSED:
                    reason = f"media server {stream.server} is not answering"
                    break
        async with self._lock(spec.id):
            if self.streams.get(spec.id) is stream:
                self._keepers.pop(spec.id, None)
                await self._close(spec.id, stream, reason)

    async def _drop(self, camera_id: int, reason: str) -> None:
        stream = self.streams.get(camera_id)
        keeper = self._keepers.pop(camera_id, None)
        if keeper is not None:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        if stream is not None:
            await self._close(camera_id, stream, reason)

    async def _close(self, camera_id: int, stream: RelayedStream, reason: str) -> None:
        self.streams.pop(camera_id, None)
        if stream.sub is not None:
            await stream.sub.close()
        # The player reconnects either way, and finds where the camera is now.
        stream.end(reason)

    async def release(self, camera_id: int, reason: str = "") -> None:
        """Stop relaying a camera (removed, disabled or moved); its viewers are closed."""
        async with self._lock(camera_id):
            await self._drop(camera_id, reason)

    async def close(self) -> None:
        """Stop every relayed stream."""
        for camera_id in list(self.streams):
            async with self._lock(camera_id):
                await self._drop(camera_id, "")
