"""Uploading offline recordings: the two-step API and a tus 1.0 server.

Step one, ``POST /api/v1/uploads``, creates an upload with the session's details and one
entry per video, and answers each video's upload address. Step two sends each video with tus
1.0 to its address: core (``HEAD`` for the offset, ``PATCH`` to append), creation and
creation-with-upload (``POST /api/v1/uploads/{id}/files``, for clients that create their
upload themselves), termination (``DELETE``), expiration (``Upload-Expires``) and checksum
(``Upload-Checksum`` with ``sha256`` or ``sha1``: a chunk that does not match is refused with
460 and nothing is appended). Addresses in ``Location`` are absolute, with the scheme a trusted
proxy reports (some clients refuse relative ones).

The tus server is written here: no tus server library fits Quart on Python 3.11 (asgi-tus
needs 3.12), and the protocol is small. The bytes and what becomes of them are
:mod:`valt_core.uploads`'.
"""

from __future__ import annotations

import base64
import re
from email.utils import format_datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, Field, model_validator
from quart import jsonify, request

from ..context import get_context
from ..db.models import Upload, UploadFile
from ..db.types import utcnow
from ..errors import Forbidden, PreconditionFailed, ValidationFailed, ValtError
from ..flow import taken
from ..uploads import CHECKSUMS, FileSpec, ShareSpec
from . import api
from .guard import (
    Id,
    RequestModel,
    body,
    caller,
    check_room,
    headers_in,
    raw_body,
    read_body,
    remote_addr,
    require,
    responds,
)
from .schemas import Answer

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,expiration,checksum"
OFFSET_TYPE = "application/offset+octet-stream"
_DIGITS = re.compile(r"[0-9]{1,18}")
_FILENAME = re.compile(r"^[^/\\\x00-\x1f]{1,255}$")


class UnsupportedMediaType(ValtError):
    """A PATCH body that is not ``application/offset+octet-stream``."""

    http_status = 415
    code = "unsupported_media_type"


class UploadFileIn(RequestModel):
    """One video of a new upload."""

    filename: str = Field(min_length=1, max_length=255, pattern=_FILENAME.pattern,
                          description="The file's name, e.g. `interview.mp4` (no slashes).")
    size: int = Field(ge=1, le=2**53, description="Its length in bytes (tus Upload-Length).")
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$",
                               description="SHA-256 of the whole file, hex; checked when its last byte is in.")


class UploadShareIn(RequestModel):
    """A share the new recording gets: one user or one group."""

    user_id: Id | None = None
    group_id: Id | None = None
    can_download: bool = False
    until: Annotated[AwareDatetime, Field(strict=False)] | None = Field(
        None, description="The share ends then (ISO 8601 with a zone); null: no end.")

    @model_validator(mode="after")
    def _exactly_one(self) -> "UploadShareIn":
        if (self.user_id is None) == (self.group_id is None):
            raise ValueError("give user_id or group_id (one of them)")
        return self


class UploadCreate(RequestModel):
    """Body of ``POST /api/v1/uploads``: the session, and its videos (one track each)."""

    name: str = Field("", max_length=200, description="The recording's name; empty: `Upload <date>`.")
    room_id: Id | None = Field(None, description="The room it was recorded in (`uploads.create` there); null: "
                                                 "none (`uploads.create` in every room).")
    author_id: Id | None = Field(None, description="Its author; null: the caller. Another user needs "
                                                   "`recordings.change_author`.")
    information: dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=2000)]] = Field(
        default_factory=dict, max_length=50, description="Information filled in on the device (label: value).")
    shares: list[UploadShareIn] = Field(default_factory=list, max_length=50)
    files: list[UploadFileIn] = Field(min_length=1, max_length=64)


class UploadFileOut(Answer):
    """One video of an upload: where to send it and how far it is."""

    id: int
    filename: str
    size: int
    offset: int
    complete: bool
    sha256: str
    upload_url: str
    track_id: int | None


class UploadOut(Answer):
    """An upload and its videos."""

    id: int
    name: str
    room_id: int | None
    author_id: int | None
    state: str
    error: str
    recording_id: int | None
    created_at: str
    expires_at: str
    files: list[UploadFileOut]


def _base_url() -> str:
    # The request's scheme is the one a trusted proxy reported (valt_core.proxy).
    return f"{request.scheme}://{request.host}"


def file_url(file_id: int) -> str:
    """The absolute tus address of one upload file."""
    return f"{_base_url()}/api/v1/uploads/files/{file_id}"


def _upload_json(upload: Upload, files: list[UploadFile]) -> dict[str, Any]:
    return {
        "id": upload.id, "name": upload.name, "room_id": upload.room_id, "author_id": upload.author_id,
        "information": upload.information, "shares": upload.shares, "state": upload.state, "error": upload.error,
        "recording_id": upload.recording_id, "created_at": upload.created_at.isoformat(),
        "expires_at": upload.expires_at.isoformat(),
        "files": [{"id": f.id, "filename": f.filename, "size": f.length, "offset": f.offset, "complete": f.complete,
                   "sha256": f.sha256, "upload_url": file_url(f.id), "track_id": f.track_id} for f in files],
    }


def _tus_headers(upload: Upload, row: UploadFile) -> dict[str, str]:
    headers = {"Tus-Resumable": TUS_VERSION, "Upload-Offset": str(row.offset), "Upload-Length": str(row.length)}
    if upload.state == "open":
        headers["Upload-Expires"] = format_datetime(upload.expires_at, usegmt=True)
    return headers


def _need_tus() -> None:
    sent = request.headers.get("Tus-Resumable")
    if sent is None:
        raise ValidationFailed(f"send Tus-Resumable: {TUS_VERSION}", fields={"Tus-Resumable": "missing"})
    if sent != TUS_VERSION:
        # tus: a version the server does not speak is 412, with the versions it does.
        raise PreconditionFailed(f"Tus-Resumable {sent!r} is not a tus version this server speaks ({TUS_VERSION})")


def _int_header(name: str) -> int:
    text = request.headers.get(name, "")
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not _DIGITS.fullmatch(text):
        raise ValidationFailed(f"send {name} as a whole number of bytes", fields={name: "missing or not a number"})
    return int(text)


def parse_metadata(text: str) -> dict[str, str]:
    """tus ``Upload-Metadata``: ``key base64value`` pairs, comma-separated; values may be absent."""
    found: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, _, value = part.partition(" ")
        try:
            found[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value.strip() else ""
        except ValueError:  # binascii.Error, non-ASCII text, UnicodeDecodeError: all ValueErrors
            raise ValidationFailed(f"Upload-Metadata: the value of {key!r} is not base64 of UTF-8 text",
                                   fields={"Upload-Metadata": "bad value"}) from None
    return found


def parse_checksum(text: str | None) -> tuple[str, bytes] | None:
    """tus ``Upload-Checksum``: ``ALGORITHM base64digest``; ``None`` when not sent."""
    if not text:
        return None
    algorithm, _, value = text.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUMS:
        raise ValidationFailed(f"Upload-Checksum: {algorithm!r} is not an algorithm this server checks "
                               f"({', '.join(CHECKSUMS)})", fields={"Upload-Checksum": "unsupported algorithm"})
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except ValueError:  # not base64, or not even ASCII
        digest = b""
    if len(digest) != CHECKSUMS[algorithm]().digest_size:
        raise ValidationFailed(f"Upload-Checksum: not a base64 {algorithm} digest",
                               fields={"Upload-Checksum": "bad digest"})
    return algorithm, digest


def _offset_body() -> Any:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != OFFSET_TYPE:
        raise UnsupportedMediaType(f"send the bytes with Content-Type: {OFFSET_TYPE}")
    return taken(request.body, request.scope)


async def _audit(action: str, upload_id: int, **detail: Any) -> None:
    await get_context().audit.record(action, actor=caller().user, target_type="upload", target_id=upload_id,
                                     detail=detail, remote_addr=remote_addr())


#: Request headers of the tus routes: name -> (description, required, JSON schema).
TUS_IN = {
    "Tus-Resumable": ("`1.0.0`, the tus version the client speaks (another is 412).", True,
                      {"type": "string", "enum": [TUS_VERSION]}),
    "Upload-Offset": ("Where these bytes go: the server's offset (from HEAD).", True,
                      {"type": "string", "pattern": r"^[0-9]{1,18}$"}),
    "Upload-Checksum": ("`sha256 BASE64` (or `sha1`) of this body; a mismatch is 460 and nothing is appended.",
                        False, {"type": "string", "pattern": r"^(sha256|sha1) [A-Za-z0-9+/]+={0,2}$"}),
}
TUS_OUT = {"Tus-Resumable": "`1.0.0`.", "Upload-Offset": "The committed offset.",
           "Upload-Expires": "When the upload expires unless finished (RFC 7231 date)."}


@api.route("/uploads/tus", methods=["GET", "OPTIONS"])
@require("uploads.create")
@responds(200, {"type": "object"}, description="What this tus server offers, as headers and in the body.",
          headers={"Tus-Version": "`1.0.0`.", "Tus-Extension": "The extensions served.",
                   "Tus-Max-Size": "The largest file, in bytes.", "Tus-Checksum-Algorithm": "`sha256,sha1`."})
async def tus_options():
    """What this tus server offers (tus discovery; also answers OPTIONS)."""
    limits = get_context().settings.uploads
    headers = {"Tus-Resumable": TUS_VERSION, "Tus-Version": TUS_VERSION, "Tus-Extension": TUS_EXTENSIONS,
               "Tus-Max-Size": str(int(limits.max_file_mb * 1024 * 1024)),
               "Tus-Checksum-Algorithm": ",".join(CHECKSUMS)}
    if request.method == "OPTIONS":
        return "", 204, headers
    return jsonify({"version": TUS_VERSION, "extensions": TUS_EXTENSIONS.split(","),
                    "max_size": int(headers["Tus-Max-Size"]), "checksum_algorithms": list(CHECKSUMS)}), 200, headers


@api.post("/uploads")
@require("uploads.create")
@body(UploadCreate)
@responds(201, UploadOut, errors=(404, 413, 507), description="Created; send each file to its `upload_url` with tus.")
async def create_upload():
    """Create an upload: the session's details and its videos, each answered with its tus address.

    Refused with 413 when a file is over `[uploads] max_file_mb` or the caller's unfinished
    uploads would go over `[uploads] quota_mb`. A room needs `uploads.create` in that room; no
    room (`room_id` null) needs it in every room.
    """
    data = await read_body(UploadCreate)
    who = caller()
    if data.room_id is not None:
        check_room("uploads.create", data.room_id)
    elif not who.access.allows("uploads.create", 0):
        # A recording outside any room is reached only by grants for every room (room 0).
        raise Forbidden("an upload outside any room needs the right 'uploads.create' in every room")
    ctx = get_context()
    upload, files = await ctx.uploads.create(
        who.user, name=data.name, room_id=data.room_id, author_id=data.author_id, information=data.information,
        shares=[ShareSpec(s.user_id, s.group_id, s.can_download, s.until) for s in data.shares],
        files=[FileSpec(f.filename, f.size, (f.sha256 or "").lower()) for f in data.files],
        may_set_author=who.access.allows("recordings.change_author"))
    await _audit("upload.create", upload.id, files=[f.filename for f in files],
                 bytes=sum(f.length for f in files), room_id=data.room_id)
    return jsonify(_upload_json(upload, files)), 201


@api.get("/uploads")
@require("uploads.create")
@responds(200, list[UploadOut])
async def list_uploads():
    """The caller's uploads, newest first (200 at most)."""
    found = await get_context().uploads.uploads_of(caller().user.id)
    return jsonify([_upload_json(u, files) for u, files in found])


@api.get("/uploads/<int:upload_id>")
@require("uploads.create")
@responds(200, UploadOut)
async def get_upload(upload_id: int):
    """One of the caller's uploads: its state (`open`, `processing`, `done`, `failed`, `expired`)."""
    upload, files = await get_context().uploads.upload_of(upload_id, caller().user.id)
    return jsonify(_upload_json(upload, files))


@api.delete("/uploads/<int:upload_id>")
@require("uploads.create")
@responds(204, media_type=None, errors=(409,))
async def delete_upload(upload_id: int):
    """Cancel an unfinished upload: its entries and every byte received go (a finished one's row only)."""
    await get_context().uploads.cancel(upload_id, caller().user.id)
    await _audit("upload.cancel", upload_id)
    return "", 204, {"Tus-Resumable": TUS_VERSION}


@api.post("/uploads/<int:upload_id>/files")
@require("uploads.create")
@headers_in({"Tus-Resumable": TUS_IN["Tus-Resumable"],
                 "Upload-Length": ("The file's length in bytes (as announced).", True,
                                   {"type": "string", "pattern": r"^[0-9]{1,18}$"}),
                 "Upload-Metadata": ("`filename BASE64[,sha256 BASE64]`: which announced file this is.", True,
                                     {"type": "string", "minLength": 1}),
                 "Upload-Checksum": TUS_IN["Upload-Checksum"]})
@raw_body(OFFSET_TYPE, "creation-with-upload: the file's first bytes (optional).", optional=True)
@responds(201, media_type=None, description="The file's tus address is in `Location`.",
          errors=(409, 410, 412, 413, 415, 422, 460), headers={"Location": "The absolute tus address.", **TUS_OUT})
async def tus_create(upload_id: int):
    """tus creation: the address of an announced file, found by its `filename` metadata.

    With a body (creation-with-upload) its bytes are appended at offset 0 at once.
    """
    length = _int_header("Upload-Length")
    meta = parse_metadata(request.headers.get("Upload-Metadata", ""))
    filename = meta.get("filename") or meta.get("name") or ""
    if not filename:
        raise ValidationFailed("Upload-Metadata must name the file (filename)",
                               fields={"Upload-Metadata": "no filename"})
    sha256 = meta.get("sha256", "").strip().lower()
    if sha256 and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValidationFailed("Upload-Metadata: sha256 must be 64 hexadecimal digits",
                               fields={"Upload-Metadata": "bad sha256"})
    _need_tus()
    uploads = get_context().uploads
    row = await uploads.claim(upload_id, caller().user.id, filename, length, sha256)
    # creation-with-upload: the client says so with the body's type (tus 1.0).
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type == OFFSET_TYPE:
        checksum = parse_checksum(request.headers.get("Upload-Checksum"))
        row = await uploads.receive(row.id, caller().user.id, 0, _offset_body(), checksum)
    upload, row = await uploads.file_of(row.id, caller().user.id)
    return "", 201, {"Location": file_url(row.id), **_tus_headers(upload, row)}


@api.get("/uploads/files/<int:file_id>")
@require("uploads.create")
@responds(200, UploadFileOut, description="The file (tus HEAD answers the same headers, no body).",
          headers={"Upload-Length": "The file's length.", **TUS_OUT}, errors=(410,))
async def tus_head(file_id: int):
    """tus HEAD: how many bytes of this file the server has (`Upload-Offset`)."""
    upload, row = await get_context().uploads.file_of(file_id, caller().user.id)
    if upload.state in ("expired", "failed") or (upload.state == "open" and upload.expires_at <= utcnow()):
        get_context().uploads.check_open(upload)  # the same 410 a PATCH answers
    out = {"id": row.id, "filename": row.filename, "size": row.length, "offset": row.offset,
           "complete": row.complete, "sha256": row.sha256, "upload_url": file_url(row.id), "track_id": row.track_id,
           "upload_id": upload.id, "upload_state": upload.state}
    return jsonify(out), 200, _tus_headers(upload, row)


@api.patch("/uploads/files/<int:file_id>")
@require("uploads.create")
@headers_in(TUS_IN)
@raw_body(OFFSET_TYPE, "The bytes from `Upload-Offset` on.")
@responds(204, media_type=None, description="Appended; the new offset is in `Upload-Offset`.",
          errors=(409, 410, 412, 413, 415, 422, 460), headers=TUS_OUT)
async def tus_patch(file_id: int):
    """tus PATCH: append bytes at the server's offset.

    A body whose `Upload-Checksum` does not match is refused with 460 and nothing appended.
    When the file's last byte is in, its declared SHA-256 is checked and it is probed: one that
    is not a playable video (or another SHA-256) is refused with 422 and the whole upload with it.
    """
    offset = _int_header("Upload-Offset")
    checksum = parse_checksum(request.headers.get("Upload-Checksum"))
    body_stream = _offset_body()
    _need_tus()
    uploads = get_context().uploads
    row = await uploads.receive(file_id, caller().user.id, offset, body_stream, checksum)
    upload, row = await uploads.file_of(row.id, caller().user.id)
    return "", 204, _tus_headers(upload, row)


@api.delete("/uploads/files/<int:file_id>")
@require("uploads.create")
@headers_in({"Tus-Resumable": TUS_IN["Tus-Resumable"]})
@responds(204, media_type=None, errors=(409, 412))
async def tus_delete(file_id: int):
    """tus termination: cancel the upload this file belongs to, removing every byte received."""
    _need_tus()
    upload, _row = await get_context().uploads.file_of(file_id, caller().user.id)
    await get_context().uploads.cancel(upload.id, caller().user.id)
    await _audit("upload.cancel", upload.id, file_id=file_id)
    return "", 204, {"Tus-Resumable": TUS_VERSION}


@api.after_request
async def tus_resumable_on_errors(response):
    """tus clients read ``Tus-Resumable`` on every answer of a tus address, errors too."""
    if request.path.startswith("/api/v1/uploads"):
        response.headers.setdefault("Tus-Resumable", TUS_VERSION)
        if response.status_code == 412:
            response.headers.setdefault("Tus-Version", TUS_VERSION)
    return response
