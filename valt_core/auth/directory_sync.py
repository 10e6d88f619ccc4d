"""The scheduled directory sync: users of a directory backend checked against the directory.

Between sign-ins a person may leave the directory or change groups; a site expects Valt to
follow within minutes, not at the person's next sign-in (which, for someone who left, never
comes while their session may still be open). Each run asks every backend that can look
people up (:meth:`AuthBackend.look_up`) about its users: those gone are disabled (their tokens
then stop working at once) and the memberships the backend gave are made current. A disabled
user is never enabled again by the sync: that is an admin's decision.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from ..audit import AuditLog
from ..db import Database
from ..db.models import GroupMember, User
from ..redact import redact
from .access import sync_source_groups
from .base import AuthBackend

log = logging.getLogger(__name__)

#: People asked about per directory query.
BATCH = 200


@dataclass
class SyncResult:
    """What one run of the sync did, per backend."""

    checked: int = 0
    disabled: int = 0
    failed: bool = False


class DirectorySync:
    """Runs the sync now (:meth:`run_once`) or every ``interval_s`` (:meth:`start`)."""

    def __init__(self, db: Database, backends: dict[str, AuthBackend], audit: AuditLog, interval_s: float,
                 disable_user: Callable[[int], Awaitable[Any]], access_changed: Callable[[int], None]) -> None:
        self.db = db
        self.backends = backends
        self.audit = audit
        self.interval_s = interval_s
        #: Disables a user the way an admin does: signed out everywhere, live streams closed.
        self.disable_user = disable_user
        #: Tells live view that a user's groups changed (their streams are checked again).
        self.access_changed = access_changed
        self._task: asyncio.Task | None = None

    async def run_once(self) -> dict[str, SyncResult]:
        """Check the users of every backend that can look people up; per backend, what was done.

        A backend whose directory cannot be reached is left for the next run (its users are
        not disabled because the directory was down).
        """
        results: dict[str, SyncResult] = {}
        for name in self.directory_backends():
            backend = self.backends[name]
            async with self.db.session() as s:
                users = (await s.exec(select(User).where(User.auth_backend == name, User.disabled == False))).all()  # noqa: E712
            result = results[name] = SyncResult()
            for start in range(0, len(users), BATCH):
                batch = users[start:start + BATCH]
                try:
                    found = await backend.look_up([u.username for u in batch])
                except Exception as err:  # noqa: BLE001 - a directory down must not disable anyone
                    log.warning("directory sync of %s failed: %s", name, redact(f"{type(err).__name__}: {err}"))
                    result.failed = True
                    break
                if found is None:
                    break  # this backend cannot look people up
                await self._apply(name, batch, found, result)
        return results

    async def _apply(self, name: str, users: list[User], found: dict, result: SyncResult) -> None:
        gone, changed = [], []
        async with self.db.session() as s:
            for user in users:
                result.checked += 1
                identity = found.get(user.username)
                row = await s.get(User, user.id)
                if row is None:
                    continue
                if identity is None:
                    gone.append(row)
                    continue
                row.display_name = identity.display_name or row.display_name
                row.email = identity.email or row.email
                s.add(row)
                if identity.groups is not None:
                    before = set((await s.exec(select(GroupMember.group_id)
                                               .where(GroupMember.user_id == row.id))).all())
                    await sync_source_groups(s, row.id, name, identity.groups)
                    await s.flush()
                    after = set((await s.exec(select(GroupMember.group_id)
                                              .where(GroupMember.user_id == row.id))).all())
                    if before != after:
                        changed.append((row.id, row.username, sorted(identity.groups)))
            await s.commit()
        for uid, username, groups in changed:
            self.access_changed(uid)
            await self.audit.record("user.groups_synced", actor_name=f"directory sync ({name})", target_type="user",
                                    target_id=uid, detail={"username": username, "groups": groups})
        for row in gone:
            await self.disable_user(row.id)
            result.disabled += 1
            await self.audit.record("user.disable", actor_name=f"directory sync ({name})", target_type="user",
                                    target_id=row.id, detail={"username": row.username,
                                                              "reason": f"gone from the {name} directory"})

    def directory_backends(self) -> list[str]:
        """Names of the enabled backends that can look people up (the ones the sync checks)."""
        return [name for name, b in self.backends.items() if type(b).look_up is not AuthBackend.look_up]

    def start(self) -> None:
        """Run the sync every ``interval_s`` in the background (not at all when it is 0)."""
        if self.interval_s > 0 and self.directory_backends():
            self._task = asyncio.create_task(self._loop(), name="directory-sync")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.run_once()
            except Exception:  # noqa: BLE001 - the next run tries again
                log.exception("directory sync failed")

    async def stop(self) -> None:
        """Stop the background runs."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
