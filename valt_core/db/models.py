"""The database tables (SQLModel). All timestamps are UTC-aware (:class:`UTCDateTime`).

Later features fill these tables in; they are laid out now so that recording, review, sharing
and audit need few schema changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from .types import UTCDateTime, utcnow

ROLES = ("admin", "operator", "viewer")


def _ts() -> Any:
    return Field(default=None, sa_type=UTCDateTime(), nullable=True)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)


#: SQLite otherwise hands the id of a deleted last row to the next one: a token, a link or an
#: audit entry naming "camera 7" would then name a different camera. MariaDB never reuses them.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class User(SQLModel, table=True):
    """A person who can sign in. What they may do comes from their groups (and own grants)."""

    __tablename__ = "users"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    username: str = Field(max_length=150, unique=True, index=True)
    display_name: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=254)
    auth_backend: str = Field(default="local", max_length=50)
    password_hash: Optional[str] = Field(default=None, max_length=255)
    disabled: bool = False
    last_login_at: Optional[datetime] = _ts()
    created_at: datetime = _created()


class Group(SQLModel, table=True):
    """A named set of users that rights can be granted to."""

    __tablename__ = "groups"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=150, unique=True)
    description: str = Field(default="", max_length=500)
    builtin: str = Field(default="", max_length=20,
                         description="One of ROLES for the three built-in groups (never deleted), else empty.")
    created_at: datetime = _created()


class GroupMember(SQLModel, table=True):
    """Membership of a user in a group."""

    __tablename__ = "group_members"
    group_id: int = Field(foreign_key="groups.id", primary_key=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    source: str = Field(default="", max_length=50)
    """Empty when an admin gave it; the auth backend's name when that backend's groups did."""


class Right(SQLModel, table=True):
    """A right (one of :data:`valt_core.auth.access.RIGHTS`) on one room or on all of them.

    Granted to a group or a single user; ``room_id`` ``None`` means every room.
    """

    __tablename__ = "rights"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    group_id: Optional[int] = Field(default=None, foreign_key="groups.id", ondelete="CASCADE")
    user_id: Optional[int] = Field(default=None, foreign_key="users.id", ondelete="CASCADE")
    room_id: Optional[int] = Field(default=None, foreign_key="rooms.id", ondelete="CASCADE")
    right: str = Field(max_length=30)


class VideoAccess(SQLModel, table=True):
    """A group's access to recordings by who made them: one author's, the recordings of one
    group's members, or (both ``None``) every author's."""

    __tablename__ = "video_access"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="groups.id", index=True, ondelete="CASCADE")
    author_id: Optional[int] = Field(default=None, foreign_key="users.id", ondelete="CASCADE")
    author_group_id: Optional[int] = Field(default=None, foreign_key="groups.id", ondelete="CASCADE")


class RecordingShare(SQLModel, table=True):
    """A recording shared with one user or one group, view-only or with download, maybe until a date."""

    __tablename__ = "recording_shares"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    recording_id: int = Field(foreign_key="recordings.id", index=True, ondelete="CASCADE")
    user_id: Optional[int] = Field(default=None, foreign_key="users.id", index=True, ondelete="CASCADE")
    group_id: Optional[int] = Field(default=None, foreign_key="groups.id", index=True, ondelete="CASCADE")
    can_download: bool = False
    until: Optional[datetime] = _ts()
    shared_by_id: Optional[int] = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = _created()


class MediaServer(SQLModel, table=True):
    """A process that ingests cameras and records; the app server's own one is ``local``."""

    __tablename__ = "media_servers"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=150, unique=True)
    url: str = Field(default="", max_length=500)
    status: str = Field(default="unknown", max_length=20)
    last_seen_at: Optional[datetime] = _ts()
    pool: str = Field(default="", max_length=150, description="Cameras of a lost server move within its pool.")
    nkey: str = Field(default="", max_length=60, description="The public NATS nkey it signs in with.")
    version: str = Field(default="", max_length=40)
    live_mode: str = Field(default="relayed", max_length=10, description="`direct` or `relayed` live view.")
    created_at: datetime = _created()


class Room(SQLModel, table=True):
    """An observed room (an interview room, a sim lab); holds cameras and recordings."""

    __tablename__ = "rooms"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=150, unique=True)
    description: str = Field(default="", max_length=500)
    media_server_id: Optional[int] = Field(default=None, foreign_key="media_servers.id")
    created_at: datetime = _created()


class Camera(SQLModel, table=True):
    """A camera: which driver speaks to it and that driver's settings."""

    __tablename__ = "cameras"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=150, unique=True)
    room_id: Optional[int] = Field(default=None, foreign_key="rooms.id", index=True, ondelete="SET NULL")
    driver: str = Field(max_length=50)
    config: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    enabled: bool = True
    status: str = Field(default="unknown", max_length=20)
    status_reason: str = Field(default="", max_length=200,
                               description="Why the camera is not online: its last failure, in plain words.")
    status_changed_at: Optional[datetime] = _ts()
    media_server_id: Optional[int] = Field(default=None, foreign_key="media_servers.id")
    created_at: datetime = _created()


class MobileDevice(SQLModel, table=True):
    """A phone or tablet enrolled to push live video; it is its camera (driver ``mobile``).

    The stream key's SHA-256 lives in the camera's settings (the media server is given it with the
    camera); this row says whose device it is and how its key has been used.
    """

    __tablename__ = "mobile_devices"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    camera_id: int = Field(foreign_key="cameras.id", unique=True, ondelete="CASCADE")
    device: str = Field(max_length=64, unique=True, description="Public id, in the camera's settings.")
    user_id: Optional[int] = Field(default=None, foreign_key="users.id", index=True, ondelete="SET NULL",
                                   description="The person whose app uses it (and whose rights it records with).")
    key_created_at: Optional[datetime] = _ts()
    key_revoked_at: Optional[datetime] = _ts()
    refused_publishes: int = Field(default=0, description="Publishes refused with one of its revoked keys.")
    last_refused_at: Optional[datetime] = _ts()
    last_published_at: Optional[datetime] = _ts()
    last_published_from: str = Field(default="", max_length=64)
    created_at: datetime = _created()


class Recording(SQLModel, table=True):
    """A recorded session of a room: one track per camera.

    ``state``: ``recording``, ``paused``, ``stopped``, ``interrupted`` or ``failed``.
    """

    __tablename__ = "recordings"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    room_id: Optional[int] = Field(default=None, foreign_key="rooms.id", index=True,
                                   description="None for an uploaded session recorded outside any room.")
    author_id: Optional[int] = Field(default=None, foreign_key="users.id", index=True)
    name: str = Field(default="", max_length=200)
    state: str = Field(default="recording", max_length=20)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False, index=True)
    stopped_at: Optional[datetime] = _ts()
    retention_until: Optional[datetime] = _ts()
    legal_hold: bool = False
    notes: str = Field(default="", sa_type=sa.Text)


class Track(SQLModel, table=True):
    """One camera's media within a recording."""

    __tablename__ = "tracks"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    recording_id: int = Field(foreign_key="recordings.id", index=True, ondelete="CASCADE")
    camera_id: Optional[int] = Field(default=None, foreign_key="cameras.id", ondelete="SET NULL")
    camera_name: str = Field(default="", max_length=150)
    state: str = Field(default="recording", max_length=20)
    video_codec: str = Field(default="", max_length=30)
    audio_codec: str = Field(default="", max_length=30)
    width: int = 0
    height: int = 0
    storage_prefix: str = Field(default="", max_length=500)


class Segment(SQLModel, table=True):
    """A stored piece of a track (fragmented MP4, cut at a keyframe).

    ``chain_hash`` = SHA-256 of the previous segment's ``chain_hash`` and this one's ``sha256``,
    so a removed or edited segment breaks the chain.
    """

    __tablename__ = "segments"
    __table_args__ = (sa.UniqueConstraint("track_id", "seq"), NEVER_REUSE_IDS)
    id: Optional[int] = Field(default=None, primary_key=True)
    track_id: int = Field(foreign_key="tracks.id", index=True, ondelete="CASCADE")
    seq: int
    key: str = Field(max_length=500)
    start_s: float = Field(description="Offset from the recording start, paused time excluded.")
    duration_s: float = 0.0
    bytes: int = 0
    sha256: str = Field(default="", max_length=64)
    chain_hash: str = Field(default="", max_length=64)
    complete: bool = False
    created_at: datetime = _created()


class Upload(SQLModel, table=True):
    """An upload of offline recordings (the mobile app's two-step API): one session, its files.

    ``state``: ``open`` (files being sent), ``processing`` (every file is in; being remuxed into
    a recording), ``done`` (``recording_id`` is the recording), ``failed`` (``error`` says why;
    nothing of it is kept) or ``expired`` (not finished in time; its bytes are removed).
    """

    __tablename__ = "uploads"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    room_id: Optional[int] = Field(default=None, foreign_key="rooms.id", ondelete="SET NULL")
    author_id: Optional[int] = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    name: str = Field(default="", max_length=200)
    information: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    shares: list[Any] = Field(default_factory=list, sa_type=sa.JSON)
    state: str = Field(default="open", max_length=20, index=True)
    error: str = Field(default="", max_length=500)
    recording_id: Optional[int] = Field(default=None, foreign_key="recordings.id", ondelete="SET NULL")
    created_at: datetime = _created()
    expires_at: datetime = Field(sa_type=UTCDateTime(), nullable=False, index=True)
    finished_at: Optional[datetime] = _ts()


class UploadFile(SQLModel, table=True):
    """One video of an upload, received with tus 1.0 into ``DATA_DIR/uploads``.

    ``offset`` is what the server has committed (bytes past it on disk were never confirmed);
    ``sha256`` is what the client declared for the whole file, checked when the last byte is in.
    """

    __tablename__ = "upload_files"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    upload_id: int = Field(foreign_key="uploads.id", index=True, ondelete="CASCADE")
    filename: str = Field(max_length=255)
    length: int = Field(sa_type=sa.BigInteger())
    offset: int = Field(default=0, sa_type=sa.BigInteger())
    sha256: str = Field(default="", max_length=64)
    complete: bool = False
    track_id: Optional[int] = Field(default=None, foreign_key="tracks.id", ondelete="SET NULL")
    created_at: datetime = _created()


class Gap(SQLModel, table=True):
    """A stretch of a track with no media (camera lost), kept visible rather than hidden."""

    __tablename__ = "gaps"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    track_id: int = Field(foreign_key="tracks.id", index=True, ondelete="CASCADE")
    start_s: float
    end_s: Optional[float] = None
    reason: str = Field(default="", max_length=200)


#: Marker colours and the hex each is drawn with (the API answers both).
MARKER_COLORS: dict[str, str] = {
    "red": "#d93025", "orange": "#f57c00", "yellow": "#f4c20d", "green": "#188038",
    "blue": "#1a73e8", "purple": "#8e24aa", "gray": "#757575",
}


class Marker(SQLModel, table=True):
    """A moment marked in a recording: what happened (``event``), when, for how long, in which colour."""

    __tablename__ = "markers"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    recording_id: int = Field(foreign_key="recordings.id", index=True, ondelete="CASCADE")
    author_id: Optional[int] = Field(default=None, foreign_key="users.id")
    time_s: float = Field(description="Recording time, paused time excluded.")
    duration_s: Optional[float] = None
    event: str = Field(max_length=500)
    color: str = Field(default="blue", max_length=10)
    created_at: datetime = _created()
    updated_at: Optional[datetime] = _ts()


class Clip(SQLModel, table=True):
    """A clip job: a time range cut from a recording's tracks, and its progress."""

    __tablename__ = "clips"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    recording_id: int = Field(foreign_key="recordings.id", index=True, ondelete="CASCADE")
    author_id: Optional[int] = Field(default=None, foreign_key="users.id")
    start_s: float
    end_s: float
    exact: bool = False
    state: str = Field(default="queued", max_length=20)
    progress: float = 0.0
    error: str = Field(default="", max_length=500)
    created_at: datetime = _created()
    finished_at: Optional[datetime] = _ts()


class ClipFile(SQLModel, table=True):
    """One output file of a clip (one per track)."""

    __tablename__ = "clip_files"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    clip_id: int = Field(foreign_key="clips.id", index=True, ondelete="CASCADE")
    track_id: Optional[int] = Field(default=None, foreign_key="tracks.id", ondelete="SET NULL")
    key: str = Field(max_length=500)
    bytes: int = 0
    sha256: str = Field(default="", max_length=64)


class AuditEvent(SQLModel, table=True):
    """Who did what, when, from where; hash-chained so a removed or edited event shows."""

    __tablename__ = "audit_events"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    at: datetime = _created()
    actor_id: Optional[int] = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    actor_name: str = Field(default="", max_length=150)
    action: str = Field(max_length=80, index=True)
    target_type: str = Field(default="", max_length=40)
    target_id: str = Field(default="", max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    remote_addr: str = Field(default="", max_length=64)
    prev_hash: str = Field(default="", max_length=64, unique=True,
                           description="Unique: two writers racing for the chain's end cannot fork it.")
    hash: str = Field(default="", max_length=64)
    keyed: bool = Field(default=True, description="Hash is an HMAC with the audit key (false: written "
                                                  "before the chain was keyed, plain SHA-256).")


class ApiToken(SQLModel, table=True):
    """A bearer token: a login session (``session``) or a named long-lived API token (``api``).

    Only the SHA-256 of the token is stored.
    """

    __tablename__ = "api_tokens"
    __table_args__ = NEVER_REUSE_IDS
    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    kind: str = Field(default="session", max_length=20)
    name: str = Field(default="", max_length=150)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _created()
    expires_at: Optional[datetime] = _ts()
    last_used_at: Optional[datetime] = _ts()
    revoked_at: Optional[datetime] = _ts()


class SignInFlow(SQLModel, table=True):
    """A redirect sign-in between its start and the provider's answer; used once.

    Found by the SHA-256 of the random state the browser carries to the provider and back;
    ``browser_hash`` is the SHA-256 of the flow cookie set at the start (empty when the backend
    cannot bind the answer to the browser, see ``AuthBackend.binds_browser``).
    """

    __tablename__ = "sign_in_flows"
    state_hash: str = Field(max_length=64, primary_key=True)
    backend: str = Field(max_length=50)
    browser_hash: str = Field(default="", max_length=64)
    next_path: str = Field(default="/", max_length=500)
    data: str = Field(default="{}", sa_type=sa.Text)
    expires_at: datetime = Field(sa_type=UTCDateTime(), nullable=False, index=True)


class LoginThrottle(SQLModel, table=True):
    """Sign-in attempts of one user name from one client address, counted atomically.

    Keyed by the name typed, not the user row, so an unknown name is throttled exactly like a
    known one (the answers cannot tell them apart), and by address, so one attacker's wrong
    passwords do not lock the account for everyone else.
    """

    __tablename__ = "login_throttle"
    username: str = Field(max_length=150, primary_key=True)
    remote_addr: str = Field(max_length=64, primary_key=True)
    failures: int = 0
    locked_until: Optional[datetime] = _ts()
    last_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False, index=True)
