"""The audit log: every sign-in and every change, hash-chained so tampering shows."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from sqlmodel import select

from .db import Database
from .db.models import AuditEvent, User
from .db.types import utcnow


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    """SHA-256 over the previous hash and this event's fields, in a fixed order."""
    body = json.dumps(
        [prev_hash, event.at.isoformat(), event.actor_id, event.actor_name, event.action,
         event.target_type, event.target_id, event.detail, event.remote_addr],
        sort_keys=True, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


class AuditLog:
    """Appends audit events; one writer at a time so the chain stays linear in this process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = asyncio.Lock()

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
        async with self._lock, self.db.session() as s:
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
            )
            event.hash = event_hash(event.prev_hash, event)
            s.add(event)
            await s.commit()
            return event

    async def verify(self) -> int | None:
        """Check the whole chain; the id of the first bad event, or ``None`` if intact."""
        prev = ""
        async with self.db.session() as s:
            for event in (await s.exec(select(AuditEvent).order_by(AuditEvent.id))).all():
                if event.prev_hash != prev or event_hash(prev, event) != event.hash:
                    return event.id
                prev = event.hash
        return None
