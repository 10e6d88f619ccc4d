"""The shapes of the API's JSON answers, for the OpenAPI document (``@responds(200, RoomOut)``).

They describe what :mod:`~valt_core.api.serialize` and the routes build; the fuzz test
(``tests/test_openapi_fuzz.py``) checks every answer against them. Fields may be added to an
answer without breaking clients, so these models allow more properties than they list.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..db.models import MARKER_COLORS


class Answer(BaseModel):
    """Base of answer shapes: the listed fields are promised, others may appear."""

    model_config = ConfigDict(extra="allow")


class GroupRef(Answer):
    """A group named in another answer."""

    id: int
    name: str


class UserOut(Answer):
    """A user, without password hash or lockout internals."""

    id: int
    username: str
    display_name: str
    email: str
    role: Literal["admin", "operator", "viewer", ""]
    groups: list[GroupRef]
    auth_backend: str
    disabled: bool
    last_login_at: str | None


class MeOut(UserOut):
    """The signed-in user and the rights they hold: each right's rooms, or ``null`` for every room."""

    rights: dict[str, list[int] | None]


class UserDetailOut(UserOut):
    """A user and the client addresses their name is locked for now."""

    locked_for: list[str]


class UnlockOut(UserOut):
    """A user whose sign-in locks were ended, and how many address counters went."""

    cleared: int


class AuditEventOut(Answer):
    """One audit event."""

    id: int
    at: str
    actor_id: int | None
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    detail: dict
    remote_addr: str | None
    hash: str


class AuditPageOut(Answer):
    """A page of audit events, newest first; ``next_before_id`` is null on the last page."""

    events: list[AuditEventOut]
    next_before_id: int | None


class LoginOut(Answer):
    """A new sign-in: the bearer token (shown only here), when it expires, and who it is."""

    token: str
    expires_at: str | None
    user: UserOut


class CameraOut(Answer):
    """A camera; secret settings are masked."""

    id: int
    name: str
    room_id: int | None
    driver: str
    config: dict[str, Any]
    enabled: bool
    status: str
    capabilities: list[str]
    media_server_id: int | None = None


class RoomRecording(Answer):
    """The recording a room is running."""

    id: int
    state: str
    elapsed_s: float


class MediaServerOut(Answer):
    """A media server: its row, its cameras, and its load from its presence (``null`` when away)."""

    id: int
    name: str
    pool: str
    live_mode: str
    status: str
    version: str
    last_seen_at: str | None
    cameras: list[int]
    ingesting: list[int]
    recordings: list[int]
    cpu_percent: float | None
    ingest_kbps: float | None
    free_bytes: int | None
    storage_status: str | None = Field(description=(
        "``ok``, or ``spooling`` while its store is away (``null`` when the server is away)."))
    storage_message: str | None = Field(description="Why the store does not take writes, while it does not.")
    storage_pending: dict[str, int] | None = Field(description=(
        "Objects and bytes written that its store does not have yet (``objects``, ``bytes``)."))


class MediaServerEnrolled(MediaServerOut):
    """A media server just enrolled, with the NATS nkey seed it signs in with (shown this once)."""

    nkey: str
    nkey_seed: str


class RoomOut(Answer):
    """A room, its cameras, and its running recording (``null`` when idle)."""

    id: int
    name: str
    description: str
    recording: RoomRecording | None
    cameras: list[CameraOut] = []


class GapOut(Answer):
    """Time in a track with no media, and why."""

    start_s: float
    end_s: float | None
    reason: str


class TrackOut(Answer):
    """One camera's part of a recording, over its finished segments."""

    id: int
    camera_id: int | None
    camera_name: str
    state: str
    video_codec: str
    audio_codec: str
    width: int
    height: int
    segments: int
    bytes: int
    start_s: float
    end_s: float
    duration_s: float
    gaps: list[GapOut]


class RecordingSummary(Answer):
    """A recording in a list."""

    id: int
    room_id: int | None
    name: str
    state: str
    started_at: str
    stopped_at: str | None


class RecordingOut(RecordingSummary):
    """A recording with its tracks."""

    author_id: int | None
    elapsed_s: float | None
    notes: str
    legal_hold: bool
    tracks: list[TrackOut]
    storage_status: Literal["ok", "spooling"] = Field(description=(
        "``spooling`` while the store of a media server recording it is away: recording goes on into "
        "that server's local spool and reaches the store when it is back."))
    storage_message: str | None = Field(description="Why the store does not take writes, while it does not.")


class ClipFileOut(Answer):
    """One file of a clip."""

    track_id: int
    name: str
    bytes: int
    sha256: str


class ClipOut(Answer):
    """A clip job: where it is in the queue, its progress, then its files."""

    id: int
    recording_id: int
    start_s: float
    end_s: float
    exact: bool
    state: Literal["queued", "running", "done", "failed"]
    progress: float
    queue_position: int | None
    error: str | None
    files: list[ClipFileOut]
    author_id: int | None
    created_at: str
    finished_at: str | None


class PluginOut(Answer):
    """A loaded plugin."""

    group: str
    name: str
    distribution: str
    version: str


class RecordingListItem(Answer):
    """A recording on the Review page: what a person scans a list by."""

    id: int
    name: str
    room_id: int | None
    room: str | None
    author_id: int | None
    author: str | None
    state: str
    started_at: str
    stopped_at: str | None
    duration_s: float
    cameras: list[str]
    gaps: int
    markers: int
    legal_hold: bool
    thumbnail_url: str


class RecordingPage(Answer):
    """One page of a search of recordings and how many match in all."""

    items: list[RecordingListItem]
    total: int
    limit: int
    offset: int


class SegmentRefOut(Answer):
    """A finished segment of a track: where it sits on the recording's clock, and its address."""

    seq: int
    start_s: float
    duration_s: float
    bytes: int
    url: str


class TrackSegmentsOut(Answer):
    """A track's segments as the player streams them, with the media type to append them as."""

    recording_id: int
    track_id: int
    camera_name: str
    mime_type: str | None
    has_audio: bool
    segments: list[SegmentRefOut]
    gaps: list[GapOut]


class MarkerOut(Answer):
    """A moment marked in a recording: when (recording time), how long, what, in which colour, by whom."""

    id: int
    recording_id: int
    time_s: float
    duration_s: float | None
    event: str
    color: Literal[tuple(MARKER_COLORS)]  # type: ignore[valid-type]
    hex_color: str
    author_id: int | None
    author: str | None
    created_at: str
    updated_at: str | None
