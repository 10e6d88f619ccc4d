"""Codec facts, the one audio conversion Valt does, and muxing a shared packet, in one place.

Valt stream-copies everything it can. G.711 (PCMU/PCMA), common on IP cameras, is the exception:
the mp4 muxer refuses it (recordings of such cameras are QuickTime files) and browsers do not
play it, so playback files, clips and live view convert it to AAC with :class:`G711ToAac`.

A camera's packets are shared by every consumer (the recorder's segments, the live fragmenter),
each of which muxes them on a time line of its own: :func:`mux_shifted` retimes a packet for one
muxer and puts it back as it was for the next.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av

#: FFmpeg's names of the G.711 codecs.
G711 = frozenset({"pcm_mulaw", "pcm_alaw"})


def mux_shifted(out: Any, packet: Any, stream: Any, shift: int, duration: int | None = None,
                time_base: Any = None) -> None:
    """Mux ``packet`` into ``out`` as ``stream``, ``shift`` (in its time base) earlier, then restore it.

    The packet object is shared with other consumers, so what muxing changes (its times, time
    base, duration and stream) is put back afterwards. ``duration``, when given, is set on a packet that has
    none (RTSP gives none; a muxer timing one-frame fragments needs one) and put back too.
    ``time_base``, when given, is the packet's own time base as the caller already knows it:
    reading ``packet.time_base`` makes a new ``Fraction``, the dearest part of this call.
    """
    saved = packet.pts, packet.dts, packet.time_base if time_base is None else time_base, packet.stream
    had = packet.duration
    packet.pts -= shift
    packet.dts -= shift
    if duration is not None and not had:
        packet.duration = duration
    packet.stream = stream
    try:
        out.mux(packet)
    finally:
        packet.pts, packet.dts, packet.time_base, packet.stream = saved
        # Always: the muxer rescales the duration to its stream's time base, which differs from
        # the packet's for some inputs (FLV's milliseconds against MP4's 1/12800, say).
        packet.duration = had


class G711ToAac:
    """Decodes G.711 packets and encodes them as mono AAC into a new stream of ``out``.

    The AAC timeline counts samples from the first packet's time (``at_s`` of the first call
    to :meth:`encode`, 0 when not given), so the audio stays where the G.711 was.
    """

    def __init__(self, out: Any, template: Any) -> None:
        rate = template.codec_context.sample_rate
        self.rate = rate
        self.stream = out.add_stream("aac", rate=rate)
        self.stream.layout = "mono"
        self.decoder = av.CodecContext.create(template.codec_context.name, "r")
        self.decoder.sample_rate = rate
        self.decoder.layout = "mono"
        self.resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        self.next_pts: int | None = None

    def encode(self, packet: Any, at_s: float = 0.0) -> list[Any]:
        """The AAC packets that ``packet`` completes (mux them into ``out``)."""
        result = []
        for frame in self.decoder.decode(packet):
            for f in self.resampler.resample(frame):
                if self.next_pts is None:
                    self.next_pts = max(0, round(at_s * self.rate))
                f.pts = self.next_pts
                f.time_base = Fraction(1, self.rate)
                self.next_pts += f.samples
                result.extend(self.stream.encode(f))
        return result

    def flush(self) -> list[Any]:
        """The AAC packets still held by the encoder (at the end of a file)."""
        return list(self.stream.encode(None))


def nal_length_size(codec: str, extradata: bytes | None) -> int | None:
    """Bytes of each NAL unit's length prefix in H.264/H.265 packets stored length-prefixed
    (MP4's ``avcC``/``hvcC``), or ``None`` when packets are not stored that way (Annex B, or
    another codec)."""
    if not extradata:
        return None
    if codec == "h264" and len(extradata) >= 5 and extradata[0] == 1:
        return (extradata[4] & 3) + 1
    if codec == "hevc" and len(extradata) >= 22 and extradata[0] == 1:
        return (extradata[21] & 3) + 1
    return None


def whole_nal_units(data: bytes | memoryview, length_size: int) -> bool:
    """True when ``data`` is a run of length-prefixed NAL units that ends exactly at its end.

    A packet cut short (the torn last sample of a fragment) or one in another framing fails:
    decoders refuse such a packet outright ("Invalid NAL unit size").
    """
    at, end = 0, len(data)
    while at < end:
        if at + length_size > end:
            return False
        size = int.from_bytes(data[at:at + length_size], "big")
        if size == 0:
            return False
        at += length_size + size
    return at == end
