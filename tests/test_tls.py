"""``[server] tls``: HTTPS and WSS on the app server's port, checked with real TLS clients.

httpx and websockets trust the self-signed certificate Valt made (and fail without it), Chromium
plays live video over https/wss with a test CA it was told to trust, the redirect port sends
plain HTTP to HTTPS, and cookies and HSTS follow the switch.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import ipaddress
import json
import os
import re
import ssl
import stat
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import av
import httpx
import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.async_api import async_playwright

from valt_core.app import create_app
from valt_core.settings import load_settings
from valt_core.tls import RedirectToHttps, certificate_names, self_signed_certificate
from valt_core.users import create_user

from .conftest import FAST_AUTH
from .test_browser import ARTIFACTS, CHROMIUM_ARGS, sign_in, wait_until
from .test_browser_observe import VIDEO_STATE
from .test_cli import VALT, _env, free_port, run
from .test_live_server import read_frames

FINGERPRINT = re.compile(r"SHA-256 fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})")


class TlsServer:
    """A ``valt`` process with ``[server] tls`` on; ready once it answers over HTTPS.

    ``ca`` is the file a client trusts: the self-signed certificate Valt makes into the data
    directory unless the test gives its own.
    """

    def __init__(self, tmp_path: Path, *args: str, redirect: bool = False, ca: Path | None = None, **env: str):
        self.port = free_port()
        self.base = f"https://127.0.0.1:{self.port}"
        self.redirect_port = free_port() if redirect else None
        if self.redirect_port:
            env["VALT_SERVER__REDIRECT_PORT"] = str(self.redirect_port)
        self.ca = ca or tmp_path / "data" / "tls" / "cert.pem"
        self.log = tmp_path / f"server-{self.port}.log"
        self.proc = subprocess.Popen(VALT + list(args) + ["--port", str(self.port)],
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                     env=_env(tmp_path, VALT_SERVER__TLS="true", **env), cwd=tmp_path)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            if self.ca.exists():
                # Closed at once: an idle TLS connection left open holds the server's shutdown up
                # for asyncio's 30 s TLS close timeout.
                try:
                    with self.client() as client:
                        if client.get("/api/v1/health").status_code == 200:
                            return
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"server did not answer over HTTPS:\n{self.output()}")

    def trust(self) -> ssl.SSLContext:
        """A client context that trusts only ``ca``, with hostname checks on."""
        return ssl.create_default_context(cafile=str(self.ca))

    def client(self) -> httpx.Client:
        """An httpx client for this server that trusts ``ca``."""
        return httpx.Client(base_url=self.base, verify=self.trust(), timeout=10)

    def output(self) -> str:
        """What the process printed and logged so far."""
        return self.log.read_text()

    def stop(self) -> int:
        """SIGTERM, and wait for the exit status."""
        self.proc.terminate()
        return self.proc.wait(timeout=15)


def presented_fingerprint(port: int) -> str:
    """SHA-256 of the certificate the server at ``port`` presents, as a browser shows it."""
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).digest().hex(":").upper()


def form_sign_in(client: httpx.Client, password: str) -> httpx.Response:
    """Sign in through the login form as a browser does; returns the form's answer."""
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"username": "admin", "password": password, "csrf_token": csrf})


def test_https_and_wss_with_the_self_signed_certificate_made_once(tmp_path):
    server = TlsServer(tmp_path, "demo", redirect=True, VALT_DEMO_PASSWORD="tls demo pw")
    try:
        output = server.output()
        assert f"Valt is starting on https://127.0.0.1:{server.port}/" in output
        # The fingerprint in the log is the one a browser shows for the certificate served.
        logged = FINGERPRINT.search(output).group(1)
        assert presented_fingerprint(server.port) == logged
        key_file = tmp_path / "data" / "tls" / "key.pem"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert key_file.read_text().split("\n")[1][:20] not in output  # the key is never logged

        with server.client() as client:
            health = client.get("/api/v1/health")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert health.headers["strict-transport-security"] == "max-age=31536000"
            signed_in = form_sign_in(client, "tls demo pw")
            assert signed_in.status_code == 302
            session_cookie = next(v for v in signed_in.headers.get_list("set-cookie") if v.startswith("valt_session="))
            assert "; Secure" in session_cookie and "HttpOnly" in session_cookie
            assert client.get("/").status_code == 200  # the Secure cookie is sent back over HTTPS

            token = client.post("/api/v1/auth/login", json={"username": "admin", "password": "tls demo pw"}
                                ).json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            cam_id = client.get("/api/v1/cameras", headers=auth).json()[0]["id"]
            path = client.get(f"/api/v1/cameras/{cam_id}/live", headers=auth).json()["endpoints"]["wss"]

        # A client that does not trust the certificate refuses the connection.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(server.base + "/api/v1/health", timeout=10)

        # Plain HTTP on the redirect port sends the same path and query to HTTPS.
        plain = f"http://127.0.0.1:{server.redirect_port}"
        moved = httpx.get(plain + "/observe/rooms/1?from=bookmark&x=%2F", timeout=10)
        assert moved.status_code == 308
        assert moved.headers["location"] == f"{server.base}/observe/rooms/1?from=bookmark&x=%2F"
        assert "strict-transport-security" not in moved.headers  # ignored over HTTP, so never sent there
        with httpx.Client(verify=server.trust(), timeout=10, follow_redirects=True) as browser_like:
            landed = browser_like.get(plain + "/")
        assert str(landed.url) == f"{server.base}/login" and 'name="password"' in landed.text

        # Live view over wss: the init segment and media fragments arrive and decode.
        async def watch():
            async with websockets.connect(f"wss://127.0.0.1:{server.port}{path}", ssl=server.trust(),
                                          max_size=None) as ws:
                return await read_frames(ws, 25)

        _arrivals, init_segment, media = asyncio.run(watch())
        with av.open(io.BytesIO(init_segment + b"".join(media))) as f:
            frames = sum(1 for _ in f.decode(video=0))
        assert frames >= 25
    finally:
        assert server.stop() == 0

    # The next start on the same data directory serves the same certificate.
    cert_pem = server.ca.read_bytes()
    again = TlsServer(tmp_path, "serve")
    try:
        assert server.ca.read_bytes() == cert_pem
        assert presented_fingerprint(again.port) == logged
        assert FINGERPRINT.search(again.output()).group(1) == logged
    finally:
        again.stop()


@pytest.mark.parametrize("tls, hsts_env, hsts", [
    (True, {}, "max-age=31536000"),
    (True, {"VALT_SERVER__HSTS_MAX_AGE_S": "600", "VALT_SERVER__HSTS_INCLUDE_SUBDOMAINS": "true"},
     "max-age=600; includeSubDomains"),
    (False, {"VALT_SERVER__HSTS_MAX_AGE_S": "600"}, None),
])
async def test_secure_cookies_and_hsts_follow_the_tls_switch(tmp_path, tls, hsts_env, hsts):
    env = {"VALT_DATA_DIR": str(tmp_path / "data"), "VALT_SERVER__TLS": str(tls).lower(),
           "VALT_AUTH__BACKEND_OPTIONS": json.dumps(FAST_AUTH), **hsts_env}
    settings = load_settings(None, env)
    app = create_app(settings)
    ctx = app.extensions["valt"]
    await ctx.db.upgrade()
    await create_user(ctx, "admin", "cookie test pw", role="admin")
    async with app.test_app() as test_app:
        client = test_app.test_client()
        form = await client.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', await form.get_data(as_text=True)).group(1)
        answer = await client.post("/login", form={"username": "admin", "password": "cookie test pw",
                                                   "csrf_token": csrf})
    assert answer.status_code == 302
    # The form's CSRF cookie, and the session cookie the sign-in sets.
    cookies = [c for c in form.headers.getlist("Set-Cookie") if c.startswith("valt_login_csrf=")]
    cookies += [c for c in answer.headers.getlist("Set-Cookie") if c.startswith("valt_session=")]
    assert len(cookies) == 2
    for cookie in cookies:
        assert ("; Secure" in cookie) is tls, cookie
    for response in (form, answer):
        assert response.headers.get("Strict-Transport-Security") == hsts


@pytest.mark.parametrize("given, missing", [("TLS_CERT", "tls_key"), ("TLS_KEY", "tls_cert")])
def test_a_certificate_without_its_key_is_one_clear_line(tmp_path, given, missing):
    (tmp_path / "some.pem").write_text("whatever")
    r = run(tmp_path, "serve", "--port", str(free_port()), VALT_SERVER__TLS="true",
            **{f"VALT_SERVER__{given}": "some.pem"})
    assert r.returncode == 2, r.stderr
    assert "server.tls_cert" in r.stderr and "server.tls_key" in r.stderr and f"server.{missing} is not" in r.stderr
    assert "Traceback" not in r.stderr


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject_key, name: str, issuer_key=None, issuer_name: str | None = None, ca: bool = False,
                 ip: str | None = None) -> x509.Certificate:
    """A certificate for ``subject_key`` named ``name``, signed by the issuer (itself when none)."""
    now = datetime.now(timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]) if issuer_name else subject
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
    return builder.sign(issuer_key or subject_key, hashes.SHA256())


@pytest.mark.parametrize("case", ["unparseable key", "key of another certificate", "missing certificate"])
def test_bad_certificate_files_stop_the_server_with_one_line(tmp_path, case):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = tmp_path / "cert.pem"
    cert.write_bytes(_certificate(key, "valt.test").public_bytes(serialization.Encoding.PEM))
    key_file = tmp_path / "key.pem"
    secret = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg-do-not-print-me"
    if case == "unparseable key":
        key_file.write_text(f"-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n")
        expected = f"server.tls_key: {key_file} holds no PEM private key"
    elif case == "key of another certificate":
        key_file.write_bytes(_key_pem(ec.generate_private_key(ec.SECP256R1())))
        expected = f"server.tls_cert and server.tls_key: the key in {key_file} is not the key of the certificate"
    else:
        key_file.write_bytes(_key_pem(key))
        cert.unlink()
        expected = f"server.tls_cert: cannot read {cert}: No such file or directory"
    r = run(tmp_path, "serve", "--port", str(free_port()), VALT_SERVER__TLS="true",
            VALT_SERVER__TLS_CERT=str(cert), VALT_SERVER__TLS_KEY=str(key_file))
    assert r.returncode == 2, r.stderr
    assert f"valt: error: {expected}" in r.stderr
    assert "Traceback" not in r.stderr and "do-not-print-me" not in r.stdout + r.stderr


def test_the_self_signed_certificate_is_reused_until_the_host_changes(tmp_path):
    first = self_signed_certificate(tmp_path / "tls", certificate_names("127.0.0.1"))
    assert set(first.names) == {"localhost", "127.0.0.1", "::1"}
    assert self_signed_certificate(tmp_path / "tls", certificate_names("127.0.0.1")).fingerprint == first.fingerprint
    # Listening on a new name: a certificate that does not cover it would be refused by every client.
    moved = self_signed_certificate(tmp_path / "tls", certificate_names("valt.example.org"))
    assert moved.fingerprint != first.fingerprint
    assert set(moved.names) == {"localhost", "127.0.0.1", "::1", "valt.example.org"}
    assert stat.S_IMODE(os.stat(tmp_path / "tls").st_mode) == 0o700
    # An address written another way is the same address: no new certificate for it.
    assert self_signed_certificate(tmp_path / "tls", certificate_names("0:0::1")).fingerprint == moved.fingerprint
    # Valt's own files damaged: a new pair is made rather than HTTPS refused.
    (tmp_path / "tls" / "key.pem").write_text("truncated")
    remade = self_signed_certificate(tmp_path / "tls", certificate_names("127.0.0.1"))
    assert remade.fingerprint != moved.fingerprint and "127.0.0.1" in remade.names


@pytest.mark.parametrize("port, host, path, query, expected", [
    (8443, "valt.example.org:8080", b"/observe", b"", "https://valt.example.org:8443/observe"),
    (8443, "[::1]:8080", b"/a%20b", b"x=1", "https://[::1]:8443/a%20b?x=1"),
    (8443, "evil.example\r\nSet-Cookie: x", b"/", b"", "https://127.0.0.1:8443/"),  # not echoed into a header
    (8443, "", b"/login", b"", "https://127.0.0.1:8443/login"),  # no Host header: the configured host
    (443, "valt.example.org", b"/", b"", "https://valt.example.org/"),
])
def test_redirect_location_keeps_host_path_and_query(port, host, path, query, expected):
    assert RedirectToHttps(port, "127.0.0.1").location(host, path, query) == expected


def _trusting_home(home: Path, ca_pem: Path) -> None:
    # Chromium on Linux takes the CAs a user trusts from the NSS database in ~/.pki/nssdb, so a
    # private HOME with the test CA in it makes the browser trust that CA, and only for this run.
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "Valt test CA", "-t", "C,,", "-i", str(ca_pem)],
                   check=True)


async def test_observe_plays_live_video_over_https_and_wss_in_chromium(tmp_path):
    # A certificate from a test CA, given as files: the way a site runs with its own certificate.
    # The browser trusts the CA (no certificate errors ignored), and checks the name as usual.
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_pem, cert_pem, key_pem = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    ca_pem.write_bytes(_certificate(ca_key, "Valt test CA", ca=True).public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(_certificate(server_key, "127.0.0.1", ca_key, "Valt test CA", ip="127.0.0.1")
                         .public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(_key_pem(server_key))
    home = tmp_path / "home"
    _trusting_home(home, ca_pem)
    ARTIFACTS.mkdir(exist_ok=True)
    server = TlsServer(tmp_path, "demo", ca=ca_pem, VALT_DEMO_PASSWORD="tls browser pw",
                       VALT_SERVER__TLS_CERT=str(cert_pem), VALT_SERVER__TLS_KEY=str(key_pem))
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                              args=CHROMIUM_ARGS, env={**os.environ, "HOME": str(home)})
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 860})
                sockets: list[str] = []
                page.on("websocket", lambda ws: sockets.append(ws.url))
                await sign_in(page, server.base, "tls browser pw")
                await page.goto(server.base + "/observe")
                await wait_until(
                    page, "[...document.querySelectorAll('.tile video')].every(v => v.currentTime > 1)",
                    timeout=20000)
                first = await page.evaluate(VIDEO_STATE)
                await asyncio.sleep(2)
                later = await page.evaluate(VIDEO_STATE)
                await page.screenshot(path=str(ARTIFACTS / "observe-https.png"))
            finally:
                await browser.close()
    finally:
        server.stop()
    assert len(later) == 4
    for a, b in zip(first, later):
        assert b["t"] - a["t"] > 1.5 and b["frames"] - a["frames"] >= 35, (a, b)
    assert len(sockets) >= 4 and all(url.startswith(f"wss://127.0.0.1:{server.port}/") for url in sockets), sockets
