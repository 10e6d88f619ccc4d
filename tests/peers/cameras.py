"""Start and stop the GStreamer RTSP camera (tests/peers/rtsp_camera.py) from tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from .process import stop_process

SCRIPT = Path(__file__).with_name("rtsp_camera.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's: the only one with the GStreamer bindings


class RtspCamera:
    """A running RTSP camera process; ``url`` is where it serves."""

    def __init__(self, *args: str, port: int = 0) -> None:
        self.args = list(args)
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.start()

    def start(self) -> None:
        """Start (or restart, on the same port) the camera and wait until it listens."""
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(SCRIPT), "--port", str(self.port), *self.args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 20
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("READY "):
                self.url = line.split()[1]
                self.port = int(self.url.split(":")[2].split("/")[0])
                return
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError(f"the RTSP camera did not start (is GStreamer installed? run scripts/peers): {line}")

    def kill(self) -> None:
        """Kill the camera process at once (a camera losing power)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def freeze(self) -> None:
        """Stop the process without closing its sockets (a hung camera)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen camera run again."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop the camera for good."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            stop_process(self.proc)
