"""Cutting an unfinished segment object to the whole fragments it holds (after a crash or a failed write)."""

from __future__ import annotations

import asyncio
import hashlib
import io
from dataclasses import dataclass

from ..errors import NotFound
from ..storage.base import StorageBackend
from .fmp4 import playable_length


@dataclass(frozen=True)
class Salvaged:
    """What a salvaged segment object holds now."""

    bytes: int
    sha256: str
    duration_s: float


async def salvage_object(storage: StorageBackend, key: str) -> Salvaged | None:
    """Make ``key`` its whole fragments; ``None`` (and the object deleted) when it has none.

    The object is its unfinished write or, when that was finished but never indexed, the object
    itself. A fragment torn by a crash is dropped by rewriting the object with whole ones only.
    """
    await storage.salvage(key)
    try:
        data = b"".join([c async for c in storage.read(key)])
    except NotFound:
        data = b""
    good, fragments = playable_length(data)
    if good == 0 or fragments == 0:
        await storage.delete(key)
        return None
    if good < len(data):
        data = data[:good]
        writer = await storage.open_writer(key)
        try:
            await writer.write(data)
            await writer.close()
        except BaseException:
            # Drop the copy, not the object: it keeps every byte it had (the next recovery
            # tries again) instead of a failed rewrite replacing it later.
            await writer.abort()
            raise
    duration = await asyncio.to_thread(media_duration, data)
    return Salvaged(len(data), hashlib.sha256(data).hexdigest(), duration)


def media_duration(data: bytes) -> float:
    """Seconds of video in an MP4 held in memory (first to last frame, plus one frame)."""
    import av

    with av.open(io.BytesIO(data)) as f:
        video = f.streams.video[0]
        first = last = None
        step = 0.0
        for packet in f.demux(video):
            if packet.dts is None:
                continue
            t = float(packet.dts * packet.time_base)
            first = t if first is None else first
            last = t
            step = float(packet.duration * packet.time_base) if packet.duration else step
        return 0.0 if first is None else (last - first + step)
