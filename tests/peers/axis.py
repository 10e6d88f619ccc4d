"""Start and stop the fake Axis camera (tests/peers/axis_device.py) from tests."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any, Self

from tests.peers.netns import NetNamespace

from .process import stop_process

SCRIPT = Path(__file__).with_name("axis_device.py")
READY_TIMEOUT = 20.0


class AxisDevice:
    """A running fake Axis camera; ``url`` (``http://host:port``), ``host`` and ``port`` say where.

    With ``netns`` it runs inside that namespace at ``netns.ns_address``; with ``ssdp_address`` it
    also answers SSDP there. ``state()`` reads the fake's introspection endpoint.
    """

    def __init__(self, *, rtsp_port: int = 554, user: str = "root", password: str = "pass",
                 host: str = "127.0.0.1", ptz: bool = True, ssdp_address: str | None = None,
                 netns: NetNamespace | None = None, extra_args: tuple[str, ...] | list[str] = ()) -> None:
        self.host = netns.ns_address if netns else host
        self.user, self.password = user, password
        # The interpreter running the tests has aiohttp and PyAV; an absolute path, as `ip netns exec` needs.
        argv = [str(Path(sys.executable).absolute()), str(SCRIPT), "--host", self.host, "--port", "0",
                "--rtsp-port", str(rtsp_port), "--user", user, "--password", password]
        if not ptz:
            argv.append("--no-ptz")
        if ssdp_address:
            argv += ["--ssdp-address", ssdp_address]
        argv += list(extra_args)
        start = netns.popen if netns else subprocess.Popen
        self.proc: subprocess.Popen = start(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output: deque[str] = deque(maxlen=50)  # the last lines, for error messages
        self.url = ""
        self._ready = threading.Event()
        # A thread keeps reading, so the pipe never fills up and blocks the device.
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(READY_TIMEOUT) or not self.url:
            self.stop()
            raise RuntimeError("the fake Axis device did not start:\n" + "".join(self.output))
        self.port = int(self.url.rsplit(":", 1)[1])

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if line.startswith("READY ") and not self.url:
                self.url = line.split()[1]
                self._ready.set()
        self._ready.set()  # the process ended: stop waiting

    def state(self) -> dict[str, Any]:
        """The fake's own view: position, moving, presets, auth_failures, requests, ssdp_replies."""
        with urllib.request.urlopen(f"{self.url}/_fake/state", timeout=5) as response:
            return json.load(response)

    def stop(self) -> None:
        """Stop the device (SIGTERM, then SIGKILL if it does not go within 5 s)."""
        stop_process(self.proc)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
