"""A private Samba server for tests: Debian's ``smbd`` as a process of our own on loopback.

Each :class:`PrivateSamba` writes its own ``smb.conf`` (a free high port, SMB3 only, signing
mandatory, every state, lock and private directory below its folder, a ``tdbsam`` passdb of its
own) and three shares: ``valt`` (read-write), ``readonly`` (``read only = yes``) and ``small``,
whose folder a test may mount a small tmpfs on to make "disk full" real. The SMB user is the Unix
user running the tests, with a password set in the private passdb, so nothing of the machine's
own Samba configuration or accounts is touched.

smbd runs in a session (and process group) of its own: on SIGTERM it signals its whole process
group, which must not include the test run. Its stdin is a pipe we hold open: smbd in the
foreground exits when its stdin is closed or at its end (as it is under CI, with no input), and
so it also goes away with the test run that started it. ``stop``/``start`` is a server that goes away and
comes back on the same port with its files; ``pause``/``resume`` (SIGSTOP/SIGCONT of the group:
smbd and the child serving each connection) is one that stops answering.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .process import stop_process

PASSWORD = "valt-smb-test-password-42"
SMBD = "/usr/sbin/smbd"
PDBEDIT = "/usr/bin/pdbedit"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samba_binaries() -> tuple[str, str]:
    """``smbd`` and ``pdbedit``; a clear error when Debian's samba is not installed."""
    smbd = SMBD if os.access(SMBD, os.X_OK) else shutil.which("smbd")
    pdbedit = PDBEDIT if os.access(PDBEDIT, os.X_OK) else shutil.which("pdbedit")
    if not smbd or not pdbedit:
        raise RuntimeError("Samba (smbd, pdbedit) is not installed: run scripts/peers (apt-get install samba)")
    return smbd, pdbedit


class PrivateSamba:
    """``smbd`` with the shares ``valt``, ``readonly`` and ``small`` below ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.smbd, pdbedit = samba_binaries()
        self.directory = directory
        self.port = free_port()
        self.user = getpass.getuser()
        self.password = PASSWORD
        self.proc: subprocess.Popen | None = None
        self.shares = {name: directory / "shares" / name for name in ("valt", "readonly", "small")}
        for path in self.shares.values():
            path.mkdir(parents=True, exist_ok=True)
        (self.shares["readonly"] / "hello.txt").write_text("read me\n")
        for sub in ("private", "lock", "state", "cache", "pid", "log", "ncalrpc"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        self.conf = directory / "smb.conf"
        self.conf.write_text(self._config())
        # The password goes in on stdin (twice: new and repeated), never on a command line.
        subprocess.run([pdbedit, "-s", str(self.conf), "-a", "-u", self.user, "-t"],
                       input=f"{self.password}\n{self.password}\n", text=True, check=True,
                       capture_output=True, timeout=30)
        self.start()

    def _config(self) -> str:
        d = self.directory
        lines = [
            "[global]",
            "  server role = standalone server",
            f"  smb ports = {self.port}",
            "  interfaces = 127.0.0.1",
            "  bind interfaces only = yes",
            "  disable netbios = yes",
            "  server min protocol = SMB3",
            "  server signing = mandatory",
            "  server smb encrypt = if_required",
            f"  passdb backend = tdbsam:{d / 'private' / 'passdb.tdb'}",
            f"  private dir = {d / 'private'}",
            f"  lock directory = {d / 'lock'}",
            f"  state directory = {d / 'state'}",
            f"  cache directory = {d / 'cache'}",
            f"  pid directory = {d / 'pid'}",
            f"  ncalrpc dir = {d / 'ncalrpc'}",
            f"  log file = {d / 'log' / 'smbd.log'}",
            "  log level = 1",
            "  load printers = no",
            "  printing = bsd",
            "  printcap name = /dev/null",
            "  disable spoolss = yes",
            "  map to guest = never",
            "  unix extensions = no",
            "  server services = smb",
        ]
        for name, path in self.shares.items():
            lines += [f"[{name}]", f"  path = {path}", f"  valid users = {self.user}",
                      f"  read only = {'yes' if name == 'readonly' else 'no'}",
                      "  create mask = 0600", "  directory mask = 0700"]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Start (or restart, on the same port and files) and wait until it accepts connections."""
        log = open(self.directory / "log" / "smbd.out", "ab")
        try:
            self.proc = subprocess.Popen([self.smbd, "--foreground", "--no-process-group", "--debug-stdout",
                                          "-s", str(self.conf)], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.PIPE, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.directory / "log" / "smbd.out").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"smbd exited: {tail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smbd did not listen within 30 s")

    def _signal_group(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """Stop the server and the children serving open connections (files stay)."""
        if self.proc is None:
            return
        self.resume()
        pgid = self.proc.pid
        stop_process(self.proc, grace_s=5)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            os.killpg(pgid, signal.SIGKILL)  # connection children that outlived their parent
        except ProcessLookupError:
            pass

    def pause(self) -> None:
        """Freeze every smbd process (SIGSTOP): connections open, nothing answers."""
        self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        """Unfreeze after :meth:`pause`."""
        self._signal_group(signal.SIGCONT)
