"""Writing one segment: stream-copied packets into fragmented MP4, in the ingest thread.

The muxer produces whole fragments of about a second; each is handed on as bytes (to be
written and flushed by the storage backend) as soon as the muxer finishes it, so a crash
loses at most the fragment being written. The bytes are hashed as they go.
"""

from __future__ import annotations

import hashlib
from typing import Any

import av

from .codecs import G711, mux_shifted
from .pipeline import Connected, MediaPacket

# The mp4 muxer refuses G.711; QuickTime (mov) takes it and fragments the same way.
MOV_ONLY_AUDIO = G711


def container_for(connected: Connected) -> tuple[str, str]:
    """(muxer, file extension) for a connection's streams."""
    if connected.audio is not None and connected.audio.codec_context.name in MOV_ONLY_AUDIO:
        return "mov", "mov"
    return "mp4", "mp4"


class ByteSink:
    """A write-only file object collecting what a muxer writes, taken out in pieces."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        """Everything written since the last call."""
        if not self.chunks:
            return b""
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


class SegmentWriter:
    """One segment file being muxed; times are seconds on the pipeline timeline."""

    def __init__(self, connected: Connected, first: MediaPacket, fragment_s: float) -> None:
        self.generation = connected.generation
        self.start_s = first.dts_s
        self.end_s = first.dts_s
        self.bytes = 0
        self.sha256 = hashlib.sha256()
        self._sink = ByteSink()
        fmt, _ext = container_for(connected)
        self._out = av.open(self._sink, "w", format=fmt, options={
            "movflags": "frag_keyframe+empty_moov+default_base_moof",
            "frag_duration": str(int(fragment_s * 1_000_000)),
        })
        self._streams: dict[str, Any] = {"video": self._out.add_stream_from_template(connected.video)}
        if connected.audio is not None:
            self._streams["audio"] = self._out.add_stream_from_template(connected.audio)
        # Per kind: (shift to segment time, time base as a float, time base), found once.
        self._base: dict[str, tuple[int, float, Any]] = {}

    def write(self, mp: MediaPacket) -> bytes:
        """Mux one packet; returns the bytes of any fragment the muxer finished."""
        out_stream = self._streams.get(mp.kind)
        if out_stream is None or mp.dts_s < self.start_s:
            return b""  # e.g. audio from before the segment's first keyframe
        packet = mp.packet
        base = self._base.get(mp.kind)
        if base is None:
            tb = packet.time_base
            base = self._base[mp.kind] = (round(self.start_s / tb), float(tb), tb)
        shift, tbf, tb = base
        # Segment-relative times for this muxer; the shared packet is put back for the others.
        mux_shifted(self._out, packet, out_stream, shift, time_base=tb)
        end = mp.dts_s + (packet.duration or 0) * tbf
        if end > self.end_s:
            self.end_s = end
        # Most packets complete no fragment: nothing to take.
        return self._take() if self._sink.chunks else b""

    def _take(self) -> bytes:
        data = self._sink.take()
        if data:
            self.sha256.update(data)
            self.bytes += len(data)
        return data

    def close(self) -> bytes:
        """Finish the file (last fragment and index); returns the remaining bytes."""
        self._out.close()
        return self._take()

    def abort(self) -> None:
        """Drop the muxer (nothing more will be written)."""
        try:
            self._out.close()
        except Exception:  # noqa: BLE001 - the muxer may have no header yet
            pass

    @property
    def duration_s(self) -> float:
        """Seconds covered so far."""
        return max(0.0, self.end_s - self.start_s)
