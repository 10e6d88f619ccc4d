"""Live fMP4 for viewers: one fragmenter per camera, the same bytes for every viewer.

The fragmenter muxes the camera's packets into fragmented MP4 with one fragment per frame, so
a viewer is never more than a frame or two behind the camera. It keeps the fragments since the
last video keyframe, so a new viewer starts at once. A viewer that cannot keep up loses whole
GOPs (its queue is emptied and restarts at the next keyframe); the others never wait for it.
Audio the browser cannot play (G.711) is converted to AAC, and H.265 video, which Chromium
cannot decode, is converted to H.264 - only while someone watches.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
import struct
from typing import Any

import av

from ..transports.stream import LiveStream
from .codecs import G711, G711ToAac, mux_shifted
from .fmp4 import iter_boxes
from .pipeline import CameraPipeline, Connected, MediaPacket, Subscription
from .segments import ByteSink

log = logging.getLogger(__name__)

BROWSER_VIDEO = {"h264"}
IDLE_STOP_S = 10.0


def avc_codec_string(extradata: bytes | None) -> str:
    """RFC 6381 ``avc1.PPCCLL`` from H.264 extradata (avcC or Annex B SPS)."""
    data = extradata or b""
    if len(data) >= 4 and data[0] == 1:  # avcC
        return f"avc1.{data[1]:02x}{data[2]:02x}{data[3]:02x}"
    i = data.find(b"\x00\x00\x01")
    while i != -1 and i + 6 < len(data):
        nal = data[i + 3]
        if nal & 0x1F == 7:  # SPS: profile_idc, constraint flags, level_idc
            return f"avc1.{data[i + 4]:02x}{data[i + 5]:02x}{data[i + 6]:02x}"
        i = data.find(b"\x00\x00\x01", i + 3)
    return "avc1.42e01f"  # a safe default: Constrained Baseline 3.1


def audio_codec_string(name: str) -> str | None:
    """RFC 6381 codec string of an audio codec a browser plays from MP4, else ``None``."""
    return {"aac": "mp4a.40.2", "opus": "opus", "mp3": "mp4a.40.34"}.get(name)


def samples_by_track(moof: memoryview) -> list[tuple[int, int]]:
    """``[(track_ID, sample count), ...]`` of the ``traf`` boxes in a ``moof`` box's payload."""
    found = []
    for kind, offset, size in iter_boxes(moof):
        if kind != b"traf":
            continue
        track, count = 0, 0
        traf = moof[offset + 8: offset + size]
        for k2, o2, _s2 in iter_boxes(traf):
            if k2 == b"tfhd":  # size, type, version+flags, track_ID
                track = struct.unpack_from(">I", traf, o2 + 12)[0]
            elif k2 == b"trun":  # size, type, version+flags, sample_count
                count += struct.unpack_from(">I", traf, o2 + 12)[0]
        found.append((track, count))
    return found


class LiveFragmenter(LiveStream):
    """The live fMP4 stream of one camera of this media server, fed by its pipeline."""

    def __init__(self, pipeline: CameraPipeline, on_idle: Any = None) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.profile = pipeline.profile
        self.on_idle = on_idle
        self._sub: Subscription | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Subscribe to the pipeline (from its GOP cache) and start fragmenting."""
        self._sub = self.pipeline.subscribe(maxsize=600, from_gop=True)
        self._task = asyncio.create_task(self._run(), name=f"live-{self.pipeline.name}")

    async def stop(self) -> None:
        """Stop fragmenting; every viewer is closed."""
        if self._sub is not None:
            self.pipeline.unsubscribe(self._sub)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.end()

    async def _run(self) -> None:
        muxer: _Muxer | None = None
        assert self._sub is not None
        try:
            while True:
                event = await self._sub.get()
                if isinstance(event, Connected):
                    if muxer is not None:
                        muxer.close()
                    muxer = _Muxer(event)
                    self.transcoding = muxer.transcoding
                    self.gop = []
                    continue
                if muxer is None:
                    continue
                for data, keyframe in muxer.feed(event):
                    if muxer.init is not None and self.init is not muxer.init:
                        self.offer_init(muxer.init)
                    self.offer_media(data, keyframe, muxer.newest_arrival)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("live fragmenter of %s failed", self.pipeline.name)
        finally:
            if muxer is not None:
                muxer.close()


class _Muxer:
    """fMP4 muxing of one connection, with the conversions browsers need."""

    def __init__(self, connected: Connected) -> None:
        self.sink = ByteSink()
        self.newest_arrival = 0.0
        v, a = connected.video, connected.audio
        rate = float(v.average_rate or v.guessed_rate or 25)
        # One frame per fragment keeps latency at a frame. (frag_every_frame would too, but it
        # writes wrong start times for audio fragments, and browsers then drop frames.)
        self.out = av.open(self.sink, "w", format="mp4", options={
            "movflags": "frag_keyframe+empty_moov+default_base_moof",
            "frag_duration": str(int(1_000_000 / rate)),
        })
        self.transcoding: list[str] = []
        self.video_encoder: Any = None
        if v.codec_context.name in BROWSER_VIDEO:
            self.video = self.out.add_stream_from_template(v)
            video_codec = avc_codec_string(v.codec_context.extradata)
        else:
            # e.g. H.265: this browser cannot decode it, so convert while someone watches.
            self.transcoding.append(f"video {v.codec_context.name} -> h264")
            self.video_decoder = av.CodecContext.create(v.codec_context.name, "r")
            if v.codec_context.extradata:
                self.video_decoder.extradata = v.codec_context.extradata
            rate = v.average_rate or v.guessed_rate or 25
            self.video = self.out.add_stream("libx264", rate=rate)
            self.video.width, self.video.height = v.codec_context.width, v.codec_context.height
            self.video.pix_fmt = "yuv420p"
            self.video.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline"}
            self.video.codec_context.gop_size = int(float(rate) * 2)
            self.video_encoder = self.video
            video_codec = "avc1.42c01f"
        self.audio = None
        self.audio_convert: G711ToAac | None = None
        codecs = [video_codec]
        if a is not None:
            name = a.codec_context.name
            if audio_codec_string(name):
                self.audio = self.out.add_stream_from_template(a)
                codecs.append(audio_codec_string(name))
            elif name in G711:
                self.transcoding.append(f"audio {name} -> aac")
                self.audio_convert = G711ToAac(self.out, a)
                self.audio = self.audio_convert.stream
                codecs.append("mp4a.40.2")
        self.mime = f'video/mp4; codecs="{",".join(codecs)}"'
        self.init: tuple[str, bytes] | None = None
        self._init_bytes = b""
        self._video_track = 1
        self._pending_keyframes: collections.deque = collections.deque()
        self._base: dict[str, int] = {}
        self._base_s: float | None = None
        # Nominal packet durations in each input stream's time base.
        self._duration = {"video": max(1, round(1 / (rate * float(v.time_base))))}
        if a is not None and a.codec_context.sample_rate:
            frame = a.codec_context.frame_size or 1024
            self._duration["audio"] = max(1, round(frame / a.codec_context.sample_rate / float(a.time_base)))

    def feed(self, mp: MediaPacket) -> list[tuple[bytes, bool]]:
        """Mux one packet; the fragments it completed, each with "starts a GOP"."""
        self.newest_arrival = mp.arrived
        if mp.kind == "video":
            self._video(mp)
        elif self.audio is not None and self._base_s is not None:
            self._audio(mp)
        return self._split(self.sink.take())

    def _rebased(self, mp: MediaPacket, stream: Any) -> None:
        # One origin for every stream keeps audio and video in sync; the packet object is
        # shared with the recorder, so its times are put back after muxing.
        if self._base_s is None:
            self._base_s = mp.dts_s
        if mp.dts_s < self._base_s:
            return
        packet = mp.packet
        shift = self._base.get(mp.kind)
        if shift is None:
            shift = self._base[mp.kind] = round(self._base_s / packet.time_base)
        # RTSP gives no durations; the muxer needs them to time each one-frame fragment.
        mux_shifted(self.out, packet, stream, shift, self._duration.get(mp.kind) or 0)

    def _video(self, mp: MediaPacket) -> None:
        if self.video_encoder is None:
            self._pending_keyframes.append(mp.keyframe)
            self._rebased(mp, self.video)
            return
        if self._base_s is None:
            self._base_s = mp.dts_s
        for frame in self.video_decoder.decode(mp.packet):
            frame.pts = int((mp.pts_s - self._base_s) * 90000)
            frame.time_base = fractions.Fraction(1, 90000)
            frame.pict_type = av.video.frame.PictureType.NONE
            for packet in self.video_encoder.encode(frame.reformat(format="yuv420p")):
                self._pending_keyframes.append(bool(packet.is_keyframe))
                self.out.mux(packet)

    def _audio(self, mp: MediaPacket) -> None:
        if self.audio_convert is None:
            self._rebased(mp, self.audio)
            return
        for packet in self.audio_convert.encode(mp.packet):
            self.out.mux(packet)

    def _split(self, data: bytes) -> list[tuple[bytes, bool]]:
        if not data:
            return []
        view = memoryview(data)
        out: list[tuple[bytes, bool]] = []
        start = None
        for kind, offset, size in iter_boxes(view):
            if self.init is None:
                if kind == b"moof":
                    self.init = (self.mime, self._init_bytes + bytes(view[:offset]))
                else:
                    continue
            if kind == b"moof":
                start = offset
                tracks = samples_by_track(view[offset + 8: offset + size])
            elif kind == b"mdat" and start is not None:
                # A fragment starts a GOP when its first video sample is a keyframe.
                keyframe = False
                for track, count in tracks:
                    if track != self._video_track:
                        continue
                    for i in range(count):
                        flag = self._pending_keyframes.popleft() if self._pending_keyframes else False
                        keyframe = keyframe or (i == 0 and flag)
                out.append((bytes(view[start: offset + size]), keyframe))
                start = None
        if self.init is None:
            self._init_bytes += data
        return out

    def close(self) -> None:
        try:
            self.out.close()
        except Exception:  # noqa: BLE001
            pass
