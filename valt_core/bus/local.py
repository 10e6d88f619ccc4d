"""The in-process bus: `valt serve` on one machine, no broker to install.

It keeps the contract of :mod:`valt_core.bus.base` exactly (bytes in, bytes out, the same
subjects, redelivery until the handler returns), so the code above it runs unchanged over
NATS. The durable stream lives in memory: it survives a consumer's failures (a database that
is down), not the process; after a crash in one process the media on disk is recovered from
storage, as it always was.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time

from .base import (
    DURABLE_SUBJECTS,
    Bus,
    BusUnavailable,
    Entry,
    Handler,
    KeyExists,
    KeyValue,
    Message,
    Responder,
    Subscription,
    WrongRevision,
    subject_matches,
)

log = logging.getLogger(__name__)
#: How soon a durable message whose handler failed is delivered again.
REDELIVER_S = 1.0
#: Message ids remembered for dropping a second publication.
DEDUPE_WINDOW = 100_000


class _Sub(Subscription):
    """A subscriber (``handler``) or a responder; a subscriber's messages reach it one at a time, in order."""

    def __init__(self, bus: "InProcessBus", subject: str, handler: Handler | None, queue: str | None,
                 responder: Responder | None = None) -> None:
        self.bus, self.subject, self.handler, self.queue, self.responder = bus, subject, handler, queue, responder
        self.closed = False
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task | None = None

    def deliver(self, msg: Message) -> None:
        """Queue ``msg`` for the handler (started on the first message)."""
        self.inbox.put_nowait(msg)
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name=f"bus-sub-{self.subject}")

    async def _run(self) -> None:
        assert self.handler is not None
        while True:
            msg = await self.inbox.get()
            try:
                await self.handler(msg)
            except Exception:  # noqa: BLE001 - one message's failure must not end the subscription
                log.exception("bus handler for %s failed", msg.subject)

    async def close(self) -> None:
        """Stop receiving (a message being handled is cancelled)."""
        self.closed = True
        if self in self.bus._subs:
            self.bus._subs.remove(self)
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class _Consumer(Subscription):
    """A durable consumer: a cursor into the stream and the task that delivers from it."""

    def __init__(self, bus: "InProcessBus", subject: str, durable: str, handler: Handler) -> None:
        self.bus, self.subject, self.durable, self.handler = bus, subject, durable, handler
        # Its place is held from now on, so a consumer that runs ahead cannot trim what this one has not had.
        bus._cursors.setdefault(durable, bus._first)
        self.task = asyncio.create_task(self._run(), name=f"bus-consumer-{durable}")

    async def _run(self) -> None:
        bus = self.bus
        while True:
            cursor = max(bus._cursors.get(self.durable, 0), bus._first)
            if cursor >= bus._first + len(bus._stream):
                bus._appended.clear()
                await bus._appended.wait()
                continue
            msg = bus._stream[cursor - bus._first]
            if subject_matches(self.subject, msg.subject):
                try:
                    await self.handler(msg)
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # noqa: BLE001 - at least once: deliver it again
                    log.warning("bus consumer %s: %s not handled (%s); again in %g s",
                                self.durable, msg.subject, err, bus.redeliver_s)
                    await asyncio.sleep(bus.redeliver_s)
                    continue
            bus._cursors[self.durable] = cursor + 1
            bus._trim()

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        if self in self.bus._consumers:
            self.bus._consumers.remove(self)


class _Bucket(KeyValue):
    def __init__(self, ttl_s: float | None) -> None:
        self.ttl_s = ttl_s
        self.entries: dict[str, tuple[Entry, float]] = {}
        self.revisions = itertools.count(1)

    def _live(self, key: str) -> Entry | None:
        held = self.entries.get(key)
        if held is None:
            return None
        entry, written = held
        if self.ttl_s is not None and time.monotonic() - written > self.ttl_s:
            del self.entries[key]
            return None
        return entry

    def _write(self, key: str, value: bytes) -> int:
        entry = Entry(key, bytes(value), next(self.revisions))
        self.entries[key] = (entry, time.monotonic())
        return entry.revision

    async def get(self, key: str) -> Entry | None:
        return self._live(key)

    async def create(self, key: str, value: bytes) -> int:
        if self._live(key) is not None:
            raise KeyExists(f"{key} exists")
        return self._write(key, value)

    async def update(self, key: str, value: bytes, revision: int) -> int:
        entry = self._live(key)
        if entry is None or entry.revision != revision:
            raise WrongRevision(f"{key} is not at revision {revision}")
        return self._write(key, value)

    async def put(self, key: str, value: bytes) -> int:
        return self._write(key, value)

    async def delete(self, key: str, revision: int | None = None) -> None:
        entry = self._live(key)
        if revision is not None and (entry is None or entry.revision != revision):
            raise WrongRevision(f"{key} is not at revision {revision}")
        self.entries.pop(key, None)

    async def keys(self) -> list[str]:
        return [k for k in list(self.entries) if self._live(k) is not None]


class InProcessBus(Bus):
    """A bus inside one process (see the module docstring).

    ``redeliver_s``: how soon a durable message whose handler raised is delivered again.
    """

    def __init__(self, redeliver_s: float = REDELIVER_S) -> None:
        self.redeliver_s = redeliver_s
        self._subs: list[_Sub] = []
        self._consumers: list[_Consumer] = []
        # The stream from absolute position ``_first`` on; what every consumer has passed is dropped.
        self._stream: collections.deque[Message] = collections.deque()
        self._first = 0
        self._seen_ids: dict[str, None] = {}
        self._cursors: dict[str, int] = {}
        self._appended = asyncio.Event()
        self._buckets: dict[str, _Bucket] = {}

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """End every subscription and consumer."""
        for consumer in list(self._consumers):
            await consumer.close()
        for sub in list(self._subs):
            await sub.close()

    async def publish(self, subject: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        """Queue the message for each current subscriber (one per queue group), without waiting for them."""
        msg = Message(subject, bytes(data), dict(headers or {}))
        groups: set[str] = set()
        for sub in list(self._subs):
            if sub.handler is None or not subject_matches(sub.subject, subject):
                continue
            if sub.queue is not None:
                if sub.queue in groups:
                    continue
                groups.add(sub.queue)
            sub.deliver(msg)

    def _trim(self) -> None:
        done = min(self._cursors.values(), default=self._first)
        while self._first < done and self._stream:
            self._stream.popleft()
            self._first += 1

    async def subscribe(self, subject: str, handler: Handler, queue: str | None = None) -> Subscription:
        """Receive what is published on ``subject`` from now on."""
        sub = _Sub(self, subject, handler, queue)
        self._subs.append(sub)
        return sub

    async def serve(self, subject: str, responder: Responder, queue: str | None = None) -> Subscription:
        """Answer requests on ``subject``."""
        sub = _Sub(self, subject, None, queue, responder)
        self._subs.append(sub)
        return sub

    async def request(self, subject: str, data: bytes, timeout_s: float,
                      headers: dict[str, str] | None = None) -> Message:
        """The first responder's answer, within ``timeout_s``."""
        responder = next((s.responder for s in self._subs
                          if s.responder is not None and subject_matches(s.subject, subject)), None)
        if responder is None:
            raise BusUnavailable(f"nobody answers {subject}")
        msg = Message(subject, bytes(data), dict(headers or {}))
        try:
            answer = await asyncio.wait_for(responder(msg), timeout_s)
        except asyncio.TimeoutError as err:
            raise BusUnavailable(f"no answer on {subject} within {timeout_s:g} s") from err
        except Exception as err:  # noqa: BLE001 - as over NATS: the requester learns the responder failed
            log.exception("bus: responder for %s failed", subject)
            raise BusUnavailable(f"the responder on {subject} failed ({type(err).__name__})") from err
        # A copy, as if it had crossed a wire: the responder keeps no handle on what the requester gets.
        return Message(answer.subject, bytes(answer.data), dict(answer.headers))

    async def publish_durable(self, subject: str, data: bytes, msg_id: str,
                              headers: dict[str, str] | None = None) -> None:
        """Append to the stream (a repeated ``msg_id`` is dropped)."""
        if not subject_matches(DURABLE_SUBJECTS, subject):
            raise ValueError(f"{subject} is not a subject of the durable stream ({DURABLE_SUBJECTS})")
        if msg_id in self._seen_ids:
            return
        self._seen_ids[msg_id] = None
        if len(self._seen_ids) > DEDUPE_WINDOW:
            self._seen_ids.pop(next(iter(self._seen_ids)))
        self._stream.append(Message(subject, bytes(data), dict(headers or {})))
        self._appended.set()

    async def consume_durable(self, subject: str, durable: str, handler: Handler) -> Subscription:
        """Deliver the stream from where ``durable`` stopped (the start, for a new one)."""
        consumer = _Consumer(self, subject, durable, handler)
        self._consumers.append(consumer)
        return consumer

    async def durable_pending(self, durable: str) -> int:
        """Messages after the consumer's place (the one being handled included)."""
        return self._first + len(self._stream) - max(self._cursors.get(durable, 0), self._first)

    async def key_value(self, bucket: str, ttl_s: float | None = None) -> KeyValue:
        """The bucket, made on first use."""
        if bucket not in self._buckets:
            self._buckets[bucket] = _Bucket(ttl_s)
        return self._buckets[bucket]
