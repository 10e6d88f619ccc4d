"""Creating users, shared by the API and ``valt user add``."""

from __future__ import annotations

import re

from sqlalchemy.exc import IntegrityError

from .context import ValtContext
from .db.models import ROLES, User
from .errors import ConfigError, Conflict, ValidationFailed

USERNAME = re.compile(r"[A-Za-z0-9_.@-]+")


async def create_user(
    ctx: ValtContext,
    username: str,
    password: str,
    *,
    role: str = "viewer",
    display_name: str = "",
    email: str = "",
) -> User:
    """Create a user whose password Valt stores (hashed by the password backend).

    Raises :class:`Conflict` when the name is taken.
    """
    if not USERNAME.fullmatch(username) or len(username) > 150:
        raise ValidationFailed("a user name is 1 to 150 letters, digits and . _ @ -")
    if role not in ROLES:
        raise ValidationFailed(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    if len(password) < 8:
        raise ValidationFailed("the password must have at least 8 characters")
    backend = ctx.sessions.password_backend()
    if backend is None:
        raise ConfigError("no enabled auth backend stores passwords; enable 'local' in [auth] backends")
    user = User(username=username, role=role, display_name=display_name, email=email,
                auth_backend=backend.name, password_hash=backend.hash_password(password))
    async with ctx.db.session() as s:
        s.add(user)
        try:
            await s.commit()
        except IntegrityError as err:
            raise Conflict(f"a user named {username!r} already exists") from err
        await s.refresh(user)
    return user
