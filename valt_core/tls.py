"""TLS for Valt's listening ports: the certificate in force, HSTS, and a port that only redirects.

A port with TLS on uses the configured certificate and key files, or else a self-signed
certificate that Valt makes once into a directory of its data directory and reuses on every
start, so its fingerprint stays the one an admin checked. Nothing here knows the web app: the
app server's HTTP port uses it today, and any other listener (the media server's live port)
can take the same pieces.

Problems with the files are :class:`~valt_core.errors.ConfigError` naming the setting and the
file; no message ever quotes a key file's contents.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import os
import re
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import ConfigError
from .files import make_private_dir, open_private

log = logging.getLogger(__name__)

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
#: How long a self-signed certificate is made for; an expired one is replaced at the next start.
SELF_SIGNED_DAYS = 825
#: A self-signed certificate this close to its end is replaced at start rather than let lapse mid-run.
RENEW_BEFORE = timedelta(days=7)
#: Names every self-signed certificate carries: the machine as seen from itself.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class ServerCertificate:
    """A certificate and key pair that a listener serves, checked to belong together."""

    cert_path: Path
    key_path: Path
    #: SHA-256 of the certificate (DER), as browsers show it: upper-case hex pairs joined by ':'.
    fingerprint: str
    #: DNS names and IP addresses the certificate is valid for.
    names: tuple[str, ...]
    not_after: datetime
    #: Made by Valt, not given by the admin.
    self_signed: bool = False

    def ssl_context(self) -> ssl.SSLContext:
        """A server-side context serving this certificate (TLS 1.2 or later)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint of ``cert`` in the form browsers show (``AB:CD:...``)."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def load_certificate(cert_path: Path, key_path: Path, section: str = "server",
                     self_signed: bool = False) -> ServerCertificate:
    """Read and check a PEM certificate (chain) file and its private key file.

    Every problem (unreadable, not PEM, an encrypted key, a key of another certificate, a chain
    OpenSSL refuses) is a :class:`ConfigError` naming ``{section}.tls_cert`` or
    ``{section}.tls_key`` and the file.
    """
    cert_key, key_key = f"{section}.tls_cert", f"{section}.tls_key"
    certs = _read_certificates(cert_path, cert_key)
    key_data = _read(key_path, key_key)
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:
        raise ConfigError(f"{key_key}: {key_path} is an encrypted private key; Valt needs it unencrypted "
                          "(keep the file readable by Valt's user only)") from None
    except (ValueError, UnsupportedAlgorithm):
        # `from None`: whatever the parser said stays out of messages and logs, since it is about a key.
        raise ConfigError(f"{key_key}: {key_path} holds no PEM private key") from None
    leaf = certs[0]
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise ConfigError(f"{cert_key} and {key_key}: the key in {key_path} is not the key of the certificate "
                          f"in {cert_path} (the server's own certificate must come first in the file)")
    found = ServerCertificate(cert_path=cert_path, key_path=key_path, fingerprint=fingerprint(leaf),
                              names=_names(leaf), not_after=leaf.not_valid_after_utc, self_signed=self_signed)
    try:
        found.ssl_context()  # what the listener will do; OpenSSL may refuse what parsed above
    except ssl.SSLError as err:
        raise ConfigError(f"{cert_key} and {key_key}: OpenSSL refuses {cert_path} with {key_path} "
                          f"({err.reason or 'unknown reason'})") from None
    return found


def certificate_names(host: str) -> tuple[str, ...]:
    """The names a self-signed certificate for a server listening on ``host`` carries.

    Always the loopback names; the host itself when it is a name or an address; the machine's
    own name when the host means every interface (``0.0.0.0``, ``::``, empty).
    """
    names = list(LOOPBACK_NAMES)
    host = host.strip().strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        extra = host.lower() or socket.gethostname().lower()
    else:
        # Written as the certificate writes it back (0:0::1 is ::1), so it is found there next time.
        extra = socket.gethostname().lower() if address.is_unspecified else str(address)
    if extra and extra not in names:
        names.append(extra)
    return tuple(names)


def self_signed_certificate(directory: Path, names: tuple[str, ...], section: str = "server") -> ServerCertificate:
    """The self-signed certificate in ``directory``, made on first use and reused afterwards.

    Made again (with a new fingerprint, logged) only when the one there has expired or is about
    to, or lacks one of ``names``. The key file is 0600 and the directory 0700, like Valt's
    other secrets; two processes starting at once make one certificate between them.
    """
    make_private_dir(directory)
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    with open(open_private(directory / ".lock", os.O_RDWR | os.O_CREAT), "r+") as lock:
        # Held while the pair is checked and written, so no process reads one half of another's pair.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cert_path.exists() or key_path.exists():
            try:
                current = load_certificate(cert_path, key_path, section, self_signed=True)
            except ConfigError as err:
                # Valt's own files, damaged or half gone: a new pair is better than no HTTPS.
                log.warning("replacing the self-signed TLS certificate in %s: %s", directory, err.message)
            else:
                missing = [name for name in names if name not in current.names]
                if not missing and current.not_after - RENEW_BEFORE > datetime.now(timezone.utc):
                    return current
                why = f"it lacks {', '.join(missing)}" if missing else f"it expires {current.not_after:%Y-%m-%d}"
                log.warning("replacing the self-signed TLS certificate %s (%s): browsers that trusted its "
                            "fingerprint %s must be told the new one", cert_path, why, current.fingerprint)
        cert_pem, key_pem = _make_self_signed(names)
        _write_private(key_path, key_pem)
        _write_private(cert_path, cert_pem)
    return load_certificate(cert_path, key_path, section, self_signed=True)


def certificate_for(cert_path: Path | None, key_path: Path | None, data_dir: Path, host: str,
                    section: str = "server") -> ServerCertificate:
    """The certificate a listener on ``host`` serves: the given files, else the self-signed one.

    The self-signed one lives in ``DATA_DIR/tls`` for the ``server`` section and in
    ``DATA_DIR/tls-{section}`` for any other. Logs which one is in force and its fingerprint.
    """
    if cert_path is not None and key_path is not None:
        found = load_certificate(cert_path, key_path, section)
    else:
        directory = data_dir / ("tls" if section == "server" else f"tls-{section}")
        found = self_signed_certificate(directory, certificate_names(host), section)
    if found.not_after <= datetime.now(timezone.utc):
        log.warning("the TLS certificate %s expired on %s: browsers will refuse it", found.cert_path,
                    f"{found.not_after:%Y-%m-%d}")
    kind = "self-signed certificate" if found.self_signed else "certificate"
    log.info("TLS %s %s for %s, valid until %s, SHA-256 fingerprint %s", kind, found.cert_path,
             ", ".join(found.names) or "no names", f"{found.not_after:%Y-%m-%d}", found.fingerprint)
    return found


def hsts_header(max_age_s: int, include_subdomains: bool = False) -> str:
    """The ``Strict-Transport-Security`` value for these settings."""
    return f"max-age={max_age_s}" + ("; includeSubDomains" if include_subdomains else "")


# Host header values taken into a redirect: a name, an IPv4 address or a bracketed IPv6 one,
# and an optional port. Anything else is not echoed into a Location header.
_HOST = re.compile(r"^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")

ASGIReceive = Callable[[], Awaitable[dict[str, Any]]]
ASGISend = Callable[[dict[str, Any]], Awaitable[None]]


class RedirectToHttps:
    """An ASGI app for a plain-HTTP port that answers every request with a redirect to HTTPS.

    The redirect (308, so a POST stays a POST) keeps the host the client asked for, the path
    and the query, and names ``https_port`` (left out when it is 443). It serves nothing else:
    no page, no API, and a WebSocket is refused. No HSTS here: browsers ignore it over HTTP.
    """

    def __init__(self, https_port: int, fallback_host: str) -> None:
        self.https_port = https_port
        self.fallback_host = fallback_host

    def location(self, host_header: str, raw_path: bytes, query: bytes) -> str:
        """The https URL a request for ``raw_path?query`` to ``host_header`` is sent to."""
        host = host_header if _HOST.match(host_header) else self.fallback_host
        if host.startswith("["):
            host = host[:host.index("]") + 1]  # [::1]:8080 -> [::1]
        elif host.count(":") == 1:
            host = host.partition(":")[0]  # name:8080 -> name
        elif ":" in host:
            host = f"[{host}]"  # a bare IPv6 address as the fallback host
        port = "" if self.https_port == 443 else f":{self.https_port}"
        path = raw_path.decode("latin-1") if raw_path.startswith(b"/") else "/"
        return f"https://{host}{port}{path}" + (f"?{query.decode('latin-1')}" if query else "")

    async def __call__(self, scope: dict[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        """Serve one ASGI connection: lifespan, a redirect for HTTP, a refusal for WebSocket."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        url = self.location(headers.get("host", ""), scope.get("raw_path") or scope["path"].encode(),
                            scope.get("query_string", b""))
        body = f"Valt is served over HTTPS: {url}\n".encode()
        await send({"type": "http.response.start", "status": 308,
                    "headers": [(b"location", url.encode("latin-1")), (b"content-type", b"text/plain"),
                                (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": body})


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{key}: cannot read {path}: {err.strerror or err}") from None


def _read_certificates(path: Path, key: str) -> list[x509.Certificate]:
    data = _read(path, key)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{key}: {path} holds no PEM certificate (a file starting with "
                          "-----BEGIN CERTIFICATE-----)") from None
    return certs


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = san.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return tuple(name.lower() for name in dns) + tuple(ips)


def _make_self_signed(names: tuple[str, ...]) -> tuple[bytes, bytes]:
    # P-256: made in a millisecond, accepted by every browser and TLS library in use.
    key = ec.generate_private_key(ec.SECP256R1())
    # The subject names the server as people reach it; clients check the alternative names only.
    common_name = next((n for n in names if n not in LOOPBACK_NAMES), names[0])
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Valt (self-signed)")])
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))  # a client whose clock is a little behind
        .not_valid_after(now + timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        # A plain server certificate, not a CA (Firefox refuses a CA certificate as a server's); clients
        # trust it as itself, by adding it as their CA file or by its fingerprint.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write_private(path: Path, data: bytes) -> None:
    # Written whole under another name, then renamed over: a crash never leaves half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with os.fdopen(open_private(tmp), "wb") as f:
        f.write(data)
    os.replace(tmp, path)
