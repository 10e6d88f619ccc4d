"""Creating and changing users, shared by the API and the ``valt user`` commands.

A user's *role* is which of the three built-in groups (Administrators, Operators, Viewers) they
are in: giving a role moves them between those groups and leaves their other groups alone.
"""

from __future__ import annotations

import re

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from .auth.access import set_role
from .context import ValtContext
from .db.models import ROLES, ApiToken, Group, GroupMember, User
from .db.types import utcnow
from .errors import ConfigError, Conflict, NotFound, ValidationFailed

USERNAME = re.compile(r"[A-Za-z0-9_.@-]+")


async def create_user(
    ctx: ValtContext,
    username: str,
    password: str,
    *,
    role: str | None = "viewer",
    display_name: str = "",
    email: str = "",
) -> User:
    """Create a user whose password Valt stores (hashed by the password backend).

    Raises :class:`Conflict` when the name is taken.
    """
    if not USERNAME.fullmatch(username) or len(username) > 150:
        raise ValidationFailed("a user name is 1 to 150 letters, digits and . _ @ -")
    if role is not None and role not in ROLES:
        raise ValidationFailed(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    if len(password) < 8:
        raise ValidationFailed("the password must have at least 8 characters")
    backend = ctx.sessions.password_backend()
    if backend is None:
        raise ConfigError("no enabled auth backend stores passwords; enable 'local' in [auth] backends")
    user = User(username=username, display_name=display_name, email=email,
                auth_backend=backend.name, password_hash=backend.hash_password(password))
    async with ctx.db.session() as s:
        s.add(user)
        try:
            await s.flush()
        except IntegrityError as err:
            raise Conflict(f"a user named {username!r} already exists") from err
        await set_role(s, user.id, role)
        await s.commit()
        await s.refresh(user)
    return user


async def groups_of(ctx: ValtContext, user_ids: list[int]) -> dict[int, list[Group]]:
    """Each user's groups, by user id (built-in ones first, then by name)."""
    out: dict[int, list[Group]] = {uid: [] for uid in user_ids}
    if not user_ids:
        return out
    async with ctx.db.session() as s:
        rows = (await s.exec(select(GroupMember.user_id, Group).join(Group, Group.id == GroupMember.group_id)
                             .where(GroupMember.user_id.in_(user_ids))
                             .order_by(Group.builtin == "", Group.name))).all()
    for uid, group in rows:
        out[uid].append(group)
    return out


async def find_user(ctx: ValtContext, name_or_id: str | int) -> User:
    """The user with that id (an int) or user name; :class:`NotFound` when there is none."""
    async with ctx.db.session() as s:
        if isinstance(name_or_id, int):
            user = await s.get(User, name_or_id)
        else:
            user = (await s.exec(select(User).where(User.username == name_or_id))).first()
    if user is None:
        raise NotFound(f"no user {name_or_id!r}")
    return user


async def change_user(
    ctx: ValtContext,
    user_id: int,
    *,
    role: str | None = None,
    disabled: bool | None = None,
    password: str | None = None,
    display_name: str | None = None,
    email: str | None = None,
    keep_token_id: int | None = None,
) -> User:
    """Change a user; what is not given stays.

    Disabling a user or setting a new password signs them out everywhere (their tokens are
    revoked, except ``keep_token_id``: the session of someone changing their own password); a
    new role or disabling also closes their live streams in this process (other processes
    close them at their next re-check).
    """
    if role is not None and role not in ROLES:
        raise ValidationFailed(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    if password is not None and len(password) < 8:
        raise ValidationFailed("the password must have at least 8 characters")
    sign_out = bool(disabled) or password is not None
    async with ctx.db.session() as s:
        user = await s.get(User, user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        access_changed = role is not None or (disabled is not None and disabled != user.disabled)
        if password is not None:
            backend = ctx.sessions.backends.get(user.auth_backend)
            if backend is None or not backend.manages_passwords:
                raise ValidationFailed(f"{user.username!r} signs in through {user.auth_backend!r}, "
                                       "which keeps its own passwords")
            user.password_hash = backend.hash_password(password)
        if role is not None:
            await set_role(s, user_id, role)
        if disabled is not None:
            user.disabled = disabled
        if display_name is not None:
            user.display_name = display_name
        if email is not None:
            user.email = email
        s.add(user)
        if sign_out:
            now = utcnow()
            for token in (await s.exec(select(ApiToken).where(ApiToken.user_id == user_id,
                                                              ApiToken.revoked_at == None))).all():  # noqa: E711
                if token.id == keep_token_id and not disabled:
                    continue
                token.revoked_at = now
                s.add(token)
        await s.commit()
        await s.refresh(user)
    if access_changed or (sign_out and keep_token_id is None):
        ctx.live.user_changed(user_id)
    elif sign_out:
        ctx.live.close_where(lambda c: c.user_id == user_id and c.session_id != keep_token_id,
                             "signed out: the password was changed")
    return user
