"""Building a playable MP4 from a track's stored segments, for playback and clips.

Always stream copy for video. Keyframe-aligned by default (the file starts at the keyframe at
or before the requested start); ``exact`` keeps that keyframe's pre-roll with negative
timestamps, so the MP4 edit list starts playback on the requested frame without re-encoding.
G.711 audio, which MP4 players do not take, is the one thing converted (to AAC).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import av

from .codecs import G711, G711ToAac, nal_length_size, whole_nal_units

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentRef:
    """Where a stored segment sits on the recording's timeline."""

    key: str
    start_s: float
    duration_s: float


@dataclass
class BuildResult:
    """What a build produced."""

    origin_s: float
    """Recording time of the output's first shown frame."""
    end_s: float
    """Recording time just after the last frame included."""
    video_frames: int = 0
    dropped: int = 0
    """Video packets left out because no decoder could take them (cut short, or mis-framed)."""


def build_mp4(
    segments: list[SegmentRef],
    fetch: Callable[[str], bytes | str],
    out_path: str,
    start_s: float,
    end_s: float,
    exact: bool = False,
    progress: Callable[[float], None] | None = None,
) -> BuildResult:
    """Write ``[start_s, end_s)`` of a track (recording times) to ``out_path`` as MP4.

    ``fetch(key)`` returns a segment's bytes, or a path to read it from. Blocking: run it in
    a thread.
    """
    import io

    chosen = [s for s in segments if s.start_s + s.duration_s > start_s and s.start_s < end_s]
    if not chosen:
        raise ValueError("no recorded media in that range")
    out = av.open(out_path, "w", format="mp4", options={"movflags": "+faststart"})
    out_video = out_audio = None
    g711: G711ToAac | None = None
    origin: float | None = None
    pending: list[tuple[Any, float, str]] = []  # packets since the last keyframe before start
    last_dts: dict[str, int] = {}
    result = BuildResult(origin_s=start_s, end_s=start_s)
    total = max(1e-6, end_s - start_s)

    # Per (segment, kind): [time base as a float, ticks from segment time to output time].
    # Integer shifts keep Fraction arithmetic out of the per-packet loop.
    shifts: dict[str, list] = {}

    def emit(packet: Any, t_pts: float, kind: str) -> None:
        if kind == "audio" and g711 is not None:
            for p in g711.encode(packet, t_pts - origin):
                out.mux(p)
            return
        info = shifts[kind]
        if info[1] is None:
            info[1] = round((seg_start - origin) / info[0])
        dts = packet.dts + info[1]
        pts = (packet.pts if packet.pts is not None else packet.dts) + info[1]
        last = last_dts.get(kind)
        if last is not None and dts <= last:
            bump = last + 1 - dts
            dts += bump
            pts += bump
        last_dts[kind] = dts
        if kind == "video":
            result.video_frames += 1
            end = t_pts + (packet.duration or 0) * info[0]
            if end > result.end_s:
                result.end_s = end
        packet.dts, packet.pts = dts, pts
        packet.stream = out_video if kind == "video" else out_audio
        out.mux(packet)

    try:
        for seg in chosen:
            seg_start = seg.start_s
            source = fetch(seg.key)
            with av.open(source if isinstance(source, str) else io.BytesIO(source)) as src:
                v = src.streams.video[0]
                a = src.streams.audio[0] if src.streams.audio else None
                if out_video is None:
                    out_video = out.add_stream_from_template(v)
                    if a is not None:
                        if a.codec_context.name in G711:
                            g711 = G711ToAac(out, a)
                            out_audio = g711.stream
                        else:
                            out_audio = out.add_stream_from_template(a)
                # A packet a decoder would refuse outright stops a whole player at it: such a
                # packet (a torn last sample) is left out, and said, rather than copied.
                length_size = nal_length_size(v.codec_context.name, v.codec_context.extradata)
                kinds = {v.index: "video"}
                shifts["video"] = [float(v.time_base), None]
                wanted = [v]
                if a is not None and out_audio is not None:
                    kinds[a.index] = "audio"
                    shifts["audio"] = [float(a.time_base), None]
                    wanted.append(a)
                for packet in src.demux(*wanted):
                    dts = packet.dts
                    if dts is None:
                        continue
                    kind = kinds[packet.stream_index]
                    framed = length_size is not None and kind == "video"
                    if framed and not whole_nal_units(memoryview(packet), length_size):
                        result.dropped += 1
                        log.warning("segment %s: a video packet at %.3f s is cut short or mis-framed; left out",
                                    seg.key, seg_start + float(dts * v.time_base))
                        continue
                    tbf = shifts[kind][0]
                    pts = packet.pts if packet.pts is not None else dts
                    t_pts = seg_start + pts * tbf
                    if kind == "video" and t_pts >= end_s:
                        break
                    if origin is None:
                        # Before the start: keep only the GOP that contains it.
                        if kind == "video" and packet.is_keyframe:
                            pending = []
                        if pending or (kind == "video" and packet.is_keyframe):
                            pending.append((packet, t_pts, kind))
                        if kind == "video" and t_pts >= start_s - 1e-6 and pending:
                            origin = start_s if exact else pending[0][1]
                            result.origin_s = origin
                            for p, pt, k in pending:
                                if k == "audio" and pt < origin:
                                    continue  # audio pre-roll is not needed
                                emit(p, pt, k)
                            pending = []
                        continue
                    if kind == "audio" and t_pts >= end_s:
                        continue
                    emit(packet, t_pts, kind)
                    if progress is not None and kind == "video":
                        progress(min(1.0, (t_pts - start_s) / total))
        if origin is None:
            raise ValueError("no keyframe in that range")
        if g711 is not None:
            for p in g711.flush():
                out.mux(p)
    finally:
        out.close()
    return result
