"""Sign-in: password checks through the auth backends, throttling, and bearer tokens.

Tokens are random, shown once, and stored only as their SHA-256, so a database leak gives
no usable token. The web UI carries the same token in an HttpOnly cookie, with a CSRF token
derived from it for every state-changing request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import select

from ..audit import AuditLog
from ..db import Database
from ..db.models import ApiToken, User
from ..db.types import utcnow
from ..errors import DirectoryUnavailable, LoginFailed, ServiceBusy, TooManyAttempts
from ..settings import AuthSettings
from .access import set_role, sync_source_groups
from .base import AuthBackend, Identity, SignInRefused
from .flows import SignInFlows
from .throttle import WRONG, AddressLimiter, AttemptCounter, CheckSlots

# How long an address over its failure rate waits for its 429.
REFUSAL_DELAY_S = 1.0
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
        self.attempts = AttemptCounter(db, settings)
        self.address_limiter = AddressLimiter(settings.address_failures_per_minute)
        self.check_slots = CheckSlots(settings.max_concurrent_checks, settings.check_queue)
        self.flows = SignInFlows(db)

    def password_backend(self) -> AuthBackend | None:
        """The first enabled backend that stores passwords in Valt (``local``), if any."""
        return next((b for b in self.backends.values() if b.manages_passwords), None)

    async def login(self, username: str, password: str, remote_addr: str = "") -> IssuedToken:
        """Check the password and issue a session token.

        Raises :class:`LoginFailed` for a wrong name or password and while the name is locked
        for this address (one answer for all three, so names cannot be told apart),
        :class:`TooManyAttempts` when the address is over its failure rate and
        :class:`ServiceBusy` when too many checks are queued.
        """
        try:
            self.address_limiter.check(remote_addr)
        except TooManyAttempts:
            # Answering at once would let a flooding client ask again at once: a refusal that
            # takes a second holds each of its connections for that long, at no cost to us.
            await asyncio.sleep(REFUSAL_DELAY_S)
            raise
        try:
            await self.attempts.reserve(username, remote_addr)
        except LoginFailed:
            self.address_limiter.failed(remote_addr)
            await self.audit.record("auth.login_refused", actor_name=username, remote_addr=remote_addr,
                                    detail={"reason": "locked"})
            raise
        try:
            async with self.check_slots:
                user, identity = await self._check(username, password)
        except ServiceBusy:
            await self.attempts.release(username, remote_addr)  # not checked: not a failure
            raise
        except DirectoryUnavailable as err:
            await self.attempts.release(username, remote_addr)
            await self.audit.record("auth.login_refused", actor_name=username, remote_addr=remote_addr,
                                    detail={"reason": err.message})
            raise
        if identity is None or user is None:
            self.address_limiter.failed(remote_addr)
            locked = await self.attempts.failed(username, remote_addr)
            await self.audit.record("auth.account_locked" if locked else "auth.login_failed",
                                    actor=user if user is not None and user.id else None,
                                    actor_name=username, remote_addr=remote_addr)
            raise LoginFailed(WRONG)
        await self.attempts.succeeded(username, remote_addr)
        return await self._issue(user, identity, remote_addr)

    async def sign_in(self, backend_name: str, identity: Identity, remote_addr: str = "") -> IssuedToken:
        """Issue a session token to a person a redirect sign-in backend vouched for.

        Creates the user on first sign-in. Raises :class:`SignInRefused` when the name belongs
        to a user of another backend (a provider must not take over a local account of the same
        name) or the user is disabled.
        """
        name = identity.username
        if not name or len(name) > 150 or name != name.strip() or any(ord(c) < 32 or ord(c) == 127 for c in name):
            # The users table holds 150 characters; a name with control characters or edge
            # spaces would show as someone else's in every list.
            raise SignInRefused("the sign-in service gave a user name Valt cannot use "
                                "(empty, longer than 150 characters, or with control characters)")
        async with self.db.session() as s:
            user = (await s.exec(select(User).where(User.username == identity.username))).first()
        refusal = None
        if user is not None and user.auth_backend != backend_name:
            refusal = (f"the user name {identity.username!r} signs in another way here "
                       f"({user.auth_backend}); ask an administrator")
        elif user is not None and user.disabled:
            refusal = "this account is disabled; ask an administrator"
        if refusal is not None:
            await self.audit.record("auth.login_refused", actor=user, actor_name=identity.username,
                                    remote_addr=remote_addr, detail={"reason": refusal, "method": backend_name})
            raise SignInRefused(refusal)
        if user is None:
            user = User(username=identity.username, display_name=identity.display_name, email=identity.email,
                        auth_backend=backend_name)
        return await self._issue(user, identity, remote_addr)

    async def _issue(self, user: User, identity: Identity, remote_addr: str) -> IssuedToken:
        # The token of a checked sign-in; a person a directory vouches for for the first time
        # becomes a user here, and a backend that manages groups sets theirs on every sign-in.
        now = utcnow()
        token = secrets.token_urlsafe(32)
        expires = now + timedelta(hours=self.settings.session_hours)
        async with self.db.session() as s:
            if user.id is None:
                s.add(user)
                await s.flush()
                if identity.groups is None:
                    await set_role(s, user.id, "viewer")
            else:
                user = await s.get(User, user.id) or user
            # A directory or provider is the source of its users' names and addresses.
            user.display_name = identity.display_name or user.display_name
            user.email = identity.email or user.email
            if identity.groups is not None:
                await sync_source_groups(s, user.id, user.auth_backend, identity.groups)
            user.last_login_at = now
            s.add(user)
            s.add(ApiToken(user_id=user.id, kind="session", token_hash=token_digest(token), expires_at=expires))
            await s.commit()
        await self.audit.record("auth.login", actor=user, remote_addr=remote_addr,
                                detail={"method": user.auth_backend})
        return IssuedToken(token=token, expires_at=expires, user=user)

    async def _check(self, username: str, password: str) -> tuple[User | None, Any]:
        # The user row (unsaved when a directory vouches for someone new) and the identity, or
        # None for a wrong password. Every path runs one password check of about equal cost.
        async with self.db.session() as s:
            user = (await s.exec(select(User).where(User.username == username))).first()
        if user is not None:
            backend = self.backends.get(user.auth_backend)
            if user.disabled or backend is None:
                # Same work as a real check, so a disabled account is not told apart by time.
                decoy = self.password_backend()
                if decoy is not None:
                    await decoy.check_password(username, password, None)
                return user, None
            identity = await backend.check_password(username, password, user.password_hash)
            if identity and user.password_hash and backend.needs_rehash(user.password_hash):
                async with self.db.session() as s:
                    row = await s.get(User, user.id)
                    if row is not None:
                        row.password_hash = backend.hash_password(password)
                        s.add(row)
                        await s.commit()
            return user, identity
        # Directory backends may vouch for people Valt has not seen yet.
        for name, backend in self.backends.items():
            if not backend.checks_passwords:
                continue
            identity = await backend.check_password(username, password, None)
            if identity is None:
                continue
            if identity.username != username:
                # The directory spells the name its own way ("Alice" typed, "alice" stored):
                # that spelling is the user, so one person never becomes two users.
                async with self.db.session() as s:
                    known = (await s.exec(select(User).where(User.username == identity.username))).first()
                if known is not None:
                    ok = known.auth_backend == name and not known.disabled
                    return known, identity if ok else None
            return User(username=identity.username, display_name=identity.display_name, email=identity.email,
                        auth_backend=name), identity
        return None, None

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
