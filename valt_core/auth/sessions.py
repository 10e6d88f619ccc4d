"""Sign-in: password checks through the auth backends, lockout, and bearer tokens.

Tokens are random, shown once, and stored only as their SHA-256, so a database leak gives
no usable token. The web UI carries the same token in an HttpOnly cookie, with a CSRF token
derived from it for every state-changing request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import select

from ..audit import AuditLog
from ..db import Database
from ..db.models import ApiToken, User
from ..db.types import utcnow
from ..errors import AccountLocked, LoginFailed
from ..settings import AuthSettings
from .base import AuthBackend

# Refresh last_used_at at most this often, so reads do not turn into writes on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_digest(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued bearer token (the only time its clear text exists)."""

    token: str
    expires_at: datetime | None
    user: User


class SessionService:
    """Checks passwords with lockout and manages the tokens that prove a sign-in."""

    def __init__(
        self,
        db: Database,
        backends: dict[str, AuthBackend],
        settings: AuthSettings,
        secret: bytes,
        audit: AuditLog,
    ) -> None:
        self.db = db
        self.backends = backends
        self.settings = settings
        self.secret = secret
        self.audit = audit

    def password_backend(self) -> AuthBackend | None:
        """The first enabled backend that stores passwords in Valt (``local``), if any."""
        return next((b for b in self.backends.values() if b.manages_passwords), None)

    async def login(self, username: str, password: str, remote_addr: str = "") -> IssuedToken:
        """Check the password and issue a session token.

        Raises :class:`LoginFailed` for a wrong name or password (same answer for both) and
        :class:`AccountLocked` while the account is locked.
        """
        now = utcnow()
        async with self.db.session() as s:
            user = (await s.exec(select(User).where(User.username == username))).first()
            if user is not None and user.locked_until is not None and user.locked_until > now:
                await self.audit.record("auth.login_locked", actor=user, remote_addr=remote_addr)
                raise AccountLocked(
                    "too many wrong passwords: this account is locked until "
                    f"{user.locked_until.isoformat(timespec='seconds')}"
                )
            identity = None
            if user is not None and not user.disabled:
                backend = self.backends.get(user.auth_backend)
                if backend is not None:
                    identity = await backend.check_password(username, password, user.password_hash)
                    if identity and user.password_hash and backend.needs_rehash(user.password_hash):
                        user.password_hash = backend.hash_password(password)
            elif user is None:
                # Directory backends may vouch for people Valt has not seen yet.
                for name, backend in self.backends.items():
                    identity = await backend.check_password(username, password, None)
                    if identity is not None:
                        user = User(username=username, display_name=identity.display_name,
                                    email=identity.email, role="viewer", auth_backend=name)
                        s.add(user)
                        break
            if identity is None or user is None:
                if user is not None and user.id is not None:
                    user.failed_logins += 1
                    locked = user.failed_logins >= self.settings.lockout_threshold
                    if locked:
                        user.locked_until = now + timedelta(minutes=self.settings.lockout_minutes)
                        user.failed_logins = 0
                    s.add(user)
                    await s.commit()
                    await self.audit.record(
                        "auth.account_locked" if locked else "auth.login_failed",
                        actor=user, remote_addr=remote_addr,
                    )
                else:
                    await self.audit.record("auth.login_failed", actor_name=username, remote_addr=remote_addr)
                raise LoginFailed("wrong user name or password")
            user.failed_logins = 0
            user.locked_until = None
            user.last_login_at = now
            s.add(user)
            await s.flush()
            token = secrets.token_urlsafe(32)
            expires = now + timedelta(hours=self.settings.session_hours)
            s.add(ApiToken(user_id=user.id, kind="session", token_hash=token_digest(token), expires_at=expires))
            await s.commit()
        await self.audit.record("auth.login", actor=user, remote_addr=remote_addr)
        return IssuedToken(token=token, expires_at=expires, user=user)

    async def user_for_token(self, token: str) -> tuple[User, ApiToken] | None:
        """The user a valid (unexpired, unrevoked) token belongs to, else ``None``."""
        now = utcnow()
        async with self.db.session() as s:
            row = (await s.exec(select(ApiToken).where(ApiToken.token_hash == token_digest(token)))).first()
            if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at <= now):
                return None
            user = await s.get(User, row.user_id)
            if user is None or user.disabled:
                return None
            if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
                row.last_used_at = now
                s.add(row)
                await s.commit()
            return user, row

    async def revoke(self, token_id: int) -> None:
        """Revoke a token (sign out)."""
        async with self.db.session() as s:
            row = await s.get(ApiToken, token_id)
            if row is not None and row.revoked_at is None:
                row.revoked_at = utcnow()
                s.add(row)
                await s.commit()

    def csrf_token(self, session_token: str) -> str:
        """The CSRF token that goes with a cookie session (derived, so nothing is stored)."""
        return hmac.new(self.secret, b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session_token: str, presented: str | None) -> bool:
        """True when ``presented`` is the CSRF token of ``session_token``."""
        return bool(presented) and hmac.compare_digest(self.csrf_token(session_token), presented or "")
