"""Roles and the permissions each grants. One table, read by every route's check."""

from __future__ import annotations

VIEWER_PERMISSIONS = frozenset({
    "rooms.view",
    "cameras.view",
    "live.watch",
    "recordings.view",
})
OPERATOR_PERMISSIONS = VIEWER_PERMISSIONS | {
    "recordings.record",
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
