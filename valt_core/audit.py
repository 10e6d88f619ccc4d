"""The audit log: every sign-in, access and change, in a keyed hash chain.

Each event's ``hash`` is an HMAC-SHA256, with the audit key, over the previous event's hash
and this event's fields. The key is not in the database (``[audit] key``, or the file
``DATA_DIR/audit_key``) and is not the key that signs tokens, so someone who can write to the
database can delete or edit events but cannot recompute a chain that verifies. The chain stays
linear across processes (two app servers, a CLI command while the server runs): ``prev_hash``
is unique, so a writer that lost a race retries on the new last event. A chain alone cannot
show that its newest events were cut off, so each process also notes the newest event it wrote
in ``DATA_DIR/audit_head``, and verification expects to find it.

Events written before the chain was keyed (``keyed`` false, plain SHA-256) are accepted only
as the chain's beginning and are reported, since nothing proves them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import random
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from .db import Database
from .db.models import AuditEvent, User
from .db.types import utcnow
from .files import open_private

log = logging.getLogger(__name__)

#: Attempts at appending when other processes keep winning the race for the chain's end.
APPEND_ATTEMPTS = 100


def _body(prev_hash: str, event: AuditEvent) -> bytes:
    return json.dumps(
        [prev_hash, event.at.isoformat(), event.actor_id, event.actor_name, event.action,
         event.target_type, event.target_id, event.detail, event.remote_addr],
        sort_keys=True, separators=(",", ":"), default=str,
    ).encode()


def event_hash(prev_hash: str, event: AuditEvent, key: bytes | None) -> str:
    """The chain value of ``event``: HMAC-SHA256 with ``key`` (plain SHA-256 without one)."""
    if key is None:
        return hashlib.sha256(_body(prev_hash, event)).hexdigest()
    return hmac.new(key, _body(prev_hash, event), hashlib.sha256).hexdigest()


@dataclass
class AuditReport:
    """What a check of the whole chain found."""

    events: int = 0
    unkeyed: int = 0
    """Events from before the chain was keyed: in order, but unprovable."""
    first_bad: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """True when every event is in an unbroken chain and carries a valid keyed hash."""
        return self.first_bad is None and not self.problems and not self.unkeyed


@dataclass(frozen=True)
class AuditQuery:
    """Filters for reading the log; ``before_id`` pages backwards (newest first)."""

    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    limit: int = 100


class AuditLog:
    """Appends, reads and verifies audit events."""

    def __init__(self, db: Database, key: bytes, head_file: Path | None = None) -> None:
        self.db = db
        self.key = key
        self.head_file = head_file
        self._lock = asyncio.Lock()

    def _write_head(self, event: AuditEvent) -> None:
        # A chain cannot show that events were cut from its end; this file, kept off the
        # database, names the newest event this process wrote, and verification expects it.
        if self.head_file is None:
            return
        tmp = self.head_file.with_name(self.head_file.name + f".{os.getpid()}")
        try:
            with os.fdopen(open_private(tmp), "w") as f:
                f.write(f"{event.id} {event.hash}\n")
            os.replace(tmp, self.head_file)
        except OSError as err:
            # The event is in the database; a full disk must not turn the request into an
            # error. The next event that can be noted moves the head on.
            log.warning("audit head %s not updated: %s", self.head_file, err.strerror)

    def _read_head(self) -> tuple[int, str] | None:
        if self.head_file is None or not self.head_file.exists():
            return None
        try:
            ident, digest = self.head_file.read_text().split()
            return int(ident), digest
        except ValueError:
            return (0, "unreadable")

    async def record(
        self,
        action: str,
        *,
        actor: User | None = None,
        actor_name: str = "",
        target_type: str = "",
        target_id: Any = "",
        detail: dict[str, Any] | None = None,
        remote_addr: str = "",
    ) -> AuditEvent:
        """Append one event; ``detail`` must not contain secrets."""
        async with self._lock:
            for attempt in range(APPEND_ATTEMPTS):
                async with self.db.session() as s:
                    last = (await s.exec(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))).first()
                    event = AuditEvent(
                        at=utcnow(),
                        actor_id=actor.id if actor else None,
                        actor_name=actor.username if actor else actor_name,
                        action=action,
                        target_type=target_type,
                        target_id=str(target_id) if target_id != "" else "",
                        detail=detail or {},
                        remote_addr=remote_addr,
                        prev_hash=last.hash if last else "",
                        keyed=True,
                    )
                    event.hash = event_hash(event.prev_hash, event, self.key)
                    s.add(event)
                    try:
                        await s.commit()
                    except IntegrityError:
                        # Another process appended after our read: chain onto its event, after a
                        # short random pause so that the same writers do not collide again.
                        await s.rollback()
                        await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
                        continue
                    self._write_head(event)
                    return event
        raise RuntimeError(f"could not append to the audit log after {APPEND_ATTEMPTS} attempts")

    async def check(self) -> AuditReport:
        """Walk the whole chain in order and report what does not hold."""
        report = AuditReport()
        prev = ""
        seen_keyed = False
        head = self._read_head()
        head_found = False
        async with self.db.session() as s:
            result = await s.stream(select(AuditEvent).order_by(AuditEvent.id))
            async for (event,) in result:
                report.events += 1
                if event.keyed:
                    seen_keyed = True
                    expected = event_hash(prev, event, self.key)
                else:
                    report.unkeyed += 1
                    expected = event_hash(prev, event, None)
                    if seen_keyed:
                        report.problems.append(f"event {event.id}: unkeyed after keyed events (rewritten?)")
                if event.prev_hash != prev:
                    report.problems.append(f"event {event.id}: does not follow the event before it "
                                           "(an event was removed or inserted)")
                elif not hmac.compare_digest(expected, event.hash):
                    report.problems.append(f"event {event.id}: its content or hash was changed")
                if report.problems and report.first_bad is None:
                    report.first_bad = event.id
                if head is not None and event.id == head[0]:
                    head_found = hmac.compare_digest(event.hash, head[1])
                prev = event.hash
        if head is not None and not head_found:
            report.problems.append(f"event {head[0]}, written by this server, is missing or changed: "
                                   "events were removed from the end of the log")
            if report.first_bad is None:
                report.first_bad = head[0]
        return report

    async def verify(self) -> int | None:
        """The id of the first event where the chain breaks, or ``None`` if it holds."""
        return (await self.check()).first_bad

    async def events(self, q: AuditQuery) -> list[AuditEvent]:
        """Events matching ``q``, newest first, at most ``q.limit``."""
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(q.limit)
        if q.actor:
            query = query.where(AuditEvent.actor_name == q.actor)
        if q.action:
            # "camera.live" also finds "camera.live.open": actions are dotted families.
            query = query.where((AuditEvent.action == q.action) | AuditEvent.action.startswith(q.action + "."))
        if q.target_type:
            query = query.where(AuditEvent.target_type == q.target_type)
        if q.target_id:
            query = query.where(AuditEvent.target_id == q.target_id)
        if q.since:
            query = query.where(AuditEvent.at >= q.since)
        if q.until:
            query = query.where(AuditEvent.at < q.until)
        if q.before_id:
            query = query.where(AuditEvent.id < q.before_id)
        async with self.db.session() as s:
            return list((await s.exec(query)).all())


def event_json(event: AuditEvent) -> dict[str, Any]:
    """An audit event as the API and ``valt audit list --json`` show it."""
    return {"id": event.id, "at": event.at.isoformat(), "actor_id": event.actor_id, "actor": event.actor_name,
            "action": event.action, "target_type": event.target_type or None, "target_id": event.target_id or None,
            "detail": event.detail, "remote_addr": event.remote_addr or None, "hash": event.hash}
