"""Who may do what, and who may see which recording: Valt's one access policy.

**Rights** (:data:`RIGHTS`) are given to groups, and to single users, whose own grants can
only add. A grant names one room or every room; the rights of :data:`ROOM_RIGHTS` are then
held in those rooms only (a clinic's rooms), the others anywhere. A user holds the union of
their own grants and those of every group they are in. Three built-in groups carry what the
roles of earlier versions granted: Administrators, Operators and Viewers
(:data:`BUILTIN_RIGHTS`).

**Recordings** a user may see (:func:`recording_filter`, :func:`recording_reach`):

- their own (they are its author);
- those of authors their groups were given access to (:class:`~valt_core.db.models.VideoAccess`:
  one author, the members of a group, or every author), in the rooms where they hold
  ``recordings.view``;
- those shared with them or a group of theirs, until the share ends;
- every recording, with ``recordings.view_all`` (Administrators).

A recording with no room (an upload made outside any room) counts as room 0, as a camera
outside any room does: only grants for every room reach it through room rights.

Seeing needs ``recordings.view`` at all; downloading media needs ``clips.download`` in the
recording's room, or a share with download. A recording a user may not see does not exist for
them: the API answers 404. Every route, page, live token and media read asks this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

import sqlalchemy as sa
from sqlmodel import select

from ..db.models import ROLES, Group, GroupMember, Recording, RecordingShare, Right, VideoAccess
from ..db.types import utcnow
from ..errors import ConfigError, ValidationFailed

if TYPE_CHECKING:
    from ..db import Database
    from ..db.models import User

#: Every right, with what it allows (the admin page and the docs show these words).
RIGHTS: dict[str, str] = {
    "rooms.view": "See rooms and their state",
    "cameras.view": "See cameras and their state",
    "live.watch": "Watch cameras live (Observe)",
    "recordings.record": "Start, pause and stop recordings",
    "cameras.control": "Move cameras (PTZ) and their presets",
    "recordings.view": "Review recordings they have access to",
    "recordings.view_all": "See every recording, whoever made it",
    "recordings.edit": "Rename recordings and edit their notes",
    "recordings.share": "Share recordings with users and groups",
    "recordings.change_author": "Change who a recording's author is (and so who sees it)",
    "recordings.delete": "Delete recordings",
    "recordings.hold": "Put recordings under legal hold (no one can delete them) and lift it",
    "uploads.create": "Upload recordings made offline (the mobile app), as new recordings",
    "markers.write": "Add markers, and edit and delete their own",
    "markers.manage": "Edit and delete anyone's markers",
    "clips.create": "Cut clips",
    "clips.download": "Download recordings' media and clips",
    "users.manage": "Users and groups: add, disable, rights, video access",
    "rooms.manage": "Add and change rooms",
    "cameras.manage": "Add, change and remove cameras",
    "servers.manage": "Add and change media servers, move rooms between them",
    "system.view": "See the system: media servers, plugins, settings",
    "audit.view": "Read the audit log",
}
#: Rights that a grant may limit to some rooms.
ROOM_RIGHTS = frozenset({"rooms.view", "cameras.view", "live.watch", "recordings.record", "cameras.control",
                         "recordings.view", "recordings.edit", "recordings.hold", "markers.write", "clips.create",
                         "clips.download", "uploads.create"})
ALL_PERMISSIONS = frozenset(RIGHTS)

_VIEWER = frozenset({"rooms.view", "cameras.view", "live.watch", "recordings.view", "clips.download"})
_OPERATOR = _VIEWER | {"recordings.record", "recordings.edit", "markers.write", "clips.create", "cameras.control",
                       "uploads.create"}
#: The rights of the built-in groups, by the role they stand for (as migrations 0005, 0007 and
#: 0008 made them).
BUILTIN_RIGHTS: dict[str, frozenset[str]] = {
    "admin": ALL_PERMISSIONS,
    "operator": frozenset(_OPERATOR),
    "viewer": _VIEWER,
}
#: The built-in groups' names, by role.
BUILTIN_NAMES = {"admin": "Administrators", "operator": "Operators", "viewer": "Viewers"}

Reach = Literal["view", "download"]


@dataclass(frozen=True)
class Access:
    """What one user may do, read once per request (:func:`load_access`)."""

    user_id: int | None
    #: right -> the rooms it is held in; ``None``: every room.
    rights: Mapping[str, frozenset[int] | None] = field(default_factory=dict)
    group_ids: frozenset[int] = frozenset()
    #: Video access: every author's recordings, or these authors', or these groups' members'.
    every_author: bool = False
    author_ids: frozenset[int] = frozenset()
    author_group_ids: frozenset[int] = frozenset()
    #: The most powerful built-in group the user is in (``admin``, ``operator``, ``viewer``), or "".
    role: str = ""

    def allows(self, right: str, room_id: int | None = None) -> bool:
        """Whether the user holds ``right``: anywhere, or in ``room_id`` when one is given."""
        if right not in self.rights:
            return False
        rooms = self.rights[right]
        return rooms is None or room_id is None and bool(rooms) or room_id in rooms

    def rooms(self, right: str) -> frozenset[int] | None:
        """The rooms ``right`` is held in (``None``: every room; empty: none)."""
        return self.rights.get(right, frozenset())


NOBODY = Access(user_id=None)


async def load_access(db: "Database", user: "User") -> Access:
    """The user's :class:`Access`: their groups' grants and their own (a disabled user: none)."""
    if user.disabled or user.id is None:
        return NOBODY
    async with db.session() as s:
        groups = (await s.exec(select(GroupMember.group_id, Group.builtin)
                               .join(Group, Group.id == GroupMember.group_id)
                               .where(GroupMember.user_id == user.id))).all()
        group_ids = frozenset(g for g, _ in groups)
        owners = [Right.user_id == user.id]
        if group_ids:
            owners.append(Right.group_id.in_(group_ids))
        grants = (await s.exec(select(Right.right, Right.room_id).where(sa.or_(*owners)))).all()
        video = (await s.exec(select(VideoAccess.author_id, VideoAccess.author_group_id)
                              .where(VideoAccess.group_id.in_(group_ids)))).all() if group_ids else []
    rights: dict[str, set[int] | None] = {}
    for right, room_id in grants:
        if right not in RIGHTS:
            continue  # a right a later version dropped grants nothing
        if room_id is None or right not in ROOM_RIGHTS:
            rights[right] = None
        elif rights.get(right, set()) is not None:
            rights.setdefault(right, set()).add(room_id)  # type: ignore[union-attr]
    builtin = {b for _, b in groups if b}
    return Access(
        user_id=user.id,
        rights={k: (None if v is None else frozenset(v)) for k, v in rights.items()},
        group_ids=group_ids,
        every_author=any(a is None and g is None for a, g in video),
        author_ids=frozenset(a for a, _ in video if a is not None),
        author_group_ids=frozenset(g for _, g in video if g is not None),
        role=next((r for r in ROLES if r in builtin), ""),
    )


async def builtin_groups(s) -> dict[str, int]:
    """The built-in groups' ids by role (``admin``, ``operator``, ``viewer``)."""
    found = dict((await s.exec(select(Group.builtin, Group.id).where(Group.builtin != ""))).all())
    missing = [r for r in ROLES if r not in found]
    if missing:
        raise ConfigError(f"the built-in groups {missing} are missing: run `valt db upgrade`")
    return found


async def set_role(s, user_id: int, role: str | None) -> None:
    """Put the user in the built-in group of ``role``, and out of the other two (in session ``s``).

    ``None``: in none of them (what they may do then comes from their other groups only).
    """
    if role is not None and role not in ROLES:
        raise ValidationFailed(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    groups = await builtin_groups(s)
    for row in (await s.exec(select(GroupMember).where(GroupMember.user_id == user_id,
                                                       GroupMember.group_id.in_(groups.values())))).all():
        if role is None or row.group_id != groups[role]:
            await s.delete(row)
    if role is not None and await s.get(GroupMember, (groups[role], user_id)) is None:
        s.add(GroupMember(group_id=groups[role], user_id=user_id))


async def sync_source_groups(s, user_id: int, source: str, names: Sequence[str]) -> list[str]:
    """Make the user's memberships that came from auth backend ``source`` exactly the groups
    named ``names`` (in session ``s``); memberships an admin gave are left as they are.

    Names of groups that do not exist are ignored. Returns the names of the groups of ``names``
    the user is now in, sorted.
    """
    found = (await s.exec(select(Group.id, Group.name).where(Group.name.in_(list(names))))).all() if names else []
    groups = dict(found)
    rows = (await s.exec(select(GroupMember).where(GroupMember.user_id == user_id))).all()
    held = {row.group_id for row in rows}
    for row in rows:
        if row.source == source and row.group_id not in groups:
            await s.delete(row)
    s.add_all([GroupMember(group_id=gid, user_id=user_id, source=source) for gid in groups if gid not in held])
    return sorted(groups.values())


def _active_shares(access: Access) -> Any:
    """Shares with the user or one of their groups that have not ended."""
    whom = [RecordingShare.user_id == access.user_id]
    if access.group_ids:
        whom.append(RecordingShare.group_id.in_(access.group_ids))
    return sa.and_(sa.or_(*whom), sa.or_(RecordingShare.until.is_(None), RecordingShare.until > utcnow()))


def _own_reach(access: Access) -> Any:
    """Recordings the user sees other than by a share: theirs, by video access, or all."""
    if access.allows("recordings.view_all"):
        return sa.true()
    mine = Recording.author_id == access.user_id
    authors = []
    if access.every_author:
        authors.append(sa.true())
    if access.author_ids:
        authors.append(Recording.author_id.in_(access.author_ids))
    if access.author_group_ids:
        authors.append(Recording.author_id.in_(select(GroupMember.user_id)
                                               .where(GroupMember.group_id.in_(access.author_group_ids))))
    if not authors:
        return mine
    rooms = access.rooms("recordings.view")
    in_rooms = sa.true() if rooms is None else Recording.room_id.in_(rooms)
    return sa.or_(mine, sa.and_(in_rooms, sa.or_(*authors)))


def recording_filter(access: Access) -> Any:
    """A SQL condition on ``recordings`` that holds for exactly the recordings the user may see."""
    if not access.allows("recordings.view"):
        return sa.false()
    return sa.or_(_own_reach(access), Recording.id.in_(select(RecordingShare.recording_id)
                                                       .where(_active_shares(access))))


def shared_with_filter(access: Access) -> Any:
    """A SQL condition on ``recordings``: shared with the user or a group of theirs ("Shared with me")."""
    return Recording.id.in_(select(RecordingShare.recording_id).where(_active_shares(access)))


async def recording_reach(db: "Database", access: Access, recording: Recording) -> Reach | None:
    """How far the user reaches ``recording``: ``None`` (they may not see it), ``view`` or ``download``."""
    if not access.allows("recordings.view"):
        return None
    async with db.session() as s:
        own = (await s.exec(select(Recording.id).where(Recording.id == recording.id, _own_reach(access)))).first()
        if own is not None and access.allows("clips.download", recording.room_id or 0):
            return "download"
        shares = (await s.exec(select(RecordingShare.can_download)
                               .where(RecordingShare.recording_id == recording.id, _active_shares(access)))).all()
    if any(shares):
        return "download"  # a share with download gives it, whatever the room's rights
    return "view" if own is not None or shares else None


async def may_share(db: "Database", access: Access, recording: Recording) -> bool:
    """Whether the user may share ``recording``: the right, and their own reach (not a share's)."""
    if not access.allows("recordings.share"):
        return False
    async with db.session() as s:
        return (await s.exec(select(Recording.id).where(Recording.id == recording.id,
                                                        _own_reach(access)))).first() is not None
