"""Who may watch live, checked when a stream opens and again while it plays.

A live token alone proves little once issued: it was signed for a user, a session and a
camera, and any of them can go away within its lifetime. :class:`LiveAccess` is what the
transports are given (:class:`~valt_core.transports.base.LiveHost`): it checks the token's
signature, then that the session is still signed in, the user still enabled and allowed to
watch, and the camera still the same one (its creation identity) and enabled. Every open
viewer is registered, so signing out, disabling a user or a camera closes their sockets at
once, and a periodic re-check catches what another process changed (``valt user disable``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..audit import AuditLog
from ..db import Database
from ..db.models import ApiToken, Camera, User
from ..db.types import utcnow
from ..errors import CameraDisabled, Forbidden, NotAuthenticated, NotFound, ValtError
from .access import load_access
from .media_tokens import MediaClaims, camera_key, verify_media_token

if TYPE_CHECKING:
    from ..media_control import MediaControl
    from ..transports.stream import LiveStream, Viewer

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Watch:
    """One open viewer and the claims it opened with."""

    claims: MediaClaims
    viewer: "Viewer"
    transport: str


class LiveAccess:
    """The transports' host: authorizes live viewers and closes them when access ends."""

    def __init__(self, db: Database, secret: bytes, audit: AuditLog, media: "MediaControl",
                 recheck_s: float = 5.0) -> None:
        self.db = db
        self.secret = secret
        self.audit = audit
        self.media = media
        self.recheck_s = recheck_s
        self.watches: set[Watch] = set()
        self._audited: dict[tuple, float] = {}
        self._task: asyncio.Task | None = None
        #: Set once the server is stopping: every viewer, open or opening, is closed.
        self.stopping_reason = ""

    # --- LiveHost --------------------------------------------------------------------------

    async def authorize(self, token: str, camera_id: int, transport: str = "", remote_addr: str = "") -> MediaClaims:
        """The claims of ``token`` if it may open ``camera_id`` now; audited once per opening.

        Raises :class:`NotAuthenticated` (bad, expired or signed-out token), :class:`Forbidden`
        (another camera's token, or the user lost the right), :class:`NotFound` (no such camera,
        or not the camera the token was issued for) or :class:`CameraDisabled`.
        """
        claims = verify_media_token(self.secret, token, camera_id)
        problem, user = await self._check(claims)
        if problem is not None:
            raise problem
        await self._audit_open(claims, user, transport, remote_addr)
        return claims

    async def live_stream(self, camera_id: int) -> "LiveStream":
        """The camera's shared live stream (started on first use)."""
        return await self.media.live_stream(camera_id)

    def watch(self, claims: MediaClaims, stream: "LiveStream", maxsize: int, transport: str) -> "Viewer":
        """A new viewer of ``stream``, registered so that it can be closed when access ends."""
        viewer = stream.add_viewer(maxsize)
        if self.stopping_reason:
            viewer.close(self.stopping_reason)  # opened while the server stops: ends at once
        self.watches.add(Watch(claims, viewer, transport))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._recheck(), name="live-access-recheck")
        return viewer

    def unwatch(self, stream: "LiveStream", viewer: "Viewer") -> None:
        """Forget a viewer that went away."""
        stream.remove_viewer(viewer)
        self.watches = {w for w in self.watches if w.viewer is not viewer}

    # --- ending access ---------------------------------------------------------------------

    def close_where(self, match: Callable[[MediaClaims], bool], reason: str) -> int:
        """Close every open viewer whose claims ``match``; how many were closed."""
        closing = [w for w in self.watches if match(w.claims)]
        for w in closing:
            w.viewer.close(reason)
        self.watches.difference_update(closing)
        return len(closing)

    def server_stopping(self) -> int:
        """Close every viewer now and every one that opens from now on (the server stops).

        Since Python 3.12 a listener's shutdown waits for every open connection, and a live
        view never ends by itself; so shutdown starts here, before the listener closes.
        """
        self.stopping_reason = "the server is stopping"
        return self.close_where(lambda _claims: True, self.stopping_reason)

    def signed_out(self, session_id: int) -> int:
        """A sign-in session ended: close what it was watching (here and on the media servers)."""
        self.media.revoke_direct_live("signed out", session_id=session_id)
        return self.close_where(lambda c: c.session_id == session_id, "signed out")

    def user_changed(self, user_id: int) -> int:
        """A user was disabled or changed role: close their viewers now (re-opening re-checks)."""
        reason = "your access changed; sign in again"
        self.media.revoke_direct_live(reason, user_id=user_id)
        return self.close_where(lambda c: c.user_id == user_id, reason)

    def camera_closed(self, camera_id: int, reason: str) -> int:
        """A camera was disabled or removed: close its viewers."""
        self.media.revoke_direct_live(reason, camera_id=camera_id)
        return self.close_where(lambda c: c.camera_id == camera_id, reason)

    async def stop(self) -> None:
        """Stop the re-check task."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # --- checks ----------------------------------------------------------------------------

    async def _problem(self, claims: MediaClaims) -> ValtError | None:
        return (await self._check(claims))[0]

    async def _check(self, claims: MediaClaims) -> tuple[ValtError | None, User | None]:
        # Why these claims may not watch now (or None), and the user they name. (The token's
        # own expiry is checked when a stream opens; a stream that opened in time may play on.)
        async with self.db.session() as s:
            session = await s.get(ApiToken, claims.session_id) if claims.session_id else None
            user = await s.get(User, claims.user_id)
            camera = await s.get(Camera, claims.camera_id)
        now = utcnow()
        if (session is None or session.user_id != claims.user_id or session.revoked_at is not None
                or (session.expires_at is not None and session.expires_at <= now)):
            return NotAuthenticated("the session that asked for this live token has ended; sign in again"), user
        if user is None or user.disabled:
            return NotAuthenticated("this account is disabled"), user
        if camera is None or camera_key(camera.created_at) != claims.camera_key:
            return NotFound(f"no camera {claims.camera_id}"), user
        if not (await load_access(self.db, user)).allows("live.watch", camera.room_id or 0):
            return Forbidden(f"you may not watch camera {camera.name!r} live"), user
        if not camera.enabled:
            return CameraDisabled(f"camera {camera.name!r} is disabled"), user
        return None, user

    async def _audit_open(self, claims: MediaClaims, user: User | None, transport: str, remote_addr: str) -> None:
        # HLS asks again for every segment: one entry per token and transport is one opening.
        key = (claims.session_id, claims.camera_id, claims.expires_at, transport)
        now = time.time()
        if self._audited.get(key, 0) > now:
            return
        for k in [k for k, until in self._audited.items() if until <= now]:
            del self._audited[k]
        self._audited[key] = claims.expires_at
        await self.audit.record("camera.live.open", actor=user, target_type="camera", target_id=claims.camera_id,
                                detail={"transport": transport}, remote_addr=remote_addr)

    async def _recheck(self) -> None:
        # Catches what this process was not told: a user disabled from the command line, a
        # role changed on another app server, a session that ran out.
        while self.watches:
            await asyncio.sleep(self.recheck_s)
            verdicts: dict[tuple, ValtError | None] = {}
            for w in list(self.watches):
                key = (w.claims.session_id, w.claims.user_id, w.claims.camera_id)
                if key not in verdicts:
                    try:
                        verdicts[key] = await self._problem(w.claims)
                    except Exception:  # noqa: BLE001 - a database hiccup must not close everyone
                        log.warning("live access re-check failed; keeping viewers open", exc_info=True)
                        verdicts[key] = None
                problem = verdicts[key]
                if problem is not None:
                    w.viewer.close(problem.message)
                    self.watches.discard(w)
