"""Roles and the permissions each grants, and who may see which recording.

The role table is read by every route's check. Which recordings a user may see is decided here
too, in one place: :func:`recording_filter` for lists (a SQL condition) and
:func:`may_see_recording` for one recording. Every route, token and media read that touches a
recording asks these; the access issue replaces their rules, not their callers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from ..db.models import Recording, User

VIEWER_PERMISSIONS = frozenset({
    "rooms.view",
    "cameras.view",
    "live.watch",
    "recordings.view",
})
OPERATOR_PERMISSIONS = VIEWER_PERMISSIONS | {
    "recordings.record",
    "recordings.edit",
    "markers.write",
    "clips.create",
    "cameras.control",
}
ADMIN_PERMISSIONS = OPERATOR_PERMISSIONS | {
    "rooms.manage",
    "cameras.manage",
    "users.manage",
    "servers.manage",
    "system.view",
    "audit.view",
    "recordings.delete",
    "markers.manage",
}

#: Role name -> permissions it grants. Roles are ordered from most to least powerful.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(ADMIN_PERMISSIONS),
    "operator": frozenset(OPERATOR_PERMISSIONS),
    "viewer": frozenset(VIEWER_PERMISSIONS),
}
ALL_PERMISSIONS = frozenset().union(*ROLE_PERMISSIONS.values())


def role_allows(role: str, permission: str) -> bool:
    """True when ``role`` grants ``permission``; unknown roles grant nothing."""
    return permission in ROLE_PERMISSIONS.get(role, frozenset())


def recording_filter(user: "User") -> Any:
    """A SQL condition on ``recordings`` that holds for exactly the recordings ``user`` may see.

    Today every role that may view recordings sees them all; a disabled user sees none.
    """
    if user.disabled or not role_allows(user.role, "recordings.view"):
        return sa.false()
    return sa.true()


def may_see_recording(user: "User", recording: "Recording") -> bool:
    """Whether ``user`` may see ``recording`` (the same rule as :func:`recording_filter`)."""
    return not user.disabled and role_allows(user.role, "recordings.view")
