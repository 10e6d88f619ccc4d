"""A SAML 2.0 identity provider for tests: pysaml2's ``Server`` behind a small HTTP server.

It listens on a free 127.0.0.1 port in a thread of the test process and does what a real IdP
does for an SP-initiated sign-in: ``GET /sso/redirect`` takes a signed AuthnRequest by the
HTTP-Redirect binding (pysaml2 checks its signature against the SP's metadata) and shows a login
form; ``POST /login`` checks the password and answers with a page that posts a signed
``SAMLResponse`` (and the RelayState) to the SP's ACS URL, as a browser would. ``GET /metadata``
serves the IdP's metadata, which the SP reads.

For the refusal tests it can also make the answers no honest IdP sends to this SP:
:meth:`SamlIdp.respond` with another audience, an assertion already expired, no signature, or
InResponseTo naming another request (or none: an unsolicited, IdP-initiated answer), and
:func:`tampered` changes a signed answer after signing.

Keys and certificates are made at test time (:func:`make_key_pair`) and thrown away after.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAME_FORMAT_BASIC, NAMEID_FORMAT_UNSPECIFIED, NameID
from saml2.server import Server
from saml2.sigver import get_xmlsec_binary
from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256

from .nats import free_port

PASSWORD_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"


@dataclass(frozen=True)
class KeyPair:
    """A PEM private key and its self-signed certificate, as files."""

    key: Path
    cert: Path

    def cert_base64(self) -> str:
        """The certificate's DER in base64, as it appears in SAML metadata and signatures."""
        text = self.cert.read_text()
        return "".join(line for line in text.splitlines() if "CERTIFICATE" not in line)


def make_key_pair(directory: Path, name: str) -> KeyPair:
    """A fresh RSA-2048 key and a one-day self-signed certificate for ``name`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pair = KeyPair(directory / f"{name}-key.pem", directory / f"{name}-cert.pem")
    pair.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    pair.key.chmod(0o600)
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pair


@dataclass
class IdpUser:
    """A person the IdP knows: a password and the attributes it asserts."""

    password: str
    groups: list[str] = field(default_factory=list)
    display_name: str = ""
    email: str = ""

    def attributes(self) -> dict[str, list[str]]:
        """The attribute statement for this person (basic name format, as many IdPs send)."""
        attrs = {"groups": list(self.groups)}
        if self.display_name:
            attrs["displayName"] = [self.display_name]
        if self.email:
            attrs["mail"] = [self.email]
        return attrs


@dataclass(frozen=True)
class PendingRequest:
    """An AuthnRequest the IdP accepted and is waiting to answer."""

    request_id: str
    sp_entity_id: str
    acs_url: str
    relay_state: str


class SamlIdp:
    """pysaml2's IdP on ``http://127.0.0.1:PORT``; ``stop()`` ends it."""

    def __init__(self, directory: Path, keys: KeyPair | None = None) -> None:
        self.directory = directory
        self.keys = keys or make_key_pair(directory, "idp")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.entity_id = f"{self.base}/metadata"
        self.users: dict[str, IdpUser] = {}
        self._sp_metadata: dict[str, str] = {}
        self._pending: dict[str, PendingRequest] = {}
        self._servers: dict[int, Server] = {}
        self._lock = threading.Lock()
        self._xmlsec = get_xmlsec_binary(["/usr/bin", "/usr/local/bin"])
        self.metadata_file = directory / "idp-metadata.xml"
        self._publish_metadata()
        self._http = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._thread = threading.Thread(target=self._http.serve_forever, name="saml-idp", daemon=True)
        self._thread.start()

    # --- set-up --------------------------------------------------------------------------------

    def add_user(self, username: str, password: str, groups: list[str] | None = None,
                 display_name: str = "", email: str = "") -> None:
        """Let ``username`` sign in with ``password``; the IdP asserts these groups and names."""
        self.users[username] = IdpUser(password, list(groups or []), display_name, email)

    def trust_sp(self, sp_metadata: bytes | str) -> str:
        """Register an SP by its metadata (as an IdP admin uploads it); returns its entity ID."""
        text = sp_metadata.decode("utf-8") if isinstance(sp_metadata, bytes) else sp_metadata
        match = re.search(r'entityID="([^"]+)"', text)
        assert match, "SP metadata without an entityID"
        with self._lock:
            self._sp_metadata[html.unescape(match.group(1))] = text
            self._servers.clear()
        return html.unescape(match.group(1))

    def rotate_key(self) -> None:
        """Sign with a new key from now on, and publish only its certificate (a roll-over)."""
        with self._lock:
            self.keys = make_key_pair(self.directory / f"key-{secrets.token_hex(4)}", "idp")
            self._servers.clear()
        self._publish_metadata()

    def _publish_metadata(self) -> None:
        self.metadata_xml = create_metadata_string(None, config=self._config(900, with_sps=False),
                                                   valid=None, sign=False).decode("utf-8")
        self.metadata_file.write_text(self.metadata_xml)

    def stop(self) -> None:
        """Stop serving."""
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(5)

    # --- the IdP's work ------------------------------------------------------------------------

    def accept_request(self, query: str) -> PendingRequest:
        """Parse and check a signed HTTP-Redirect AuthnRequest (the query string of /sso/redirect)."""
        args = {k: v[0] for k, v in parse_qs(query).items()}
        server = self._server(900)
        parsed = server.parse_authn_request(args["SAMLRequest"], BINDING_HTTP_REDIRECT,
                                            relay_state=args.get("RelayState"),
                                            sigalg=args.get("SigAlg"), signature=args.get("Signature"))
        if not args.get("Signature"):
            raise ValueError("unsigned AuthnRequest")
        request = parsed.message
        reply_to = server.response_args(request, [BINDING_HTTP_POST])
        pending = PendingRequest(request.id, reply_to["sp_entity_id"], reply_to["destination"],
                                 args.get("RelayState", ""))
        with self._lock:
            self._pending[pending.request_id] = pending
        return pending

    def respond(self, request: PendingRequest | None, username: str, *, acs_url: str = "",
                sp_entity_id: str = "", in_response_to: str | None = "", valid_seconds: int = 900,
                sign_assertion: bool = True, sign_response: bool = False, encrypt: bool = False,
                sha1: bool = False) -> str:
        """A base64 SAMLResponse for ``username`` answering ``request``.

        The keyword arguments make the wrong answers: another ``sp_entity_id`` (audience),
        ``in_response_to`` another ID or ``None`` (unsolicited; then ``request`` may be ``None``
        and ``acs_url`` and ``sp_entity_id`` say where it goes), a short ``valid_seconds``
        (to arrive expired), no signatures at all. ``encrypt`` encrypts the assertion to the
        SP's encryption certificate from its metadata; ``sha1`` signs with RSA-SHA1 (as an old
        ADFS relying party may be set to).
        """
        user = self.users[username]
        if in_response_to == "":
            assert request is not None
            in_response_to = request.request_id
        acs_url = acs_url or (request.acs_url if request else "")
        sp_entity_id = sp_entity_id or (request.sp_entity_id if request else "")
        server = self._server(valid_seconds)
        response = server.create_authn_response(
            user.attributes(), in_response_to, acs_url, sp_entity_id,
            name_id=NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=username),
            authn={"class_ref": PASSWORD_CONTEXT, "authn_auth": self.entity_id},
            sign_assertion=sign_assertion, sign_response=sign_response,
            sign_alg=SIG_RSA_SHA1 if sha1 else SIG_RSA_SHA256, digest_alg=DIGEST_SHA1 if sha1 else DIGEST_SHA256,
            encrypt_assertion=encrypt)
        return base64.b64encode(str(response).encode("utf-8")).decode("ascii")

    def refuse(self, request: PendingRequest, signed: bool = True) -> str:
        """A base64 SAMLResponse saying the sign-in failed (as when the person cancels at the IdP)."""
        response = self._server(900).create_error_response(
            request.request_id, request.acs_url,
            ("urn:oasis:names:tc:SAML:2.0:status:Responder", "The person cancelled the sign-in"),
            sign=signed, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
        return base64.b64encode(str(response).encode("utf-8")).decode("ascii")

    def _server(self, valid_seconds: int) -> Server:
        with self._lock:
            server = self._servers.get(valid_seconds)
            if server is None:
                server = self._servers[valid_seconds] = Server(config=self._config(valid_seconds))
            return server

    def _config(self, valid_seconds: int, with_sps: bool = True) -> IdPConfig:
        conf = IdPConfig()
        conf.load({
            "entityid": self.entity_id,
            "xmlsec_binary": self._xmlsec,
            "crypto_backend": "xmlsec1",
            "key_file": str(self.keys.key),
            "cert_file": str(self.keys.cert),
            "metadata": {"inline": list(self._sp_metadata.values())} if with_sps and self._sp_metadata else {},
            "service": {"idp": {
                "endpoints": {"single_sign_on_service": [(f"{self.base}/sso/redirect", BINDING_HTTP_REDIRECT)]},
                "want_authn_requests_signed": True,
                "sign_assertion": True,
                "policy": {"default": {
                    "lifetime": {"seconds": valid_seconds},
                    "attribute_restrictions": None,
                    "name_form": NAME_FORMAT_BASIC,
                }},
            }},
        })
        return conf

    def login_page(self, ticket: str, error: str = "") -> str:
        """The IdP's own sign-in form for a pending request."""
        note = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        return f"""<!DOCTYPE html><html><head><title>Test IdP sign-in</title></head><body>
<h1>Test identity provider</h1>{note}
<form method="post" action="/login">
<input type="hidden" name="ticket" value="{html.escape(ticket)}">
<label>User name <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form></body></html>"""

    def login(self, ticket: str, username: str, password: str) -> tuple[PendingRequest, str] | None:
        """Check the form's password; the request it answers and the SAMLResponse, or ``None``."""
        user = self.users.get(username)
        if user is None or not secrets.compare_digest(user.password.encode(), password.encode()):
            return None
        with self._lock:
            request = self._pending.pop(ticket, None)
        if request is None:
            raise KeyError("no such pending request")
        return request, self.respond(request, username)


def post_form_page(acs_url: str, saml_response: str, relay_state: str) -> str:
    """The page that carries a response to the SP by the HTTP-POST binding (posts itself)."""
    return f"""<!DOCTYPE html><html><head><title>Signing you in</title></head>
<body onload="document.forms[0].submit()">
<form method="post" action="{html.escape(acs_url)}">
<input type="hidden" name="SAMLResponse" value="{html.escape(saml_response)}">
<input type="hidden" name="RelayState" value="{html.escape(relay_state)}">
<noscript><button type="submit">Continue</button></noscript>
</form></body></html>"""


def read_post_form(page: str) -> tuple[str, dict[str, str]]:
    """The action and the hidden fields of a page made by :func:`post_form_page` (what a browser posts)."""
    action = re.search(r'<form method="post" action="([^"]*)"', page)
    assert action, "no form in the IdP's answer"
    fields = {html.unescape(n): html.unescape(v)
              for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}
    return html.unescape(action.group(1)), fields


def tampered(saml_response: str, old: str, new: str) -> str:
    """``saml_response`` with the text ``old`` replaced by ``new`` after it was signed."""
    xml = base64.b64decode(saml_response).decode("utf-8")
    assert old in xml, f"{old!r} is not in the response"
    return base64.b64encode(xml.replace(old, new).encode("utf-8")).decode("ascii")


def _handler(idp: SamlIdp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            return

        def _send(self, status: int, body: str, media_type: str = "text/html; charset=utf-8") -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", media_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            if url.path == "/metadata":
                self._send(200, idp.metadata_xml, "application/samlmetadata+xml")
            elif url.path == "/sso/redirect":
                try:
                    request = idp.accept_request(url.query)
                except Exception as err:  # noqa: BLE001 - any bad request is a 400 page, as at a real IdP
                    self._send(400, f"<p>Bad AuthnRequest: {html.escape(type(err).__name__)}</p>")
                    return
                self._send(200, idp.login_page(request.request_id))
            else:
                self._send(404, "<p>Not found</p>")

        def do_POST(self):  # noqa: N802 - http.server's name
            if urlsplit(self.path).path != "/login":
                self._send(404, "<p>Not found</p>")
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("utf-8")).items()}
            ticket = form.get("ticket", "")
            try:
                answer = idp.login(ticket, form.get("username", ""), form.get("password", ""))
            except KeyError:
                self._send(400, "<p>This sign-in has expired; start again.</p>")
                return
            if answer is None:
                self._send(200, idp.login_page(ticket, "Wrong user name or password."))
                return
            request, saml_response = answer
            self._send(200, post_form_page(request.acs_url, saml_response, request.relay_state))

    return Handler
