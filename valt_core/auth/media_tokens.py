"""Short-lived signed tokens for live media, checkable without the database.

A token names one camera (its id and its creation identity, so a token for a deleted camera
never opens a later one that got the same id), one user and the sign-in session that asked for
it, and expires within minutes. It is an HMAC-SHA256 over its claims with a key derived from
the server secret, so a media server that shares the secret can check it on its own; whether
the session is still signed in is checked where the stream opens, and again while it plays.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import datetime

from ..errors import Forbidden, NotAuthenticated

DEFAULT_TTL_S = 300


def _key(secret: bytes) -> bytes:
    # A key of its own, so a media token can never pass for anything else signed by the secret.
    return hmac.new(secret, b"valt media token v1", hashlib.sha256).digest()


def server_live_secret(secret: bytes, server: str) -> bytes:
    """The secret media server ``server`` checks its direct live tokens with.

    Derived for that server alone: it can check tokens for its own cameras, and a token signed
    for it opens nothing on the app server or on another media server.
    """
    return hmac.new(secret, b"valt direct live v1:" + server.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class MediaClaims:
    """What a valid media token grants."""

    camera_id: int
    user_id: int
    expires_at: float
    camera_key: int = 0
    """The camera's creation identity (:func:`camera_key`)."""
    session_id: int = 0
    """The id of the sign-in token the live token was issued to (0: none)."""


def camera_key(created_at: datetime) -> int:
    """A camera's creation identity: its creation time in microseconds."""
    return int(created_at.timestamp() * 1_000_000)


def issue_media_token(secret: bytes, camera_id: int, user_id: int, ttl_s: float = DEFAULT_TTL_S, *,
                      camera_created: int = 0, session_id: int = 0) -> tuple[str, float]:
    """A token for ``user_id`` to watch ``camera_id`` for ``ttl_s`` seconds; (token, expiry)."""
    exp = time.time() + ttl_s
    claims = {"c": camera_id, "k": camera_created, "u": user_id, "s": session_id, "e": round(exp, 3)}
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = _b64(hmac.new(_key(secret), body.encode(), hashlib.sha256).digest())
    return f"{body}.{sig}", exp


def verify_media_token(secret: bytes, token: str, camera_id: int) -> MediaClaims:
    """The claims of ``token`` if it is genuine, unexpired and for ``camera_id``.

    Raises :class:`NotAuthenticated` (missing, forged, malformed, expired) or
    :class:`Forbidden` (a valid token for another camera).
    """
    if not token or token.count(".") != 1:
        raise NotAuthenticated("a live token is required (GET /api/v1/cameras/{id}/live)")
    body, sig = token.split(".")
    expected = _b64(hmac.new(_key(secret), body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(sig, expected):
        raise NotAuthenticated("the live token is not valid")
    try:
        claims = json.loads(_unb64(body))
        parsed = MediaClaims(int(claims["c"]), int(claims["u"]), float(claims["e"]),
                             int(claims.get("k", 0)), int(claims.get("s", 0)))
    except (ValueError, KeyError, TypeError) as err:
        raise NotAuthenticated("the live token is not valid") from err
    if parsed.expires_at < time.time():
        raise NotAuthenticated("the live token has expired; ask for a new one")
    if parsed.camera_id != camera_id:
        raise Forbidden("the live token is for another camera")
    return parsed
