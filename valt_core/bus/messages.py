"""The typed, versioned messages on the bus: commands to a media server and its events.

Every message is a pydantic model with a ``kind`` and a ``version``; on the wire it is JSON,
``{"kind": "segment.closed", "v": 1, "body": {...}}``. A receiver refuses a version it does not
know (:class:`BusProtocolError`) rather than guess; fields added within a version are ignored
by older receivers. docs/bus.md is the reference; a test checks it names every message here.

Commands go by request/reply to ``valt.media.<server>.cmd``; the answer is a message of the
command's ``answer`` type, raw bytes for stills and object reads, or an error (the header
``valt-error`` holds ``{"code", "status", "message"}``). Events go to the durable stream on
``valt.index.<server>`` with the headers ``valt-server``, ``valt-epoch`` (one per start of the
server) and ``valt-seq`` (the event's number in that epoch), so the app server can tell how far
it has applied each server's events.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ValtError


class BusProtocolError(ValtError):
    """A message that is not one of ours: unknown kind or version, or a malformed body."""

    code = "bus_protocol_error"


class BusMessage(BaseModel):
    """Base of every message on the bus."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    kind: ClassVar[str] = ""
    version: ClassVar[int] = 1

    def encode(self) -> bytes:
        """The message as bytes for the bus."""
        return json.dumps({"kind": self.kind, "v": self.version, "body": self.model_dump(mode="json")},
                          separators=(",", ":")).encode()


#: Every message type, by kind (filled by :func:`message`).
MESSAGES: dict[str, type[BusMessage]] = {}


def message(cls: type[BusMessage]) -> type[BusMessage]:
    """Register a message type under its kind."""
    assert cls.kind and cls.kind not in MESSAGES, cls
    MESSAGES[cls.kind] = cls
    return cls


def decode(data: bytes) -> BusMessage:
    """The message ``data`` holds; :class:`BusProtocolError` for anything else."""
    try:
        envelope = json.loads(data)
        kind, version, body = envelope["kind"], envelope["v"], envelope["body"]
    except (ValueError, KeyError, TypeError) as err:
        raise BusProtocolError("not a Valt bus message") from err
    cls = MESSAGES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise BusProtocolError(f"unknown message kind {str(kind)[:60]!r}")
    if version != cls.version:
        raise BusProtocolError(f"{kind} version {version!r} is not the version {cls.version} this server speaks")
    try:
        return cls.model_validate(body)
    except ValidationError as err:
        raise BusProtocolError(f"malformed {kind}: {err.error_count()} bad field(s)") from err


# --- what commands carry -------------------------------------------------------------------

class CameraSpec(BaseModel):
    """What a media server needs to ingest a camera (its driver settings include secrets)."""

    model_config = ConfigDict(frozen=True)
    id: int
    name: str
    driver: str
    config: dict[str, Any] = {}
    #: The camera's creation identity, which live tokens name (so one for a deleted camera never opens its successor).
    key: int = 0


class TrackSpec(BaseModel):
    """One track of a recording: which camera it records, and from where it goes on.

    A track taken over from a media server that was lost starts at ``first_seq`` (after the
    segments the other server wrote) with a gap open from ``gap_from_s`` until its first segment.
    """

    model_config = ConfigDict(frozen=True)
    track_id: int
    camera: CameraSpec
    first_seq: int = 1
    gap_from_s: float | None = None
    gap_reason: str = ""


# --- commands ------------------------------------------------------------------------------

class Command(BusMessage):
    """A command to a media server; ``answer`` is the type of its reply (``None``: raw bytes)."""

    answer: ClassVar[type[BusMessage] | None]


@message
class Done(BusMessage):
    """A command was carried out; ``upto`` is the number of the server's newest event by then."""

    kind: ClassVar[str] = "done"
    epoch: str
    upto: int


@message
class IngestCamera(Command):
    """Ingest this camera (again, with these settings, when it is already ingested)."""

    kind: ClassVar[str] = "camera.ingest"
    answer: ClassVar[type[BusMessage] | None] = Done
    camera: CameraSpec


@message
class ReleaseCamera(Command):
    """Stop ingesting a camera and its live stream (removed, disabled, moved or reconfigured)."""

    kind: ClassVar[str] = "camera.release"
    answer: ClassVar[type[BusMessage] | None] = Done
    camera_id: int


@message
class TakeStill(Command):
    """A JPEG of the camera's newest keyframe (the answer is the JPEG's bytes)."""

    kind: ClassVar[str] = "camera.still"
    answer: ClassVar[type[BusMessage] | None] = None
    camera: CameraSpec


@message
class StartRecording(Command):
    """Record these tracks of a recording; refused when storage is short of space."""

    kind: ClassVar[str] = "recording.start"
    answer: ClassVar[type[BusMessage] | None] = Done
    recording_id: int
    room_id: int
    tracks: list[TrackSpec]
    #: Recording time so far (a recording taken over from another media server), and its state.
    elapsed_s: float = 0.0
    paused: bool = False


@message
class PauseRecording(Command):
    """Pause a running recording (its current segments are finished)."""

    kind: ClassVar[str] = "recording.pause"
    answer: ClassVar[type[BusMessage] | None] = Done
    recording_id: int


@message
class ResumeRecording(Command):
    """Resume a paused recording at each camera's next keyframe."""

    kind: ClassVar[str] = "recording.resume"
    answer: ClassVar[type[BusMessage] | None] = Done
    recording_id: int


@message
class StopRecording(Command):
    """Stop a recording; answered once every track's last segment is written and its events queued."""

    kind: ClassVar[str] = "recording.stop"
    answer: ClassVar[type[BusMessage] | None] = Done
    recording_id: int
    reason: str = ""


@message
class LiveOpened(BusMessage):
    """The answer to :class:`OpenLive`: where the fragments go and what the stream is."""

    kind: ClassVar[str] = "live.opened"
    subject: str
    profile: str = "main"
    transcoding: list[str] = []


@message
class OpenLive(Command):
    """Start the camera's live stream and relay its fragments on ``valt.live.<server>.<camera>``.

    Sent again every few seconds while the app server has viewers (the relay stops when it is
    not); ``replay`` asks for the init segment and the current GOP again, for a new subscriber.
    """

    kind: ClassVar[str] = "live.open"
    answer: ClassVar[type[BusMessage] | None] = LiveOpened
    camera: CameraSpec
    replay: bool = True


@message
class LiveKey(Command):
    """The key this media server checks direct live tokens with (sent by the app server when it joins).

    It is derived from the app server's secret for this media server alone, so a media server can
    check tokens for its own cameras without being able to sign any for another's.
    """

    kind: ClassVar[str] = "live.key"
    answer: ClassVar[type[BusMessage] | None] = Done
    key: str = Field(repr=False)
    #: Longest lifetime of a live token, so revocations are kept as long as a token may live.
    token_ttl_s: float = 300.0


@message
class LiveRevoke(Command):
    """Close direct viewers whose token names this session, user or camera, and refuse such tokens
    that expire by ``until`` (every one issued before now); 0 matches nothing."""

    kind: ClassVar[str] = "live.revoke"
    answer: ClassVar[type[BusMessage] | None] = Done
    session_id: int = 0
    user_id: int = 0
    camera_id: int = 0
    until: float
    reason: str


@message
class ObjectStat(BusMessage):
    """The answer to :class:`StatObject`: the object's size in bytes."""

    kind: ClassVar[str] = "object.stat_answer"
    size: int


@message
class StatObject(Command):
    """The size of a segment in this media server's store (``not_found`` if absent)."""

    kind: ClassVar[str] = "object.stat"
    answer: ClassVar[type[BusMessage] | None] = ObjectStat
    key: str


@message
class ReadObject(Command):
    """Bytes ``[offset, offset + length)`` of a segment in this media server's store (the answer is the bytes).

    For an app server that does not share the media server's store: playback, clips and verify
    read a segment in chunks of at most :data:`READ_CHUNK_MAX` bytes. Only segment keys are read.
    """

    kind: ClassVar[str] = "object.read"
    answer: ClassVar[type[BusMessage] | None] = None
    key: str
    offset: int = Field(0, ge=0)
    length: int = Field(ge=1)


@message
class DeleteObject(Command):
    """Delete a segment from this media server's store (its recording was deleted); absent is no error."""

    kind: ClassVar[str] = "object.delete"
    answer: ClassVar[type[BusMessage] | None] = Done
    key: str


#: The most one :class:`ReadObject` answers (NATS's default message limit is 1 MiB).
READ_CHUNK_MAX = 512 * 1024


@message
class ControlResult(BusMessage):
    """The answer to :class:`ControlCamera`: what the driver returned, as JSON (``None`` for nothing)."""

    kind: ClassVar[str] = "camera.control_result"
    value: Any = None


#: The driver methods a media server calls for the app server, and their arguments.
CONTROL_ACTIONS: dict[str, tuple[str, ...]] = {
    "ptz_move": ("pan", "tilt", "zoom"), "ptz_stop": (), "ptz_position": (),
    "ptz_absolute": ("pan", "tilt", "zoom"), "ptz_relative": ("pan", "tilt", "zoom"),
    "presets": (), "save_preset": ("name",), "goto_preset": ("token",), "remove_preset": ("token",),
}


@message
class SnapshotCamera(Command):
    """A JPEG from the camera's own snapshot function, taken by the media server that reaches it (the JPEG)."""

    kind: ClassVar[str] = "camera.snapshot"
    answer: ClassVar[type[BusMessage] | None] = None
    camera: CameraSpec


@message
class ControlCamera(Command):
    """Call a camera's driver on the media server that reaches it: PTZ and presets.

    For a site whose cameras only its media server can reach (the hybrid cloud form); the answer
    is :class:`ControlResult`.
    """

    kind: ClassVar[str] = "camera.control"
    answer: ClassVar[type[BusMessage] | None] = ControlResult
    camera: CameraSpec
    action: str
    args: dict[str, Any] = {}


# --- events --------------------------------------------------------------------------------

class Event(BusMessage):
    """An event of a media server, in its durable stream."""


@message
class CameraStatus(Event):
    """A camera's ingest state: ``online``, ``offline``, ``no_frames`` or ``error``, and why."""

    kind: ClassVar[str] = "camera.status"
    camera_id: int
    status: str
    previous: str
    reason: str = ""


@message
class SegmentOpened(Event):
    """A segment was started; its object is written under ``key`` from now on."""

    kind: ClassVar[str] = "segment.opened"
    recording_id: int
    track_id: int
    seq: int
    key: str
    start_s: float
    video_codec: str = ""
    width: int = 0
    height: int = 0
    audio_codec: str = ""


@message
class SegmentClosed(Event):
    """A segment is finished: its object holds ``bytes`` bytes hashing to ``sha256``."""

    kind: ClassVar[str] = "segment.closed"
    recording_id: int
    track_id: int
    seq: int
    duration_s: float
    bytes: int
    sha256: str


@message
class SegmentSalvaged(Event):
    """An unfinished segment (a crash, a failed write) was cut to its whole fragments.

    ``bytes == 0``: it held no whole fragment; its object was deleted and it leaves the index.
    """

    kind: ClassVar[str] = "segment.salvaged"
    recording_id: int
    track_id: int
    seq: int
    key: str
    duration_s: float
    bytes: int
    sha256: str


@message
class GapOpened(Event):
    """A track's camera was lost at ``start_s`` (recording time)."""

    kind: ClassVar[str] = "gap.opened"
    recording_id: int
    track_id: int
    start_s: float
    reason: str


@message
class GapClosed(Event):
    """The gap that opened at ``start_s`` closed at ``end_s``."""

    kind: ClassVar[str] = "gap.closed"
    recording_id: int
    track_id: int
    start_s: float
    end_s: float


@message
class TrackEnded(Event):
    """A track stopped recording; ``failed`` says why when it ended on a failure."""

    kind: ClassVar[str] = "track.ended"
    recording_id: int
    track_id: int
    failed: str | None = None
    errors: int = 0
    last_error: str | None = None


@message
class RecordingEnded(Event):
    """Every track of the recording on this server ended.

    ``cause``: ``command`` (asked to stop), ``failure`` (a track failed), ``disk_full`` (storage
    below the floor) or ``shutdown`` (the server is stopping).
    """

    kind: ClassVar[str] = "recording.ended"
    recording_id: int
    cause: str
    reason: str = ""
    #: Troubles worth keeping with the recording (a track's recording errors).
    notes: list[str] = []


@message
class LiveViewOpened(Event):
    """A browser opened a camera's live stream directly on this media server (the app server audits it)."""

    kind: ClassVar[str] = "live.view_opened"
    camera_id: int
    user_id: int
    session_id: int = 0
    transport: str = ""
    remote_addr: str = ""


@message
class PublishRefused(Event):
    """A device's publish (RTMP) was refused: a missing, wrong or revoked stream key (the app server
    audits it and counts it against the device whose revoked key it was)."""

    kind: ClassVar[str] = "push.refused"
    reason: str
    remote_addr: str = ""
    device: str = ""
    transport: str = ""


@message
class PublishStarted(Event):
    """A device started publishing to this media server (audited by the app server)."""

    kind: ClassVar[str] = "push.started"
    device: str
    remote_addr: str = ""
    transport: str = ""


#: The header of an answer that carries an error instead of a result.
ERROR_HEADER = "valt-error"


def error_headers(err: ValtError) -> dict[str, str]:
    """The headers of an answer that says ``err`` (its message is already free of secrets)."""
    return {ERROR_HEADER: json.dumps({"code": err.code, "status": err.http_status, "message": err.message})}


def answer_error(headers: dict[str, str]) -> ValtError | None:
    """The error an answer carries, as the Valt error of its code; ``None`` for a result."""
    raw = headers.get(ERROR_HEADER)
    if raw is None:
        return None
    try:
        said = json.loads(raw)
        code, message = str(said["code"]), str(said["message"])
    except (ValueError, KeyError, TypeError):
        return BusProtocolError("a media server answered with an unreadable error")
    cls = _error_classes().get(code, ValtError)
    return cls(message)


def _error_classes() -> dict[str, type[ValtError]]:
    found: dict[str, type[ValtError]] = {}
    todo = [ValtError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return found


def command_subject(server: str) -> str:
    """Where a media server takes commands."""
    return f"valt.media.{server}.cmd"


def live_subject(server: str, camera_id: int) -> str:
    """Where a media server relays a camera's live fragments (core NATS: at most once)."""
    return f"valt.live.{server}.{camera_id}"


def event_subject(server: str) -> str:
    """Where a media server's events go (the durable stream)."""
    return f"valt.index.{server}"


#: What every media server's events match.
ALL_EVENTS = "valt.index.>"
