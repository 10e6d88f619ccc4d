"""Turning an uploaded video file into a track's segments: checked, then stream-copied.

:func:`probe` says whether a file is a video Valt can record (a media file with an H.264 or
H.265 video track that decodes) and what it holds. :func:`remux_segments` cuts it at keyframes
into fragmented-MP4 segments exactly as a live recording is cut (the same
:class:`~valt_core.media.segments.SegmentWriter`), never re-encoding a frame. Both block (PyAV
demuxing): run them in a worker thread. Nothing here knows the database or the storage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

import av

from ..errors import UnplayableVideo
from .pipeline import Connected, MediaPacket
from .segments import SegmentWriter, container_for

log = logging.getLogger(__name__)

#: Video Valt records (stream copy): what cameras and phones send.
VIDEO_CODECS = frozenset({"h264", "hevc"})
#: Audio kept as it is; other audio is left out of the recording (and said so in its notes).
AUDIO_CODECS = frozenset({"aac", "opus", "mp3", "pcm_mulaw", "pcm_alaw"})


@dataclass(frozen=True)
class ProbedVideo:
    """What an uploaded file holds."""

    duration_s: float
    video_codec: str
    width: int
    height: int
    audio_codec: str
    #: Audio in the file that the recording leaves out (a codec not in :data:`AUDIO_CODECS`).
    dropped_audio: str
    #: When the file says it was recorded (mp4 ``creation_time``), UTC; ``None`` when it does not.
    created_at: datetime | None


def _created_at(container: Any) -> datetime | None:
    for meta in [container.metadata] + [s.metadata for s in container.streams]:
        text = (meta or {}).get("creation_time")
        if not text:
            continue
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            continue
        # Cameras write 1904-01-01 (mp4's zero) or 1970 when they do not know the time.
        if when.year < 1990:
            continue
        return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    return None


def _streams(container: Any) -> tuple[Any, Any, str]:
    video = next((s for s in container.streams.video), None)
    if video is None:
        raise UnplayableVideo("the file has no video track")
    if video.codec_context.name not in VIDEO_CODECS:
        raise UnplayableVideo(f"the video is {video.codec_context.name}; Valt records H.264 and H.265 "
                              "without re-encoding, so convert it first")
    audio = next((s for s in container.streams.audio), None)
    dropped = ""
    if audio is not None and audio.codec_context.name not in AUDIO_CODECS:
        dropped, audio = audio.codec_context.name, None
    return video, audio, dropped


def probe(path: str) -> ProbedVideo:
    """Check that ``path`` is a video Valt can record, decoding its first frame.

    Raises :class:`UnplayableVideo` with a reason people understand when it is not.
    """
    try:
        container = av.open(path)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as err:
        raise UnplayableVideo("the file is not a video Valt can read (not a media file, or damaged)") from err
    with container:
        video, audio, dropped = _streams(container)
        try:
            decoded = False
            for packet in container.demux(video):
                if any(True for _ in packet.decode()):
                    decoded = True
                    break
            if not decoded:
                for _ in video.codec_context.decode(None):
                    decoded = True
                    break
        except av.error.FFmpegError as err:
            raise UnplayableVideo(f"the video does not decode: {err}") from err
        if not decoded:
            raise UnplayableVideo("the video track holds no frame that decodes")
        if container.duration is not None:
            duration = container.duration / av.time_base
        elif video.duration is not None:
            duration = float(video.duration * video.time_base)
        else:
            duration = 0.0
        return ProbedVideo(duration_s=max(0.0, duration), video_codec=video.codec_context.name,
                           width=video.codec_context.width, height=video.codec_context.height,
                           audio_codec=audio.codec_context.name if audio is not None else "",
                           dropped_audio=dropped, created_at=_created_at(container))


@dataclass(frozen=True)
class SegmentOpen:
    """A segment begins: its number, its start (seconds from the file's first keyframe), codecs and extension."""

    seq: int
    start_s: float
    video_codec: str
    width: int
    height: int
    audio_codec: str
    ext: str


@dataclass(frozen=True)
class SegmentData:
    """Bytes of the open segment (one or more whole fragments)."""

    data: bytes


@dataclass(frozen=True)
class SegmentDone:
    """The open segment is finished: its duration, size and SHA-256."""

    duration_s: float
    bytes: int
    sha256: str


SegmentEvent = SegmentOpen | SegmentData | SegmentDone


def remux_segments(path: str, segment_seconds: float, fragment_seconds: float) -> Iterator[SegmentEvent]:
    """Cut the video file ``path`` into segments (stream copy), as events in order.

    A segment starts at a video keyframe and ends at the first keyframe after
    ``segment_seconds``, as a live recording's do; audio from before the first keyframe is
    left out. Raises :class:`UnplayableVideo` for a file that cannot be read to its end.
    """
    try:
        container = av.open(path)
    except av.error.FFmpegError as err:
        raise UnplayableVideo("the file is not a video Valt can read") from err
    with container:
        video, audio, _dropped = _streams(container)
        connected = Connected(generation=1, video=video, audio=audio)
        _fmt, ext = container_for(connected)
        codecs = (video.codec_context.name, video.codec_context.width, video.codec_context.height,
                  audio.codec_context.name if audio is not None else "")
        wanted = [video] + ([audio] if audio is not None else [])
        segment: SegmentWriter | None = None
        zero = 0.0
        seq = 0
        try:
            for packet in container.demux(wanted):
                if packet.dts is None or packet.size == 0:
                    continue  # the demuxer's flush packets
                kind = "video" if packet.stream is video else "audio"
                tb = packet.time_base
                dts_s = float(packet.dts * tb)
                pts_s = float(packet.pts * tb) if packet.pts is not None else dts_s
                keyframe = kind == "video" and packet.is_keyframe
                mp = MediaPacket(generation=1, kind=kind, packet=packet, dts_s=dts_s, pts_s=pts_s, keyframe=keyframe)
                if segment is None:
                    if not keyframe:
                        continue  # a segment must begin with a keyframe
                    zero = dts_s
                elif keyframe and segment.duration_s >= segment_seconds:
                    data = segment.close()
                    if data:
                        yield SegmentData(data)
                    yield SegmentDone(segment.duration_s, segment.bytes, segment.sha256.hexdigest())
                    segment = None
                if segment is None:
                    seq += 1
                    segment = SegmentWriter(connected, mp, fragment_seconds)
                    yield SegmentOpen(seq, max(0.0, dts_s - zero), *codecs, ext)
                data = segment.write(mp)
                if data:
                    yield SegmentData(data)
            if segment is not None:
                data = segment.close()
                if data:
                    yield SegmentData(data)
                yield SegmentDone(segment.duration_s, segment.bytes, segment.sha256.hexdigest())
        except av.error.FFmpegError as err:
            if segment is not None:
                segment.abort()
            raise UnplayableVideo(f"the video could not be read to its end: {err}") from err
        if seq == 0:
            raise UnplayableVideo("the video track has no keyframe to start from")
