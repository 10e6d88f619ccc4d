"""A media server's events, in order, until the bus has stored them.

The recorder never waits for the app server: an event is queued here and published to the
durable stream by one task, again and again while the bus is unreachable (NATS stopped, the
link to the cloud down), so the index reaches the database once it is back, in order and
with nothing lost while the process lives. Each event has a number in this server's epoch
(one epoch per start), which is also its message id, so a publication repeated after a lost
acknowledgement is stored once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time

from ..bus.base import Bus
from ..bus.messages import Event, event_subject

log = logging.getLogger(__name__)
#: How soon a publication the bus refused is tried again.
RETRY_S = 1.0


class EventOutbox:
    """The ordered queue of one media server's events (see the module docstring)."""

    def __init__(self, bus: Bus, server: str) -> None:
        self.bus = bus
        self.server = server
        self.epoch = f"{int(time.time() * 1000):x}{os.urandom(3).hex()}"
        self.last = 0  # number of the newest event queued
        self.published = 0  # number of the newest event the bus stored
        self._queue: collections.deque[tuple[int, Event]] = collections.deque()
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.error: str | None = None

    def start(self) -> None:
        """Start publishing."""
        self._task = asyncio.create_task(self._drain(), name=f"outbox-{self.server}")

    def emit(self, event: Event) -> int:
        """Queue ``event``; its number."""
        self.last += 1
        self._queue.append((self.last, event))
        self._ready.set()
        return self.last

    @property
    def pending(self) -> int:
        """Events queued and not yet stored by the bus."""
        return len(self._queue)

    async def flush(self, timeout_s: float) -> bool:
        """Wait until everything queued is stored; False when the bus did not take it in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._queue and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return not self._queue

    async def close(self) -> None:
        """Stop publishing (what is still queued is lost with the process; recovery finds its media)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _drain(self) -> None:
        subject = event_subject(self.server)
        while True:
            if not self._queue:
                self._ready.clear()
                await self._ready.wait()
                continue
            number, event = self._queue[0]
            headers = {"valt-server": self.server, "valt-epoch": self.epoch, "valt-seq": str(number)}
            try:
                await self.bus.publish_durable(subject, event.encode(), f"{self.server}:{self.epoch}:{number}",
                                               headers)
            except Exception as err:  # noqa: BLE001 - the bus is away: keep the event, try again
                if self.error is None:
                    log.warning("media server %s: events not delivered (%s); %d waiting, retrying",
                                self.server, err, len(self._queue))
                self.error = str(err)
                await asyncio.sleep(RETRY_S)
                continue
            if self.error is not None:
                log.info("media server %s: events delivered again", self.server)
                self.error = None
            self._queue.popleft()
            self.published = number
