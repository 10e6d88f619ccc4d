"""The bus contract: how the app server and media servers talk, whatever carries it.

Four kinds of traffic, the ones NATS offers, so the in-process bus and the NATS bus are the
same thing to their users:

- **request/reply** for commands (``serve`` a subject, ``request`` it, one answer or a timeout);
- **publish/subscribe**, at most once, for what only matters now (relayed live fragments);
- **durable streams**, at least once and in order, for what must not be lost (the segment
  index): a message is delivered again until its handler returns, and its ``msg_id`` lets the
  stream drop a copy published twice;
- **key-value buckets** with revisions, for presence and camera leases: ``create`` only when
  absent, ``update`` only at the revision the writer last saw (compare and swap).

Subjects are dot-separated tokens; ``*`` matches one token and ``>`` the rest, as in NATS.
Payloads are bytes; :mod:`valt_core.bus.messages` gives them types.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from ..errors import ValtError

#: The subjects of the durable stream (``publish_durable`` refuses any other).
DURABLE_SUBJECTS = "valt.index.>"


class BusUnavailable(ValtError):
    """The bus cannot be reached, or nobody answered a request in time."""

    http_status = 503
    code = "bus_unavailable"


class BusPermissionDenied(ValtError):
    """The bus refused this client a subject (its credentials do not allow it); trying again will not help."""

    http_status = 403
    code = "bus_permission_denied"


class KeyExists(ValtError):
    """``create`` found the key already there."""

    http_status = 409
    code = "key_exists"


class WrongRevision(ValtError):
    """``update`` or ``delete`` was given a revision that is no longer the key's latest."""

    http_status = 409
    code = "wrong_revision"


@dataclass
class Message:
    """One message: its subject, bytes and string headers."""

    subject: str
    data: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """A key-value entry: the value and the revision that wrote it."""

    key: str
    value: bytes
    revision: int


Handler = Callable[[Message], Awaitable[None]]
Responder = Callable[[Message], Awaitable[Message]]


class Subscription(ABC):
    """A live subscription; ``close`` ends it."""

    @abstractmethod
    async def close(self) -> None:
        """Stop receiving."""


class KeyValue(ABC):
    """A key-value bucket with per-key revisions (and, when made with a TTL, expiry)."""

    @abstractmethod
    async def get(self, key: str) -> Entry | None:
        """The key's entry, or ``None`` when absent (or expired)."""

    @abstractmethod
    async def create(self, key: str, value: bytes) -> int:
        """Write ``key`` only if absent; its revision. :class:`KeyExists` otherwise."""

    @abstractmethod
    async def update(self, key: str, value: bytes, revision: int) -> int:
        """Write ``key`` only if its revision is still ``revision``; :class:`WrongRevision` otherwise."""

    @abstractmethod
    async def put(self, key: str, value: bytes) -> int:
        """Write ``key`` unconditionally; the new revision."""

    @abstractmethod
    async def delete(self, key: str, revision: int | None = None) -> None:
        """Remove ``key`` (only at ``revision`` when given)."""

    @abstractmethod
    async def keys(self) -> list[str]:
        """Every present key."""


class Bus(ABC):
    """The messaging between the parts of Valt (see the module docstring)."""

    @abstractmethod
    async def start(self) -> None:
        """Connect (the in-process bus has nothing to connect to)."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect, ending every subscription."""

    @abstractmethod
    async def publish(self, subject: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        """Send to whoever listens now (at most once)."""

    @abstractmethod
    async def subscribe(self, subject: str, handler: Handler, queue: str | None = None) -> Subscription:
        """Call ``handler`` for each message on ``subject``; with ``queue``, one member of the group gets each."""

    @abstractmethod
    async def serve(self, subject: str, responder: Responder, queue: str | None = None) -> Subscription:
        """Answer requests on ``subject`` with ``responder``'s message."""

    @abstractmethod
    async def request(self, subject: str, data: bytes, timeout_s: float,
                      headers: dict[str, str] | None = None) -> Message:
        """Ask and wait for the answer; :class:`BusUnavailable` when none comes in ``timeout_s``."""

    @abstractmethod
    async def publish_durable(self, subject: str, data: bytes, msg_id: str,
                              headers: dict[str, str] | None = None) -> None:
        """Store a message in the durable stream (``subject`` under :data:`DURABLE_SUBJECTS`); returns once stored.

        :class:`BusUnavailable` when it could not be stored (the caller keeps it and tries
        again); a second publication with the same ``msg_id`` is dropped by the stream.
        """

    @abstractmethod
    async def consume_durable(self, subject: str, durable: str, handler: Handler) -> Subscription:
        """Deliver the durable stream's messages on ``subject`` in order, at least once.

        ``durable`` names the consumer, so a restarted consumer carries on where it stopped. A
        message is acknowledged when ``handler`` returns and delivered again when it raises.
        """

    @abstractmethod
    async def durable_pending(self, durable: str) -> int:
        """How many stored messages the consumer ``durable`` has not acknowledged yet."""

    @abstractmethod
    async def key_value(self, bucket: str, ttl_s: float | None = None) -> KeyValue:
        """The bucket, made on first use (entries expire after ``ttl_s`` when given)."""


def subject_matches(pattern: str, subject: str) -> bool:
    """True when ``subject`` matches ``pattern`` (NATS wildcards: ``*`` one token, ``>`` the rest)."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)
