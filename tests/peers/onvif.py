"""Start and stop the ONVIF device simulator (tests/peers/onvif_device.py) from tests.

The simulator plays the ONVIF side of an IP camera (device, media and PTZ services, a snapshot,
optionally WS-Discovery); its video is a separate RTSP server whose URL it is given.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .process import stop_process

if TYPE_CHECKING:
    from tests.peers.netns import NetNamespace

SCRIPT = Path(__file__).with_name("onvif_device.py")
# The venv's own interpreter by absolute path, not resolved: a resolved symlink would leave the
# venv, and `ip netns exec` has no PATH lookup of ours to fall back on.
PYTHON = os.path.abspath(sys.executable)
START_TIMEOUT_S = 20


class OnvifDevice:
    """A running simulated ONVIF camera; ``xaddr`` is its device service URL.

    ``host``/``port`` are where it serves HTTP (``netns.ns_address`` when started inside a
    ``tests.peers.netns.NetNamespace``). ``state()`` returns the simulator's ``/_sim/state``
    JSON (PTZ position, presets, request and auth-failure counters). ``stop()`` ends it; the
    object is also a context manager.
    """

    def __init__(self, rtsp_url: str, *, user: str = "admin", password: str = "secret",
                 host: str = "127.0.0.1", ptz: bool = True, sub_rtsp_url: str | None = None,
                 clock_offset_s: float = 0, discovery_address: str | None = None,
                 netns: NetNamespace | None = None, extra_args: Iterable[str] = ()) -> None:
        if netns is not None:
            host = netns.ns_address
        argv = [PYTHON, str(SCRIPT), "--host", host, "--port", "0", "--rtsp-url", rtsp_url,
                "--user", user, "--password", password, "--clock-offset-s", str(clock_offset_s)]
        if not ptz:
            argv.append("--no-ptz")
        if sub_rtsp_url:
            argv += ["--sub-rtsp-url", sub_rtsp_url]
        if discovery_address:
            argv += ["--discovery-address", discovery_address]
        argv += list(extra_args)
        self.user, self.password = user, password
        self.host, self.port, self.xaddr = host, 0, ""
        self._pump: threading.Thread | None = None
        # stderr goes to a file: nobody has to drain it, and a failed start can quote it.
        self._stderr = tempfile.TemporaryFile()
        self._stderr_text = ""
        kwargs: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": self._stderr, "text": True}
        self.proc = netns.popen(argv, **kwargs) if netns is not None else subprocess.Popen(argv, **kwargs)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:  # a thread, so the wait can time out even if the child says nothing
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)
            lines.put("")

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        try:
            line = lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            raise RuntimeError(f"the ONVIF simulator printed no READY line in {START_TIMEOUT_S} s:\n"
                               f"{self.stderr()}") from None
        if not line.startswith("READY "):
            raise RuntimeError(f"the ONVIF simulator did not start ({line.strip() or 'it exited'}):\n"
                               f"{self.stderr()}")
        self.xaddr = line.split()[1]
        self.port = int(self.xaddr.rsplit(":", 1)[1].split("/")[0])

    def stderr(self) -> str:
        """What the simulator wrote to stderr so far (tracebacks, if it failed)."""
        if self._stderr.closed:
            return self._stderr_text
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def state(self) -> dict[str, Any]:
        """The simulator's introspection JSON (``GET /_sim/state``)."""
        # No proxies: the device is on loopback or a test veth, never behind one.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{self.host}:{self.port}/_sim/state", timeout=5) as resp:
            return json.load(resp)

    def stop(self) -> None:
        """Terminate the simulator and wait for it."""
        stop_process(self.proc)
        if self._pump is not None:
            self._pump.join(timeout=5)  # sees EOF now that the process is gone
        if self.proc.stdout:
            self.proc.stdout.close()
        if not self._stderr.closed:
            self._stderr_text = self.stderr()
            self._stderr.close()

    def __enter__(self) -> "OnvifDevice":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
