"""What reviewing recordings keeps between requests: thumbnails, the players' media types, and
the viewing spans that go into the audit log.

A player fetches a recording's segments one after another on each track; auditing each fetch
would bury the log, and auditing only the first would hide what was watched. A
:class:`ViewingSpans` keeps, per person and recording, the span being watched and writes one
``recording.watch`` event when it ends: when the next fetch is not contiguous (a seek), or when
no fetch came for :data:`SPAN_IDLE_S` (the player was closed or paused).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

import av

from .audit import AuditLog
from .db.models import User
from .files import FILE_MODE, make_private_dir
from .storage.base import StorageBackend

log = logging.getLogger(__name__)

#: A viewing span ends when its viewer fetched nothing for this long.
SPAN_IDLE_S = 30.0
#: A fetch this far past a span's end (or before its start) still continues it: a player reads ahead.
SPAN_SLACK_S = 20.0
#: The bytes read of a segment to learn its codecs: the initialisation (moov) comes first and is small.
INIT_BYTES = 256 * 1024


@dataclass
class _Span:
    user: User
    recording_id: int
    start_s: float
    end_s: float
    remote_addr: str
    tracks: set[int] = field(default_factory=set)
    last_fetch: float = field(default_factory=time.monotonic)


def codecs_of(data: bytes) -> str | None:
    """The MSE type (``video/mp4; codecs="avc1.64001f,mp4a.40.2"``) of an fMP4 segment's start.

    ``None`` for media a browser cannot append (QuickTime with G.711, unknown codecs).
    """
    try:
        with av.open(io.BytesIO(data), "r") as media:
            if media.format.name and "mov" in media.format.name and data[4:8] == b"ftyp" and data[8:12] == b"qt  ":
                return None
            parts = []
            for stream in media.streams:
                ctx = stream.codec_context
                extra = bytes(ctx.extradata or b"")
                if stream.type == "video" and ctx.name == "h264" and len(extra) >= 4:
                    parts.append(f"avc1.{extra[1]:02x}{extra[2]:02x}{extra[3]:02x}")
                elif stream.type == "video" and ctx.name == "hevc" and len(extra) >= 13:
                    tier = "H" if extra[1] & 0x20 else "L"
                    compat = int.from_bytes(extra[2:6], "big")
                    compat = int(f"{compat:032b}"[::-1], 2)  # written in reverse bit order
                    parts.append(f"hvc1.{extra[1] & 0x1f}.{compat:x}.{tier}{extra[12]}.B0")
                elif stream.type == "audio" and ctx.name == "aac":
                    object_type = (extra[0] >> 3) if extra else 2
                    parts.append(f"mp4a.40.{object_type}")
                elif stream.type == "audio" and ctx.name == "opus":
                    parts.append("opus")
                elif stream.type in ("video", "audio"):
                    return None
    except (av.error.FFmpegError, ValueError) as err:
        log.warning("could not read the codecs of a segment: %s", err)
        return None
    return f'video/mp4; codecs="{",".join(parts)}"' if parts else None


class ReviewService:
    """Thumbnails on disk, segment media types in memory, and the viewing spans being watched."""

    def __init__(self, data_dir: Path, audit: AuditLog) -> None:
        self.thumbnails = data_dir / "cache" / "thumbnails"
        self.audit = audit
        self._mime: dict[str, str | None] = {}
        self._spans: dict[tuple[int, int], _Span] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._closer: asyncio.Task | None = None

    # --- thumbnails --------------------------------------------------------------------

    def _thumbnail_path(self, recording_id: int, key: str) -> Path:
        tag = hashlib.sha256(key.encode()).hexdigest()[:16]
        return self.thumbnails / f"recording-{recording_id}-{tag}.jpg"

    async def thumbnail(self, recording_id: int, key: str, make: Callable[[], Awaitable[bytes]]) -> bytes:
        """The cached JPEG of ``recording_id`` made from segment ``key``, made by ``make`` once."""
        path = self._thumbnail_path(recording_id, key)
        lock = self._locks.setdefault(recording_id, asyncio.Lock())
        async with lock:
            if path.exists():
                return await asyncio.to_thread(path.read_bytes)
            jpeg = await make()
            make_private_dir(self.thumbnails)
            tmp = path.with_suffix(".part")
            await asyncio.to_thread(tmp.write_bytes, jpeg)
            tmp.chmod(FILE_MODE)
            tmp.replace(path)
        self._locks.pop(recording_id, None)
        return jpeg

    def forget_recording(self, recording_id: int, track_ids: list[int]) -> None:
        """Drop what is kept of a deleted recording (its thumbnails)."""
        for path in self.thumbnails.glob(f"recording-{recording_id}-*.jpg"):
            path.unlink(missing_ok=True)
        self._spans = {k: v for k, v in self._spans.items() if v.recording_id != recording_id}

    # --- media types -------------------------------------------------------------------

    async def mime_type(self, key: str, storage: StorageBackend) -> str | None:
        """The MSE type of the segment stored at ``key`` (read once: a track keeps its codecs)."""
        if key not in self._mime:
            head = bytearray()
            async for chunk in storage.read(key, 0, INIT_BYTES):
                head += chunk
            self._mime[key] = await asyncio.to_thread(codecs_of, bytes(head))
        return self._mime[key]

    # --- viewing spans -----------------------------------------------------------------

    async def note_playback(self, user: User, recording_id: int, track_id: int, start_s: float, end_s: float,
                            remote_addr: str) -> None:
        """A segment of ``[start_s, end_s)`` was fetched: extend the viewer's span or start a new one."""
        now = time.monotonic()
        key = (user.id or 0, recording_id)
        span = self._spans.get(key)
        if span is not None and (now - span.last_fetch > SPAN_IDLE_S or start_s > span.end_s + SPAN_SLACK_S
                                 or end_s < span.start_s - SPAN_SLACK_S):
            await self._close(key)
            span = None
        if span is None:
            span = self._spans[key] = _Span(user, recording_id, start_s, end_s, remote_addr)
        span.start_s, span.end_s = min(span.start_s, start_s), max(span.end_s, end_s)
        span.tracks.add(track_id)
        span.last_fetch = now
        if self._closer is None or self._closer.done():
            self._closer = asyncio.get_running_loop().create_task(self._close_idle(), name="viewing-spans")

    async def _close(self, key: tuple[int, int]) -> None:
        span = self._spans.pop(key, None)
        if span is None:
            return
        await self.audit.record("recording.watch", actor=span.user, target_type="recording",
                                target_id=span.recording_id, remote_addr=span.remote_addr,
                                detail={"start_s": round(span.start_s, 3), "end_s": round(span.end_s, 3),
                                        "tracks": sorted(span.tracks)})

    async def _close_idle(self) -> None:
        while self._spans:
            await asyncio.sleep(min(5.0, SPAN_IDLE_S / 3))
            now = time.monotonic()
            for key in [k for k, v in self._spans.items() if now - v.last_fetch > SPAN_IDLE_S]:
                try:
                    await self._close(key)
                except Exception:  # noqa: BLE001 - the next pass tries the others
                    log.exception("could not write a viewing span to the audit log")

    async def close(self) -> None:
        """Write every open span (the app is stopping)."""
        if self._closer is not None:
            self._closer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._closer
        for key in list(self._spans):
            await self._close(key)
