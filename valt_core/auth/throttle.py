"""Sign-in throttling: per name-and-address lockout counted in the database, a per-address
rate limit, and a bound on concurrent password checks.

Three things an attacker tried, and what answers each:

- Many wrong passwords at once for one account. Each attempt *reserves* a failure with one
  conditional UPDATE before the password is checked, so however the attempts race, at most
  ``lockout_threshold`` of them are ever checked before the lock (a read-then-write counter
  lost most of its increments).
- Locking someone else out. Attempts are counted per user name typed *and* client address, so
  wrong passwords from one address lock that name for that address only. An unknown name is
  counted and answered exactly like a known one, so the answers do not tell which names exist.
- A flood of attempts for many names from one address (argon2 is deliberately slow: twelve at
  once slowed every other request fiftyfold). Failures per address are rate limited before any
  hashing, and at most ``max_concurrent_checks`` hashes run at once; beyond a short queue the
  answer is "busy, retry".
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from ..db import Database
from ..db.models import LoginThrottle
from ..db.types import utcnow
from ..errors import LoginFailed, ServiceBusy, TooManyAttempts
from ..settings import AuthSettings

# Rows of names nobody tried for this long are deleted (checked at most once a minute).
PRUNE_AFTER = timedelta(days=1)
WRONG = "wrong user name or password"

_table = LoginThrottle.__table__  # type: ignore[attr-defined]


class AttemptCounter:
    """The ``login_throttle`` table: reserve, fail, succeed and unlock, each one atomic statement."""

    def __init__(self, db: Database, settings: AuthSettings) -> None:
        self.db = db
        self.settings = settings
        self._pruned_at = 0.0

    def _insert_if_absent(self, username: str, remote_addr: str) -> sa.Executable:
        values = {"username": username, "remote_addr": remote_addr, "failures": 0, "locked_until": None,
                  "last_attempt_at": utcnow()}
        if self.db.engine.dialect.name == "sqlite":
            return sqlite.insert(_table).values(values).on_conflict_do_nothing()
        return mysql.insert(_table).values(values).prefix_with("IGNORE")

    def _row(self, username: str, remote_addr: str) -> sa.ColumnElement[bool]:
        return sa.and_(_table.c.username == username, _table.c.remote_addr == remote_addr)

    async def reserve(self, username: str, remote_addr: str) -> None:
        """Count this attempt as a failure until it succeeds; :class:`LoginFailed` when locked.

        The count only grows while below the threshold and unlocked, in one UPDATE, so
        concurrent attempts can never exceed it.
        """
        now = utcnow()
        where = self._row(username, remote_addr)
        # Two statements, each its own transaction: one InnoDB transaction holding the insert's
        # shared lock while asking for the update's exclusive one deadlocks under a race.
        async with self.db.engine.begin() as conn:
            await conn.execute(self._insert_if_absent(username, remote_addr))
        c = _table.c
        async with self.db.engine.begin() as conn:
            # A lock that ran out starts a fresh count. ``failures`` is set first: MySQL evaluates
            # SET clauses left to right with the values already assigned.
            reserved = await conn.execute(
                sa.update(_table)
                .where(where, sa.or_(sa.and_(c.locked_until.is_(None), c.failures < self.settings.lockout_threshold),
                                     c.locked_until <= now))
                .ordered_values((c.failures, sa.case((c.locked_until <= now, 1), else_=c.failures + 1)),
                                (c.locked_until, None), (c.last_attempt_at, now)))
        if reserved.rowcount != 1:
            raise LoginFailed(WRONG)
        await self._prune()

    async def failed(self, username: str, remote_addr: str) -> bool:
        """The checked password was wrong; locks the pair once the threshold is reached.

        Returns True when this failure locked it.
        """
        until = utcnow() + timedelta(minutes=self.settings.lockout_minutes)
        async with self.db.engine.begin() as conn:
            locked = await conn.execute(
                sa.update(_table)
                .where(self._row(username, remote_addr), _table.c.locked_until.is_(None),
                       _table.c.failures >= self.settings.lockout_threshold)
                .values(locked_until=until))
        return locked.rowcount == 1

    async def release(self, username: str, remote_addr: str) -> None:
        """Give back this attempt's reservation: its password was never checked."""
        c = _table.c
        async with self.db.engine.begin() as conn:
            await conn.execute(sa.update(_table).where(self._row(username, remote_addr), c.failures > 0)
                               .values(failures=c.failures - 1))

    async def succeeded(self, username: str, remote_addr: str) -> None:
        """The password was right: forget this pair's failures."""
        async with self.db.engine.begin() as conn:
            await conn.execute(sa.delete(_table).where(self._row(username, remote_addr)))

    async def unlock(self, username: str) -> int:
        """Forget every failure and lock of ``username`` (from every address); rows removed."""
        async with self.db.engine.begin() as conn:
            result = await conn.execute(sa.delete(_table).where(_table.c.username == username))
        return result.rowcount

    async def locked_addresses(self, username: str) -> list[str]:
        """The client addresses ``username`` is locked for now."""
        async with self.db.engine.connect() as conn:
            rows = await conn.execute(sa.select(_table.c.remote_addr).where(
                _table.c.username == username, _table.c.locked_until > utcnow()))
            return sorted(r[0] for r in rows)

    async def _prune(self) -> None:
        if time.monotonic() - self._pruned_at < 60:
            return
        self._pruned_at = time.monotonic()
        async with self.db.engine.begin() as conn:
            await conn.execute(sa.delete(_table).where(
                _table.c.last_attempt_at < utcnow() - PRUNE_AFTER,
                sa.or_(_table.c.locked_until.is_(None), _table.c.locked_until < utcnow())))


class AddressLimiter:
    """Failed sign-ins per client address in a sliding minute (kept in this process).

    Checked before any password is hashed; only failures count, so many people signing in
    correctly from behind one NAT are never held up.
    """

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._failures: dict[str, collections.deque[float]] = {}

    def _window(self, remote_addr: str, now: float) -> collections.deque[float]:
        times = self._failures.setdefault(remote_addr, collections.deque())
        while times and now - times[0] >= 60:
            times.popleft()
        return times

    def check(self, remote_addr: str) -> None:
        """Raise :class:`TooManyAttempts` (with ``retry_after_s``) while the address is over its rate."""
        if self.per_minute <= 0:
            return
        now = time.monotonic()
        times = self._window(remote_addr, now)
        if len(times) >= self.per_minute:
            wait = math.ceil(60 - (now - times[0]))
            raise TooManyAttempts(f"too many failed sign-ins from your address; try again in {wait} s",
                                  retry_after_s=wait)
        if not times:
            self._failures.pop(remote_addr, None)

    def failed(self, remote_addr: str) -> None:
        """Count one failed sign-in from ``remote_addr``."""
        if self.per_minute <= 0:
            return
        now = time.monotonic()
        self._window(remote_addr, now).append(now)
        if len(self._failures) > 10_000:
            # Forget addresses with nothing in the last minute, so a spray of addresses cannot
            # grow this without end.
            for addr in [a for a, t in self._failures.items() if now - t[-1] >= 60]:
                del self._failures[addr]


class CheckSlots:
    """At most ``size`` password checks at once, and at most ``queue`` waiting for a turn."""

    def __init__(self, size: int, queue: int) -> None:
        self._slots = asyncio.Semaphore(size)
        self.queue = queue
        self.waiting = 0

    async def __aenter__(self) -> None:
        if self._slots.locked() and self.waiting >= self.queue:
            raise ServiceBusy("the server is busy checking passwords; try again in a moment", retry_after_s=2)
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1

    async def __aexit__(self, *exc: object) -> None:
        self._slots.release()
