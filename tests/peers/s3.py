"""A private S3 endpoint for tests: moto in server mode (``moto_server`` from the venv).

Each :class:`MotoS3` listens on a free loopback port. moto keeps its buckets in memory, so
``stop``/``start`` on the same port is a store that comes back empty (in-flight multipart uploads
gone); ``pause``/``resume`` (SIGSTOP/SIGCONT) is a store that stops answering and comes back
with everything it had, as a network cut looks to a client.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .process import stop_process

#: pip puts moto's console script next to the venv's python.
VENV_BINARY = Path(sys.executable).with_name("moto_server")
#: Any key works with moto (unless IAM checks are on); these only have to look like keys.
ACCESS_KEY, SECRET_KEY = "AKIAVALTTESTKEY00001", "valt-test-secret-key-0123456789abcdefgh"


def moto_server_binary() -> Path:
    """The moto_server the tests run: the venv's, else one on ``PATH``."""
    if VENV_BINARY.is_file():
        return VENV_BINARY
    found = shutil.which("moto_server")
    if found is None:
        raise RuntimeError("moto_server is not installed: run scripts/setup (the test extra has moto[server])")
    return Path(found)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoS3:
    """``moto_server`` on its own port; ``env`` adds variables (e.g. ``INITIAL_NO_AUTH_ACTION_COUNT``)."""

    def __init__(self, directory: Path, env: dict[str, str] | None = None) -> None:
        self.binary = moto_server_binary()
        self.directory = directory
        self.port = free_port()
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.start()

    @property
    def url(self) -> str:
        """The endpoint URL a client is given."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (or restart, empty, on the same port) and wait until it answers HTTP."""
        log = open(self.directory / "moto.log", "ab")
        env = {**os.environ, **self.env}
        try:
            self.proc = subprocess.Popen([str(self.binary), "-H", "127.0.0.1", "-p", str(self.port)],
                                         stdout=log, stderr=subprocess.STDOUT, env=env)
        finally:
            log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited: {(self.directory / 'moto.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("moto_server did not answer within 30 s")

    def stop(self) -> None:
        """Stop the server; its buckets are gone (``start`` brings an empty one back)."""
        if self.proc is not None:
            self.resume()
            stop_process(self.proc, grace_s=5)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections open but nothing answers, state kept."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Unfreeze the server after :meth:`pause`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
