"""The simulated camera's media: painted frames, encoded with libx264 (and AAC), paced in real
time, muxed into NUT over a pipe and read back with PyAV's demuxer.

Going through a real demuxer means the engine gets an ordinary PyAV input container with
codec parameters and packets, exactly as from an RTSP camera.
"""

from __future__ import annotations

import fractions
import math
import os
import threading
import time
from typing import Any, Iterator

import av
import numpy as np

from valt_core.cameras import PtzPosition

from .clock import draw_clock, format_clock
from .config import SimCameraConfig
from .ptz import SimulatedPtz

AUDIO_RATE = 48000
AUDIO_FRAME = 1024
BEEP_S = 0.1


def local_utc_offset(epoch_s: float) -> int:
    """The local time zone's offset from UTC at ``epoch_s``, in seconds."""
    return time.localtime(epoch_s).tm_gmtoff


class PatternPainter:
    """Paints frames: scrolling bars, a bouncing box and the wall clock (YUV 4:2:0)."""

    def __init__(self, width: int, height: int, fps: int) -> None:
        self.width, self.height, self.fps = width, height, fps
        xs = np.arange(width * 2)
        # Luma bars twice as wide as the picture, scrolled by slicing (no per-frame maths).
        self.bars = np.tile(((xs // max(8, width // 16)) % 8 * 24 + 40).astype(np.uint8), (height, 1))
        cx, cy = width // 2, height // 2
        self.u = np.full((cy, cx), 128, np.uint8)
        self.v = np.full((cy, cx), 128, np.uint8)
        self.u[:, : cx // 2] = 90
        self.v[: cy // 2, :] = 170
        self.box = max(8, height // 8) & ~1

    def paint(self, index: int, epoch_s: float, view: PtzPosition | None = None) -> av.VideoFrame:
        """The frame number ``index`` showing the wall-clock time ``epoch_s``.

        ``view`` turns the scene as a PTZ head would: pan slides the bars sideways, tilt rolls
        the scene up or down, zoom enlarges the box. The clock stays put, so it can be read.
        """
        w, h = self.width, self.height
        pan_px = int(view.pan * w / 2) if view else 0
        off = (index * 4 + pan_px) % w
        y = self.bars[:, off: off + w].copy()
        # A box bouncing across the picture makes motion obvious to a person and to a codec.
        box = min(h - 2, int(self.box * (1 + 3 * view.zoom))) & ~1 if view else self.box
        span_x, span_y = w - box, h - box
        bx = int(abs((index * 6) % (2 * span_x) - span_x))
        by = int(abs((index * 4) % (2 * span_y) - span_y))
        y[by: by + box, bx: bx + box] = 225
        if view and view.tilt:
            y = np.roll(y, int(view.tilt * h / 2), axis=0)
        draw_clock(y, format_clock(epoch_s, local_utc_offset(epoch_s)))
        planes = np.concatenate([y, self.u.reshape(-1, w), self.v.reshape(-1, w)])
        return av.VideoFrame.from_ndarray(planes, format="yuv420p")


class SimulatedMediaInput:
    """A live simulated stream, read through PyAV's NUT demuxer (a :class:`MediaInput`)."""

    def __init__(self, config: SimCameraConfig, width: int, height: int, ptz: SimulatedPtz | None = None) -> None:
        self.config = config
        self.ptz = ptz
        self.width, self.height = width, height
        self._stop = threading.Event()
        read_fd, write_fd = os.pipe()
        self._writer_file = os.fdopen(write_fd, "wb", buffering=0)
        self._reader_file = os.fdopen(read_fd, "rb", buffering=0)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._produce, name="sim-camera", daemon=True)
        self._thread.start()
        # Default probing (about 1 s, like an RTSP camera): NUT on a pipe drops the first
        # keyframe when the probe is cut short, as it cannot seek back.
        try:
            self._container = av.open(self._reader_file, format="nut")
        except av.error.FFmpegError:
            # The demuxer only saw the pipe end; the encoder's own error says why.
            self._stop.set()
            self._reader_file.close()
            self._thread.join(timeout=5)
            self._raise_cause()
            raise
        self.streams = self._container.streams

    def demux(self, *streams: Any) -> Iterator[av.Packet]:
        """Yield packets as the simulated camera produces them (real-time paced)."""
        try:
            for packet in self._container.demux(*streams):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                yield packet
        except av.error.FFmpegError:
            self._raise_cause()
            raise
        self._raise_cause()

    def _raise_cause(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Stop producing and release the pipe."""
        self._stop.set()
        try:
            self._container.close()
        finally:
            self._reader_file.close()
            self._thread.join(timeout=5)

    def _produce(self) -> None:
        try:
            self._encode_loop()
        except BaseException as err:  # noqa: BLE001 - reported to the reader
            # Once the reader closed the camera, writing fails as expected; any other failure
            # is the reason this camera stopped, and the reader raises it.
            if not (self._stop.is_set() or isinstance(err, BrokenPipeError)):
                self._error = err
        finally:
            try:
                self._writer_file.close()
            except OSError:
                pass

    def _encode_loop(self) -> None:
        cfg = self.config
        out = av.open(self._writer_file, "w", format="nut")
        video = out.add_stream("libx264", rate=cfg.fps)
        video.width, video.height, video.pix_fmt = self.width, self.height, "yuv420p"
        video.bit_rate = cfg.bitrate_kbps * 1000
        video.codec_context.gop_size = cfg.keyframe_interval
        video.codec_context.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            # Fixed GOP like a camera's "I-frame interval" setting, and no B-frames.
            "x264-params": f"keyint={cfg.keyframe_interval}:min-keyint={cfg.keyframe_interval}:scenecut=0:bframes=0",
        }
        audio = None
        if cfg.audio:
            audio = out.add_stream("aac", rate=AUDIO_RATE)
            audio.layout = "mono"
            audio.bit_rate = 64000
        painter = PatternPainter(self.width, self.height, cfg.fps)
        frame_tb = fractions.Fraction(1, cfg.fps)
        start_wall = time.time()
        start_mono = time.monotonic()
        index = 0
        samples = 0
        try:
            while not self._stop.is_set():
                due = start_mono + index / cfg.fps
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -1.0:
                    # Fell behind (machine busy): skip frames like a real camera would.
                    index = int((time.monotonic() - start_mono) * cfg.fps)
                view = self.ptz.position() if self.ptz is not None else None
                frame = painter.paint(index, start_wall + index / cfg.fps, view)
                frame.pts, frame.time_base = index, frame_tb
                out.mux(video.encode(frame))
                if audio is not None:
                    end = (index + 1) * AUDIO_RATE // cfg.fps
                    while samples < end:
                        out.mux(audio.encode(self._tone(samples, start_wall)))
                        samples += AUDIO_FRAME
                index += 1
        finally:
            try:
                out.close()
            except (OSError, ValueError, av.error.FFmpegError):
                pass

    def _tone(self, first_sample: int, start_wall: float) -> av.AudioFrame:
        n = np.arange(first_sample, first_sample + AUDIO_FRAME)
        t = n / AUDIO_RATE
        wall = start_wall + t
        on = (wall - np.floor(wall)) < BEEP_S
        pcm = (0.3 * np.sin(2 * math.pi * self.config.tone_hz * t) * on).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = first_sample
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


def jpeg_snapshot(width: int, height: int, fps: int, view: PtzPosition | None = None) -> bytes:
    """A JPEG of what the simulated camera shows now (turned by ``view``)."""
    painter = PatternPainter(width, height, fps)
    now = time.time()
    frame = painter.paint(int(now * fps), now, view)
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuvj420p"
    enc.time_base = fractions.Fraction(1, fps)
    packets = enc.encode(frame.reformat(format="yuvj420p")) + enc.encode(None)
    return b"".join(bytes(p) for p in packets)
