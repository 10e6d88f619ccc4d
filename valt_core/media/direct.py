"""Direct live view: browsers on the LAN open the stream on the media server that owns the camera.

The app server's live answer names this media server's live address and a token signed with a key
derived for this server alone (:func:`~valt_core.auth.media_tokens.server_live_secret`), which
the app server sends it over the bus when it joins (:class:`~valt_core.bus.messages.LiveKey`).
:class:`DirectLiveAccess` is the transports' host here, as ``LiveAccess`` is on the app server,
but with no database: it checks the token's signature, expiry and camera (its id and creation
identity, against the cameras this server ingests), refuses tokens the app server revoked
(:class:`~valt_core.bus.messages.LiveRevoke`: signed out, user disabled, camera disabled) and
closes their open viewers at once, and tells each opening as an event that the app server
writes to the audit log.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..auth.media_tokens import MediaClaims, verify_media_token
from ..bus.messages import LiveKey, LiveRevoke, LiveViewOpened
from ..errors import NotAuthenticated, NotFound, ServiceBusy

if TYPE_CHECKING:
    from ..transports.stream import LiveStream, Viewer
    from .engine import MediaEngine

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Watch:
    claims: MediaClaims
    viewer: "Viewer"


def revoked_by(revoke: LiveRevoke, claims: MediaClaims) -> bool:
    """True when ``revoke`` covers a token with ``claims`` (issued before it, for what it names)."""
    if claims.expires_at > revoke.until:
        return False  # issued after the revocation
    return bool((revoke.session_id and claims.session_id == revoke.session_id)
                or (revoke.user_id and claims.user_id == revoke.user_id)
                or (revoke.camera_id and claims.camera_id == revoke.camera_id))


class DirectLiveAccess:
    """The transports' host on a media server: checks live tokens without a database."""

    def __init__(self, engine: "MediaEngine") -> None:
        self.engine = engine
        self._secret: bytes | None = None
        self.revocations: list[LiveRevoke] = []
        self.watches: set[_Watch] = set()
        self._opened: dict[tuple, float] = {}
        #: Set once the live port stops: every viewer, open or opening, is closed.
        self.stopping_reason = ""

    @property
    def ready(self) -> bool:
        """True once the app server has given this server its live key."""
        return self._secret is not None

    def set_key(self, command: LiveKey) -> None:
        """Take the key the app server derived for this server."""
        self._secret = base64.b64decode(command.key)

    def revoke(self, command: LiveRevoke) -> int:
        """Refuse what ``command`` covers from now on, and close its open viewers; how many closed."""
        now = time.time()
        self.revocations = [r for r in self.revocations if r.until > now] + [command]
        closing = [w for w in self.watches if revoked_by(command, w.claims)]
        for w in closing:
            w.viewer.close(command.reason)
        self.watches.difference_update(closing)
        return len(closing)

    # --- LiveHost --------------------------------------------------------------------------

    async def authorize(self, token: str, camera_id: int, transport: str = "", remote_addr: str = "") -> MediaClaims:
        """The claims of ``token`` if it may open ``camera_id`` here now; each opening is told to be audited."""
        if self._secret is None:
            raise ServiceBusy("this media server has not been given its live key by the app server yet; "
                              "try again in a few seconds")
        claims = verify_media_token(self._secret, token, camera_id)
        spec = self.engine.specs.get(camera_id)
        if spec is None or (spec.key and claims.camera_key != spec.key):
            raise NotFound(f"camera {camera_id} is not on this media server")
        for revoke in self.revocations:
            if revoked_by(revoke, claims):
                raise NotAuthenticated(revoke.reason)
        key = (claims.session_id, camera_id, claims.expires_at, transport)
        now = time.time()
        if self._opened.get(key, 0) <= now:
            # HLS asks again for every segment: one event per token and transport is one opening.
            self._opened = {k: until for k, until in self._opened.items() if until > now}
            self._opened[key] = claims.expires_at
            self.engine.events.emit(LiveViewOpened(camera_id=camera_id, user_id=claims.user_id,
                                                   session_id=claims.session_id, transport=transport,
                                                   remote_addr=remote_addr[:64]))
        return claims

    async def live_stream(self, camera_id: int) -> "LiveStream":
        """The camera's shared live stream on this server."""
        spec = self.engine.specs.get(camera_id)
        if spec is None:
            raise NotFound(f"camera {camera_id} is not on this media server")
        return await self.engine.live_stream(spec)

    def watch(self, claims: MediaClaims, stream: "LiveStream", maxsize: int, transport: str) -> "Viewer":
        """A new viewer of ``stream``, kept so that a revocation closes it."""
        viewer = stream.add_viewer(maxsize)
        if self.stopping_reason:
            viewer.close(self.stopping_reason)  # opened while the port stops: ends at once
        self.watches.add(_Watch(claims, viewer))
        return viewer

    def server_stopping(self) -> int:
        """Close every viewer now and every one that opens from now on (the live port stops).

        Since Python 3.12 a listener's shutdown waits for every open connection, and a live
        view never ends by itself.
        """
        self.stopping_reason = "the media server is stopping"
        closing = list(self.watches)
        for w in closing:
            w.viewer.close(self.stopping_reason)
        self.watches.clear()
        return len(closing)

    def unwatch(self, stream: "LiveStream", viewer: "Viewer") -> None:
        """Forget a viewer that went away."""
        stream.remove_viewer(viewer)
        self.watches = {w for w in self.watches if w.viewer is not viewer}
