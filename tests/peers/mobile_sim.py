"""A mobile device simulator: publishes RTMP or RTMPS the way a phone app does, and misbehaves on cue.

- :class:`FfmpegPublisher`: the ffmpeg CLI publishing a test picture (H.264 or H.265) and a tone
  (AAC) in real time; it can be frozen (SIGSTOP), as a phone whose app hangs, and thawed.
- :func:`pyav_publish`: the same through PyAV (``format="flv"``), in a thread.
- :class:`SourceProxy`: a TCP relay whose outgoing connections leave from a chosen loopback address
  (127.0.0.2: "the phone moved from Wi-Fi to LTE"), and whose :meth:`SourceProxy.drop` cuts every
  connection at once, as a lost network does. The ffmpeg and PyAV clients cannot pick their
  source address, so they publish through it.

FFmpeg's ``timeout`` option must never be given to an RTMP client (there it means: listen); the
PyAV publisher uses ``rw_timeout``.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import os
import signal
import subprocess
import threading
import time

import numpy as np


class FfmpegPublisher:
    """An ffmpeg CLI process publishing ``seconds`` of a test picture and a tone to ``url``."""

    def __init__(self, url: str, seconds: float = 30.0, codec: str = "h264", size: str = "640x360",
                 fps: int = 25) -> None:
        video = (["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"] if codec == "h264"
                 else ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"])
        self.args = [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
            "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
            "-t", f"{seconds:g}", *video, "-g", str(fps * 2), "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "64k", "-f", "flv", url,
        ]
        self.process: subprocess.Popen | None = None

    def start(self) -> "FfmpegPublisher":
        """Start publishing (returns at once)."""
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the end; its exit status (non-zero when the server refused or dropped it)."""
        assert self.process is not None
        return self.process.wait(timeout)

    def stderr(self) -> str:
        """What ffmpeg said (after it ended)."""
        assert self.process is not None and self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")

    def freeze(self) -> None:
        """Stop the process dead (SIGSTOP): its connection stays open and silent."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def stop(self) -> None:
        """End the process, frozen or not."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def pyav_publish(url: str, seconds: float, fps: int = 25, size: tuple[int, int] = (640, 360),
                 codec: str = "libx264", ca_file: str | None = None) -> threading.Thread:
    """Publish ``seconds`` of moving H.264 (or ``libx265``) + AAC to ``url`` with PyAV, in a thread.

    For ``rtmps://``, ``ca_file`` is the certificate to trust (current FFmpeg checks the server's
    certificate, as a phone does). The thread's ``error`` attribute holds what failed (``None``
    when it published to the end).
    """
    import av

    options = {"rw_timeout": "5000000"}
    if ca_file is not None:
        options.update({"ca_file": ca_file, "tls_verify": "1"})

    def run() -> None:
        try:
            out = av.open(url, "w", format="flv", options=options)
            try:
                _encode(out, seconds, fps, size, codec)
            finally:
                out.close()
        except Exception as err:  # noqa: BLE001 - reported to the test
            thread.error = err  # type: ignore[attr-defined]

    thread = threading.Thread(target=run, name="pyav-publisher", daemon=True)
    thread.error = None  # type: ignore[attr-defined]
    thread.start()
    return thread


def _encode(out, seconds: float, fps: int, size: tuple[int, int], codec: str) -> None:
    import av

    w, h = size
    video = out.add_stream(codec, rate=fps)
    video.width, video.height, video.pix_fmt = w, h, "yuv420p"
    video.codec_context.gop_size = fps * 2
    video.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency"} if codec == "libx264" else \
        {"preset": "ultrafast", "x265-params": "log-level=error"}
    audio = out.add_stream("aac", rate=48000)
    audio.layout = "mono"
    samples = 0
    start = time.monotonic()
    for i in range(int(seconds * fps)):
        delay = start + i / fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        y = np.full((h, w), 16 + (i * 7) % 200, np.uint8)
        y[:, (i * 8) % w: (i * 8) % w + 16] = 235
        frame = av.VideoFrame.from_ndarray(np.concatenate([y, np.full((h // 2, w), 128, np.uint8)]),
                                           format="yuv420p")
        frame.pts, frame.time_base = i, fractions.Fraction(1, fps)
        out.mux(video.encode(frame))
        while samples < (i + 1) * 48000 // fps:
            t = (np.arange(samples, samples + 1024) / 48000).astype(np.float32)
            tone = av.AudioFrame.from_ndarray((0.2 * np.sin(2 * math.pi * 1000 * t)).reshape(1, -1),
                                              format="fltp", layout="mono")
            tone.sample_rate, tone.pts, tone.time_base = 48000, samples, fractions.Fraction(1, 48000)
            out.mux(audio.encode(tone))
            samples += 1024
    out.mux(video.encode(None))
    out.mux(audio.encode(None))


class SourceProxy:
    """Relays TCP from a local port to ``target``, dialling out from ``source`` (e.g. 127.0.0.2)."""

    def __init__(self, target: tuple[str, int], source: str = "127.0.0.1") -> None:
        self.target = target
        self.source = source
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> "SourceProxy":
        """Listen on 127.0.0.1 (an ephemeral port, :attr:`port`)."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str, scheme: str = "rtmp") -> str:
        """A publish URL through this proxy."""
        return f"{scheme}://127.0.0.1:{self.port}/{path.lstrip('/')}"

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target, local_addr=(self.source, 0))
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        tasks = {asyncio.create_task(pipe(reader, up_writer)), asyncio.create_task(pipe(up_reader, writer))}
        self._tasks |= tasks
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks -= tasks
        self._writers -= {writer, up_writer}

    def drop(self) -> None:
        """Cut every relayed connection at once, both ways (the network went away)."""
        for w in list(self._writers):
            w.transport.abort()

    async def close(self) -> None:
        """Stop listening and cut what is relayed."""
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
