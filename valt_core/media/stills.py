"""JPEG stills: from the live stream (for cameras whose driver takes no snapshots) and from
stored segments (recording thumbnails).

The pipeline keeps the packets since the last keyframe; decoding that keyframe alone gives
the picture of at most one GOP ago, with no extra connection to the camera.
"""

from __future__ import annotations

import fractions
from typing import Any

import av

from ..errors import NotSupported


def _jpeg(frame: Any, quality: int) -> bytes:
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height, enc.pix_fmt = frame.width, frame.height, "yuvj420p"
    enc.time_base = fractions.Fraction(1, 25)
    enc.options = {"qscale": str(quality)}
    enc.flags |= av.codec.context.Flags.qscale
    image = frame.reformat(format="yuvj420p")
    image.pts = 0
    return b"".join(bytes(p) for p in enc.encode(image) + enc.encode(None))


def jpeg_from_media(data: bytes, width: int, quality: int = 5) -> bytes:
    """The first picture of a stored segment (the bytes of an MP4), scaled to ``width`` (blocking)."""
    import io

    with av.open(io.BytesIO(data), "r") as media:
        if not media.streams.video:
            raise NotSupported("the segment has no video")
        for frame in media.decode(video=0):
            if frame.width > width:  # smaller only, and to even sizes (JPEG's 4:2:0 wants them)
                frame = frame.reformat(width=width, height=max(2, round(frame.height * width / frame.width / 2) * 2))
            return _jpeg(frame, quality)
    raise NotSupported("the segment's video could not be decoded into a picture")


def jpeg_from_keyframe(video_stream: Any, keyframe: bytes, quality: int = 5) -> bytes:
    """Decode one keyframe of ``video_stream``'s codec and encode it as JPEG (blocking).

    ``quality`` is FFmpeg's ``qscale`` for MJPEG: 2 (best) to 31.
    """
    dec = av.CodecContext.create(video_stream.codec_context.name, "r")
    if video_stream.codec_context.extradata:
        dec.extradata = video_stream.codec_context.extradata
    frames = list(dec.decode(av.Packet(keyframe))) + list(dec.decode(None))
    if not frames:
        raise NotSupported("the camera's last keyframe could not be decoded into a picture")
    return _jpeg(frames[0], quality)
