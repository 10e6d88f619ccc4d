"""Redirect sign-in flows kept between their start and the provider's answer.

The browser carries only a random state value to the provider and back; what the backend needs
to check the answer (a PKCE verifier, a nonce, a SAML request id) stays in the database, found
by the state's SHA-256, so several app servers can share it and a leak of the table gives no
usable state. A flow is deleted when it is taken, so an answer cannot be replayed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import timedelta

import sqlalchemy as sa

from ..db import Database
from ..db.models import SignInFlow
from ..db.types import utcnow

#: How long a person has at the provider before the flow is forgotten.
FLOW_LIFETIME = timedelta(minutes=10)


def digest(value: str) -> str:
    """The stored form of a state or browser value."""
    return hashlib.sha256(value.encode()).hexdigest()


class SignInFlows:
    """Opens and takes (once) redirect sign-in flows."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def open(self, state: str, backend: str, data: Mapping[str, str], next_path: str,
                   browser: str | None) -> None:
        """Keep a flow under ``state``; ``browser`` is the flow cookie's value, if bound."""
        now = utcnow()
        async with self.db.session() as s:
            await s.exec(sa.delete(SignInFlow).where(SignInFlow.expires_at <= now))
            s.add(SignInFlow(state_hash=digest(state), backend=backend, browser_hash=digest(browser) if browser else "",
                             next_path=next_path, data=json.dumps(dict(data)), expires_at=now + FLOW_LIFETIME))
            await s.commit()

    async def take(self, state: str, backend: str) -> SignInFlow | None:
        """The flow of ``state`` for ``backend``, deleted as it is read; ``None`` when there is
        none (never opened, already used, or expired)."""
        if not state:
            return None
        async with self.db.session() as s:
            flow = await s.get(SignInFlow, digest(state))
            if flow is None:
                return None
            # Only the one request that deletes the row may use it: two answers racing with
            # the same state cannot both sign in.
            deleted = await s.exec(sa.delete(SignInFlow).where(SignInFlow.state_hash == flow.state_hash))
            await s.commit()
        if deleted.rowcount != 1 or flow.backend != backend or flow.expires_at <= utcnow():
            return None
        return flow

    @staticmethod
    def data(flow: SignInFlow) -> dict[str, str]:
        """What the backend stored at the start."""
        return json.loads(flow.data)
