"""Cuts a camera's live fMP4 fragments into HLS segments, one per GOP."""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HlsSegment:
    """One finished segment: whole GOPs of fMP4 fragments."""

    sequence: int
    duration_s: float
    data: bytes


class HlsSegmenter:
    """Reads a live stream as one more viewer and keeps the last few segments."""

    def __init__(self, stream: Any, keep: int) -> None:
        self.stream = stream
        self.keep = keep
        self.init: bytes | None = None
        self.segments: collections.deque[HlsSegment] = collections.deque(maxlen=keep)
        self.sequence = 0
        self.last_request = time.monotonic()
        self.changed = asyncio.Event()
        self._viewer = stream.add_viewer(maxsize=2000)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        parts: list[bytes] = []
        started: float | None = None
        while True:
            kind, payload, _arrival, keyframe = await self._viewer.next()
            if kind == "init":
                # New stream parameters: what was cut so far no longer fits the new init.
                self.init = payload[1]
                self.segments.clear()
                parts, started = [], None
                continue
            now = time.monotonic()
            if keyframe and parts and started is not None:
                self.sequence += 1
                self.segments.append(HlsSegment(self.sequence, now - started, b"".join(parts)))
                self.changed.set()
                self.changed = asyncio.Event()
                parts = []
            if keyframe or parts:
                if not parts:
                    started = now
                parts.append(payload)

    def touch(self) -> None:
        """A player asked for something: keep segmenting."""
        self.last_request = time.monotonic()

    async def close(self) -> None:
        """Stop reading the stream."""
        self._task.cancel()
        self.stream.remove_viewer(self._viewer)
        await asyncio.gather(self._task, return_exceptions=True)

