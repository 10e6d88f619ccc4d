"""Writing one segment: stream-copied packets into fragmented MP4, through a storage writer.

Fragments are about one second long and are flushed as the muxer finishes each, so a crash
loses at most the fragment being written. The bytes are hashed as they go out.
"""

from __future__ import annotations

import hashlib
from typing import Any

import av

from ..storage.base import StorageWriter
from .pipeline import Connected, MediaPacket

# The mp4 muxer refuses G.711; QuickTime (mov) takes it and fragments the same way.
MOV_ONLY_AUDIO = {"pcm_mulaw", "pcm_alaw"}


def container_for(connected: Connected) -> tuple[str, str]:
    """(muxer, file extension) for a connection's streams."""
    if connected.audio is not None and connected.audio.codec_context.name in MOV_ONLY_AUDIO:
        return "mov", "mov"
    return "mp4", "mp4"


class _Sink:
    """A write-only file object collecting what the muxer writes, between awaits."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


class SegmentWriter:
    """One segment file being written; times are seconds on the pipeline timeline."""

    def __init__(self, writer: StorageWriter, connected: Connected, first: MediaPacket, fragment_s: float) -> None:
        self.writer = writer
        self.generation = connected.generation
        self.start_s = first.dts_s
        self.end_s = first.dts_s
        self.bytes = 0
        self.packets = 0
        self.sha256 = hashlib.sha256()
        self._sink = _Sink()
        fmt, _ext = container_for(connected)
        self._out = av.open(self._sink, "w", format=fmt, options={
            "movflags": "frag_keyframe+empty_moov+default_base_moof",
            "frag_duration": str(int(fragment_s * 1_000_000)),
        })
        self._streams: dict[str, Any] = {"video": self._out.add_stream_from_template(connected.video)}
        if connected.audio is not None:
            self._streams["audio"] = self._out.add_stream_from_template(connected.audio)
        self._base: dict[str, int] = {}

    async def write(self, mp: MediaPacket) -> None:
        """Mux one packet; whatever whole fragments the muxer produced go to storage."""
        out_stream = self._streams.get(mp.kind)
        if out_stream is None or mp.dts_s < self.start_s:
            return  # e.g. audio from before the segment's first keyframe
        packet = mp.packet
        tb = packet.time_base
        base = self._base.get(mp.kind)
        if base is None:
            base = self._base[mp.kind] = round(self.start_s / tb)
        # The packet object is shared with other consumers: mux it with segment-relative
        # times, then put back what the muxer changed (times, time base, stream).
        saved = packet.pts, packet.dts, tb, packet.stream
        packet.dts -= base
        packet.pts -= base
        packet.stream = out_stream
        try:
            self._out.mux(packet)
        finally:
            packet.pts, packet.dts, packet.time_base, packet.stream = saved
        self.packets += 1
        duration = float(packet.duration * tb) if packet.duration else 0.0
        self.end_s = max(self.end_s, mp.dts_s + duration)
        await self._drain(flush=False)

    async def _drain(self, flush: bool) -> None:
        data = self._sink.take()
        if data:
            self.sha256.update(data)
            self.bytes += len(data)
            await self.writer.write(data)
            # A finished fragment: make it durable so a crash keeps it.
            await self.writer.flush()
        elif flush:
            await self.writer.flush()

    async def close(self) -> int:
        """Finish the file (last fragment and index) and close the storage object."""
        self._out.close()
        await self._drain(flush=False)
        return await self.writer.close()

    async def abort(self) -> None:
        """Drop the segment (nothing useful was written)."""
        try:
            self._out.close()
        except Exception:  # noqa: BLE001 - the muxer may have no header yet
            pass
        await self.writer.abort()

    @property
    def duration_s(self) -> float:
        """Seconds covered so far."""
        return max(0.0, self.end_s - self.start_s)
