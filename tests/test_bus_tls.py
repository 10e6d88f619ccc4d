"""NATS over TLS, as a site configures it: ``[bus] url = "tls://..."`` and ``tls_ca``, real TLS peers.

A private nats-server with a TLS-only client port (and one that also wants client
certificates) is started once for the module. Buses are built the way the processes build
theirs, from a settings file through :func:`bus_from_settings`. The server's own monitoring
(``/connz``) tells whether a connection really is TLS. The refusals are checked for what a site
integrator reads: the cause, the setting to look at, no secret, and at once rather than after
the connect timeout. Last, a real ``valt media-server`` joins a real app server over TLS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from valt_core.bus import BusUnavailable, Message
from valt_core.bus.base import Bus
from valt_core.bus.connect import bus_from_settings
from valt_core.errors import ConfigError
from valt_core.settings import load_settings

from .conftest import make_settings
from .peers.nats import PrivateNats, TlsFiles, delete_streams
from .test_cli import Server, http, run
from .test_cluster import MediaServerProcess, wait_until

#: A start that fails because of TLS ends with the refusal's own message (the messages are checked),
#: by the bus's connect deadline (5 s) at the latest. Usually within 0.5 s; but with TLS 1.3 the
#: server judges the client's certificate after the client's side of the handshake is done, and an
#: attempt may end without the alert (each attempt has 2 s): the refusal is then seen on the next
#: one. Fresh-clone CI runs saw 2.53 s and 4.55 s.
FAST_S = 5.0
#: What a start says when the server dropped the connection after the handshake, before its alert came.
DROPPED = "closed the connection after the TLS handshake"


class SiteNats(PrivateNats):
    """A TLS-only :class:`PrivateNats` with more of a site's nats-server.conf.

    ``verify`` asks every client for a certificate signed by the CA; ``authorization`` is the
    block as ``valt nats-config`` prints it, put into the configuration as it is.
    """

    def __init__(self, directory: Path, tls: TlsFiles, *, verify: bool = False,
                 authorization: dict | None = None) -> None:
        self.verify, self.authorization = verify, authorization
        super().__init__(directory, tls=tls)

    def _config(self) -> dict:
        config = super()._config()
        if self.verify:
            config["tls"]["verify"] = True
        if self.authorization is not None:
            config["authorization"] = self.authorization
        return config


def client_certificate(tls: TlsFiles, directory: Path, name: str) -> tuple[Path, Path]:
    """A client certificate (and its key) for ``name``, signed by the CA of ``tls``: (cert, key) files.

    :meth:`TlsFiles.make` leaves its CA's key as ``ca-key.pem`` next to ``ca.pem``.
    """
    ca_key = tls.ca_cert.with_name("ca-key.pem")
    assert ca_key.is_file(), ca_key
    directory.mkdir(parents=True, exist_ok=True)
    key, csr, cert, ext = (directory / f"{name}-key.pem", directory / f"{name}.csr", directory / f"{name}.pem",
                           directory / f"{name}.ext")
    ext.write_text("extendedKeyUsage=clientAuth\n")
    for cmd in (
        ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", csr, "-subj", f"/CN={name}"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", tls.ca_cert, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext],
    ):
        subprocess.run([str(c) for c in cmd], check=True, capture_output=True, timeout=30)
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, TlsFiles]:
    """The site's CA with the server certificate, and another CA nobody here trusts."""
    base = tmp_path_factory.mktemp("certs")
    return {"site": TlsFiles.make(base / "site"), "other": TlsFiles.make(base / "other")}


@pytest.fixture(scope="module")
def tls_nats(tmp_path_factory, certs):
    """A nats-server with JetStream whose client port speaks TLS only (started once for the module)."""
    server = PrivateNats(tmp_path_factory.mktemp("nats-tls"), tls=certs["site"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mutual_nats(tmp_path_factory, certs):
    """A TLS-only nats-server that also requires a client certificate from the site's CA."""
    server = SiteNats(tmp_path_factory.mktemp("nats-mtls"), certs["site"], verify=True)
    yield server
    server.stop()


def settings_file(path: Path, **bus: str) -> Path:
    """A valt.toml with these ``[bus]`` settings (strings), as a site writes it."""
    lines = ["[bus]"] + [f"{key} = {json.dumps(str(value))}" for key, value in bus.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


async def started(config: Path, name: str) -> Bus:
    """The bus the settings file asks for, started as the process ``name`` would."""
    bus = bus_from_settings(load_settings(config, environ={}), name)
    await bus.start()
    return bus


async def refused(config: Path) -> tuple[str, float]:
    """Start a bus from ``config`` that must fail: (its BusUnavailable message, seconds it took)."""
    bus = bus_from_settings(load_settings(config, environ={}), "valt-refused")
    begun = time.monotonic()
    with pytest.raises(BusUnavailable) as failure:
        await bus.start()
    took = time.monotonic() - begun
    # Told as the refusal it is, not as the connect deadline running out ("... within 5 s (...)").
    assert not re.search(r" within [\d.]+ s \(", failure.value.message), (failure.value.message, took)
    return failure.value.message, took


def connections(server: PrivateNats) -> dict[str, dict]:
    """The server's client connections by name, from its monitoring endpoint (``/connz``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.monitor_port}/connz", timeout=5) as answer:
        return {c.get("name", ""): c for c in json.loads(answer.read())["connections"]}


def trusting(tls: TlsFiles) -> ssl.SSLContext:
    """An ssl context that trusts the CA of ``tls`` (for a plain nats-py client, as in the clean-up)."""
    return ssl.create_default_context(cafile=str(tls.ca_cert))


async def echo(msg: Message) -> Message:
    """A responder that answers with what it was sent."""
    return Message(msg.subject, msg.data)


# --- (a) a site's settings: request/reply and the durable stream over TLS ------------------------

async def test_a_bus_from_tls_settings_does_request_reply_and_durable_publish_consume(tmp_path, tls_nats, certs):
    assert tls_nats.url.startswith("tls://")
    config = settings_file(tmp_path / "valt.toml", url=tls_nats.url, tls_ca=certs["site"].ca_cert)
    media, app = await started(config, "valt-media-tls1"), await started(config, "valt-app-tls")
    try:
        await media.serve("valt.media.tls1.cmd", echo)
        answer = await app.request("valt.media.tls1.cmd", b"ingest camera 7", timeout_s=2)
        assert answer.data == b"ingest camera 7"

        for i in (1, 2, 3):
            await media.publish_durable("valt.index.tls1", b"segment %d" % i, msg_id=f"tls1:1:{i}")
        # A second copy of an event is stored once (the message id), over TLS as in plain text.
        await media.publish_durable("valt.index.tls1", b"segment 3", msg_id="tls1:1:3")
        seen: list[bytes] = []

        async def index(msg: Message) -> None:
            seen.append(msg.data)

        consumer = await app.consume_durable("valt.index.>", "app-tls", index)
        deadline = time.monotonic() + 5
        while (len(seen) < 3 or await app.durable_pending("app-tls")) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await consumer.close()
        assert seen == [b"segment 1", b"segment 2", b"segment 3"]
        assert await app.durable_pending("app-tls") == 0

        # The server itself sees both connections as TLS.
        seen_by_server = connections(tls_nats)
        for name in ("valt-media-tls1", "valt-app-tls"):
            assert seen_by_server[name].get("tls_version", "").startswith("1."), seen_by_server[name]
    finally:
        await media.close()
        await app.close()
        await delete_streams(tls_nats.url, tls=trusting(certs["site"]))


# --- (b) the wrong CA: refused at once, with its cause, without a secret --------------------------

async def test_the_wrong_ca_is_refused_at_once_with_its_cause_and_no_secret(tmp_path, tls_nats, certs, caplog):
    caplog.set_level(logging.DEBUG)
    secret, in_url = "bus-password-d41f", "url-password-93ac"
    url = tls_nats.url.replace("tls://", f"tls://valt:{in_url}@")
    config = settings_file(tmp_path / "valt.toml", url=url, tls_ca=certs["other"].ca_cert, user="valt",
                           password=secret)
    message, took = await refused(config)
    assert "certificate verify failed" in message, message
    assert "[bus] tls_ca" in message and f"127.0.0.1:{tls_nats.port}" in message, message
    assert took < FAST_S, f"{took:.2f} s: a certificate that does not verify is not worth retrying"
    for text in (message, caplog.text):
        assert secret not in text and in_url not in text

    # No CA at all: the system's CAs do not know the site's CA either.
    message, took = await refused(settings_file(tmp_path / "none.toml", url=tls_nats.url))
    assert "certificate verify failed" in message and took < FAST_S, (message, took)


async def test_a_missing_ca_file_is_a_settings_error_naming_it(tmp_path, tls_nats):
    config = settings_file(tmp_path / "valt.toml", url=tls_nats.url, tls_ca=tmp_path / "no-such-ca.pem")
    with pytest.raises(ConfigError, match=r"bus\.tls_ca .*no-such-ca\.pem"):
        await started(config, "valt-no-ca")


def test_a_client_certificate_without_its_key_is_a_settings_error(tmp_path, certs):
    config = settings_file(tmp_path / "valt.toml", url="tls://127.0.0.1:4222", tls_ca=certs["site"].ca_cert,
                           tls_cert=certs["site"].cert)
    with pytest.raises(ConfigError, match=r"bus\.tls_cert is set but bus\.tls_key is not"):
        load_settings(config, environ={})


# --- (c) plain text against TLS, and TLS against plain text --------------------------------------

def test_a_plain_text_client_is_refused_by_the_tls_server(tls_nats):
    with socket.create_connection(("127.0.0.1", tls_nats.port), timeout=5) as plain:
        reader = plain.makefile("rb")
        info = json.loads(reader.readline().split(b" ", 1)[1])
        assert info["tls_required"] is True
        plain.sendall(b'CONNECT {"verbose":false,"pedantic":false,"name":"plain"}\r\nPING\r\n')
        received = b""
        try:
            while chunk := plain.recv(4096):
                received += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    # The server hangs up on bytes that are not a TLS handshake; it never answers the PING.
    assert b"PONG" not in received, received
    assert "plain" not in connections(tls_nats)


async def test_tls_settings_never_fall_back_to_plain_text(tmp_path, nats_server, certs):
    # A server that offers no TLS (the session's plain one): refused, at once.
    url = nats_server.url.replace("nats://", "tls://")
    message, took = await refused(settings_file(tmp_path / "valt.toml", url=url, tls_ca=certs["site"].ca_cert))
    assert "offers no TLS" in message and took < FAST_S, (message, took)

    # What is on the wire: someone answering on the NATS port with an INFO that offers no TLS
    # (a stripped one) gets no CONNECT, so never the token.
    token = "bus-token-5e0c"
    received = bytearray()

    async def downgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'INFO {"server_id":"x","version":"2.15.1","proto":1,"max_payload":1048576,'
                     b'"auth_required":true}\r\n')
        await writer.drain()
        try:
            while chunk := await asyncio.wait_for(reader.read(4096), 3):
                received.extend(chunk)
        except (asyncio.TimeoutError, ConnectionError):
            pass
        writer.close()

    listener = await asyncio.start_server(downgrade, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        config = settings_file(tmp_path / "stripped.toml", url=f"nats://127.0.0.1:{port}",
                               tls_ca=certs["site"].ca_cert, token=token)
        message, took = await refused(config)
    finally:
        listener.close()
        await listener.wait_closed()
    assert "offers no TLS" in message and took < FAST_S, (message, took)
    assert b"CONNECT" not in received and token.encode() not in received, bytes(received)


# --- (d) a server that wants client certificates --------------------------------------------------

async def test_client_certificates_the_server_asks_for(tmp_path, mutual_nats, certs):
    site = certs["site"]
    cert, key = client_certificate(site, tmp_path / "client", "media-tls2")
    foreign_cert, foreign_key = client_certificate(certs["other"], tmp_path / "foreign", "media-elsewhere")

    message, took = await refused(settings_file(tmp_path / "without.toml", url=mutual_nats.url, tls_ca=site.ca_cert))
    # The server's alert, or (when it drops the connection before the alert reaches us) the hint.
    assert ("certificate required" in message or DROPPED in message) and "[bus] tls_cert" in message, message
    assert took < FAST_S, (message, took)

    message, took = await refused(settings_file(tmp_path / "foreign.toml", url=mutual_nats.url, tls_ca=site.ca_cert,
                                                tls_cert=foreign_cert, tls_key=foreign_key))
    assert ("unknown ca" in message or DROPPED in message) and took < FAST_S, (message, took)

    config = settings_file(tmp_path / "with.toml", url=mutual_nats.url, tls_ca=site.ca_cert, tls_cert=cert,
                           tls_key=key)
    media, app = await started(config, "valt-media-tls2"), await started(config, "valt-app-mtls")
    try:
        await media.serve("valt.media.tls2.cmd", echo)
        assert (await app.request("valt.media.tls2.cmd", b"still", timeout_s=2)).data == b"still"
        assert connections(mutual_nats)["valt-media-tls2"]["tls_version"].startswith("1.")
    finally:
        await media.close()
        await app.close()


# --- a real media server joins over TLS ----------------------------------------------------------

async def enrol(settings, name: str, seed_file: Path, app_seed_file: Path) -> dict:
    """Migrate the database, enrol media server ``name`` and an admin ``boss``: the NATS authorization block.

    What ``valt db upgrade``, ``valt media-server add`` and ``valt nats-config`` do, called in
    this process (each command would take seconds to start).
    """
    from valt_core import mediaserver
    from valt_core.context import ValtContext
    from valt_core.users import create_user

    ctx = ValtContext.build(settings)
    try:
        await ctx.db.upgrade()
        _, seed = await mediaserver.enrol(ctx, name)
        mediaserver.write_seed(seed_file, seed)
        app_seed, app_public = mediaserver.new_nkey_seed()
        mediaserver.write_seed(app_seed_file, app_seed)
        await create_user(ctx, "boss", "boss password", role="admin")
        return await mediaserver.nats_authorization(ctx, app_public)
    finally:
        await ctx.db.dispose()


def test_a_media_server_process_joins_the_app_server_over_tls(tmp_path, certs):
    site = certs["site"]
    seed_file, app_seed_file = tmp_path / "tls3.seed", tmp_path / "app.seed"
    authorization = asyncio.run(enrol(make_settings(tmp_path), "tls3", seed_file, app_seed_file))
    nats = SiteNats(tmp_path / "nats", site, authorization=authorization)
    common = {"VALT_BUS__URL": nats.url, "VALT_BUS__TLS_CA": str(site.ca_cert)}
    app = media = None
    try:
        app = Server(tmp_path, "serve", **common, VALT_MEDIA__EMBEDDED="false",
                     VALT_BUS__NKEY_SEED_FILE=str(app_seed_file))
        media = MediaServerProcess(tmp_path, "tls3", seed_file, common)
        signed_in = http("POST", app.base + "/api/v1/auth/login", {"username": "boss", "password": "boss password"})
        token = signed_in[1]["token"]

        def status() -> str:
            listing = http("GET", app.base + "/api/v1/media-servers", token=token)[1]
            return next(s["status"] for s in listing if s["name"] == "tls3")

        wait_until(lambda: status() == "online", 20, "tls3 online in GET /api/v1/media-servers")
        # The app server's connection and the media server's, both TLS as the NATS server sees them.
        by_name = connections(nats)
        assert "valt-media-tls3" in by_name and len(by_name) >= 2, sorted(by_name)
        assert all(c.get("tls_version", "").startswith("1.") for c in by_name.values()), by_name

        # The same media server given the wrong CA: one line naming the cause, and it exits.
        wrong = run(tmp_path, "media-server", "--name", "tls3", VALT_BUS__URL=nats.url,
                    VALT_BUS__TLS_CA=str(certs["other"].ca_cert), VALT_BUS__NKEY_SEED_FILE=str(seed_file))
        assert wrong.returncode != 0
        assert "certificate verify failed" in wrong.stderr and "Traceback" not in wrong.stderr, wrong.stderr
    finally:
        if media is not None:
            media.stop()
        if app is not None:
            app.stop()
        nats.stop()
