"""A private MariaDB server for tests that stop it (the shared one on 3306 must stay up)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from .process import stop_process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateMariaDB:
    """``mariadbd`` on its own data directory and port; killed and restarted by the test."""

    def __init__(self, datadir: Path) -> None:
        if shutil.which("mariadbd", path="/usr/sbin:/usr/bin") is None:
            raise RuntimeError("mariadbd is not installed (run scripts/peers)")
        self.datadir = datadir
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        datadir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=60)
        self.start()
        self.sql("CREATE DATABASE valt CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of database ``valt`` on it."""
        return f"mysql+aiomysql://root@127.0.0.1:{self.port}/valt?charset=utf8mb4"

    def start(self) -> None:
        """Start (or restart, on the same port and data) the server and wait until it answers."""
        self.proc = subprocess.Popen(
            ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={self.datadir}",
             f"--socket={self.datadir}/s.sock", f"--port={self.port}", "--bind-address=127.0.0.1",
             "--user=root", "--skip-log-bin", "--innodb-buffer-pool-size=32M"],
            stdout=subprocess.DEVNULL, stderr=open(self.datadir / "server.log", "ab"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited: {(self.datadir / 'server.log').read_text()[-2000:]}")
            try:
                self.sql("SELECT 1")
                return
            except subprocess.CalledProcessError:
                time.sleep(0.1)
        raise RuntimeError("mariadbd did not answer within 30 s")

    def sql(self, statement: str) -> str:
        """Run one statement with the ``mariadb`` client; its output."""
        return subprocess.run(["mariadb", "--no-defaults", f"--socket={self.datadir}/s.sock", "-uroot",
                               "-N", "-e", statement], check=True, capture_output=True, text=True,
                              timeout=30).stdout

    def kill(self) -> None:
        """SIGKILL the server: a database host that dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """Stop the server for good."""
        if self.proc is not None:
            stop_process(self.proc, grace_s=10)
