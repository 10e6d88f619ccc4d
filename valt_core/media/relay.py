"""Live fragments over the bus, for app servers whose browsers cannot reach the media server.

A media server in the hybrid-cloud form takes no inbound connection, so the app server relays
its cameras: it sends :class:`~valt_core.bus.messages.OpenLive` and subscribes once per camera
to ``valt.live.<server>.<camera>``, whatever the number of its viewers. On this side one
:class:`RelayedCamera` per camera reads the camera's live stream as one more viewer and publishes
each piece as one core-NATS message (at most once: a live picture that arrives late is worth
nothing), numbered, with the headers the receiver needs:

``valt-seq``
    the piece's number in this relay; the receiver drops what it had and, after a hole, waits
    for the next keyframe instead of decoding a broken GOP.
``valt-type``
    ``init`` (the body is the init segment; ``valt-mime``, ``valt-profile`` and
    ``valt-transcoding`` describe it) or ``media`` (one fragment; ``valt-key`` is ``1`` when it
    starts a GOP).
``valt-at``
    the wall-clock time its newest packet reached this server, for delay figures.
``valt-part``
    ``i/n`` when a piece is bigger than a message may be and goes in ``n`` parts.

The relay runs while :class:`OpenLive` keeps coming (the app server renews it every few seconds
while someone watches) and stops :data:`RELAY_IDLE_S` after the last one. A relay that cannot
publish (the link is down) skips to the next keyframe like any slow viewer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from ..bus.base import Bus, BusUnavailable
from ..transports.stream import LiveStream

log = logging.getLogger(__name__)
#: How long a relay runs after the last renewal of its :class:`OpenLive`.
RELAY_IDLE_S = 15.0
#: Pieces bigger than this go in parts (NATS's default message limit is 1 MiB, headers included).
PART_BYTES = 512 * 1024
#: The relay's own queue: about ten seconds of one-frame fragments before it skips a GOP.
RELAY_QUEUE = 300


class RelayedCamera:
    """Publishes one camera's live stream on its live subject while app servers ask for it."""

    def __init__(self, bus: Bus, subject: str, stream: LiveStream) -> None:
        self.bus, self.subject, self.stream = bus, subject, stream
        self.renewed = time.monotonic()
        self.seq = 0
        #: The current init (its number and bytes) and the GOP since the last keyframe, as sent.
        self._init: tuple[int, dict[str, str], bytes] | None = None
        self._gop: list[tuple[int, dict[str, str], bytes]] = []
        self._replay = False
        self._viewer = stream.add_viewer(RELAY_QUEUE)
        self._task = asyncio.create_task(self._run(), name=f"live-relay-{subject}")
        self.failed_sends = 0

    def renew(self, replay: bool) -> None:
        """An app server still wants the stream; ``replay`` sends the init and current GOP again."""
        self.renewed = time.monotonic()
        self._replay = self._replay or replay
        # Wakes the task even when the camera is silent, so a new subscriber gets the GOP now.
        self._viewer.ready.set()

    @property
    def idle_for(self) -> float:
        """Seconds since the last renewal."""
        return time.monotonic() - self.renewed

    async def close(self) -> None:
        """Stop relaying."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.stream.remove_viewer(self._viewer)

    async def _run(self) -> None:
        viewer = self._viewer
        while True:
            if self._replay:
                self._replay = False
                await self._send_again()
            if not viewer.items:
                if viewer.closed:
                    return
                viewer.ready.clear()
                await viewer.ready.wait()
                continue
            kind, payload, arrival, keyframe = viewer.items.popleft()
            self.seq += 1
            at = f"{time.time() - (time.monotonic() - arrival):.6f}" if arrival else ""
            if kind == "init":
                mime, data = payload
                headers = {"valt-type": "init", "valt-mime": mime, "valt-profile": self.stream.profile,
                           "valt-transcoding": json.dumps(self.stream.transcoding)}
                self._init, self._gop = (self.seq, headers, data), []
            else:
                data = payload
                headers = {"valt-type": "media", "valt-key": "1" if keyframe else "0", "valt-at": at}
                if keyframe:
                    self._gop = []
                if keyframe or self._gop:
                    self._gop.append((self.seq, headers, data))
            await self._send(self.seq, headers, data)

    async def _send_again(self) -> None:
        if self._init is None:
            return
        for seq, headers, data in [self._init, *self._gop]:
            await self._send(seq, headers, data)

    async def _send(self, seq: int, headers: dict[str, str], data: bytes) -> None:
        parts = max(1, -(-len(data) // PART_BYTES))
        try:
            for i in range(parts):
                h: dict[str, Any] = dict(headers, **{"valt-seq": str(seq)})
                if parts > 1:
                    h["valt-part"] = f"{i + 1}/{parts}"
                await self.bus.publish(self.subject, data[i * PART_BYTES:(i + 1) * PART_BYTES], h)
        except BusUnavailable as err:
            # Live is at most once: what could not go is gone; the receiver sees the hole.
            self.failed_sends += 1
            if self.failed_sends == 1 or self.failed_sends % 500 == 0:
                log.warning("live relay %s: %s (%d pieces not sent)", self.subject, err.message, self.failed_sends)
