"""The ``hls`` transport: a live HLS playlist (version 7, fMP4 segments) per camera.

``/live/{camera_id}/hls/index.m3u8?token=...`` lists the last few segments (one GOP each); the
init segment and the segments are fetched with the same token. The segments are the very
fMP4 fragments the ``wss`` viewers get, grouped per GOP, so HLS costs no extra muxing.
"""

from __future__ import annotations

import asyncio
import math
import time
from urllib.parse import quote

from quart import Blueprint, Response, request

from valt_core.errors import NotFound, ValtError
from valt_core.transports import Transport
from valt_core.transports.base import LiveHost

from .config import HlsConfig
from .segmenter import HlsSegmenter

FIRST_SEGMENT_WAIT_S = 10.0


class HlsTransport(Transport):
    """Live HLS from the shared fMP4 stream."""

    name = "hls"
    Config = HlsConfig
    config: HlsConfig

    def __init__(self, config: HlsConfig) -> None:
        super().__init__(config)
        self.segmenters: dict[int, HlsSegmenter] = {}
        self._lock = asyncio.Lock()
        self._reaper: asyncio.Task | None = None

    def viewer_url(self, camera_id: int, token: str) -> str:
        """``/live/{camera_id}/hls/index.m3u8?token=...``"""
        return f"/live/{camera_id}/hls/index.m3u8?token={quote(token, safe='')}"

    async def _segmenter(self, host: LiveHost, camera_id: int) -> HlsSegmenter:
        async with self._lock:
            seg = self.segmenters.get(camera_id)
            if seg is None:
                seg = HlsSegmenter(await host.live_stream(camera_id), self.config.playlist_segments)
                self.segmenters[camera_id] = seg
            if self._reaper is None or self._reaper.done():
                self._reaper = asyncio.create_task(self._reap())
            seg.touch()
            return seg

    async def _reap(self) -> None:
        # A playlist nobody fetched for a while stops, so the camera's live stream can too.
        while self.segmenters:
            await asyncio.sleep(2)
            for camera_id, seg in list(self.segmenters.items()):
                if time.monotonic() - seg.last_request > self.config.idle_s:
                    self.segmenters.pop(camera_id, None)
                    await seg.close()

    def blueprint(self, host: LiveHost) -> Blueprint:
        """The playlist, init and segment routes."""
        bp = Blueprint("transport_hls", __name__)

        def error(err: ValtError) -> Response:
            return Response(err.message + "\n", status=err.http_status, mimetype="text/plain")

        async def checked(camera_id: int) -> tuple[HlsSegmenter, str]:
            token = request.args.get("token", "")
            # Every request is checked: a signed-out session or a disabled camera stops at once.
            await host.authorize(token, camera_id, "hls", request.remote_addr or "")
            return await self._segmenter(host, camera_id), token

        @bp.get("/live/<int:camera_id>/hls/index.m3u8")
        async def playlist(camera_id: int):
            """The live playlist (waits for the first segment of a fresh stream)."""
            try:
                seg, token = await checked(camera_id)
            except ValtError as err:
                return error(err)
            deadline = time.monotonic() + FIRST_SEGMENT_WAIT_S
            while len(seg.segments) < 2 and time.monotonic() < deadline:
                try:
                    await asyncio.wait_for(seg.changed.wait(), timeout=max(0.1, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    break
            if not seg.segments or seg.init is None:
                return error(NotFound("the camera sends no video yet; try again"))
            q = f"?token={quote(token, safe='')}"
            segments = list(seg.segments)
            lines = [
                "#EXTM3U", "#EXT-X-VERSION:7",
                f"#EXT-X-TARGETDURATION:{math.ceil(max(s.duration_s for s in segments))}",
                f"#EXT-X-MEDIA-SEQUENCE:{segments[0].sequence}",
                f'#EXT-X-MAP:URI="init.mp4{q}"',
            ]
            for s in segments:
                lines += [f"#EXTINF:{s.duration_s:.3f},", f"seg{s.sequence}.m4s{q}"]
            resp = Response("\n".join(lines) + "\n", mimetype="application/vnd.apple.mpegurl")
            resp.headers["Cache-Control"] = "no-store"
            return resp

        @bp.get("/live/<int:camera_id>/hls/init.mp4")
        async def init_segment(camera_id: int):
            """The fMP4 init segment."""
            try:
                seg, _ = await checked(camera_id)
            except ValtError as err:
                return error(err)
            if seg.init is None:
                return error(NotFound("no stream yet"))
            return Response(seg.init, mimetype="video/mp4", headers={"Cache-Control": "no-store"})

        @bp.get("/live/<int:camera_id>/hls/seg<int:sequence>.m4s")
        async def media_segment(camera_id: int, sequence: int):
            """One segment (a GOP of fMP4 fragments)."""
            try:
                seg, _ = await checked(camera_id)
            except ValtError as err:
                return error(err)
            for s in seg.segments:
                if s.sequence == sequence:
                    return Response(s.data, mimetype="video/iso.segment", headers={"Cache-Control": "no-store"})
            return error(NotFound(f"segment {sequence} is no longer (or not yet) available"))

        return bp
