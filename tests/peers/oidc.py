"""A real OpenID provider for the oidc tests: npm ``oidc-provider`` on Node.js (tests/peers/oidc/).

:class:`OidcProvider` writes the provider's configuration (clients, seeded users with passwords
and groups, its signing keys) to a JSON file, starts ``node provider.mjs`` on a free loopback port
and waits until it listens. The signing keys are made here with joserfc, so a test holds the
provider's private key (to mint a token the provider would never issue) and can restart the
provider with a new key on the same port (key rotation). ``scripts/peers`` runs ``npm ci``.
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
from joserfc.jwk import RSAKey

from .nats import TlsFiles, free_port
from .process import stop_process

PEER_DIR = Path(__file__).resolve().parent / "oidc"


@dataclass(frozen=True)
class ProviderUser:
    """A person the provider knows: signs in with ``username`` and ``password``."""

    username: str
    password: str
    name: str
    email: str
    groups: tuple[str, ...] = ()

    def config(self) -> dict:
        """This user as provider.mjs reads it."""
        return {"username": self.username, "password": self.password, "name": self.name,
                "email": self.email, "groups": list(self.groups)}


@dataclass(frozen=True)
class ProviderClient:
    """A relying party registered at the provider."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    token_endpoint_auth_method: str = "client_secret_basic"

    def config(self) -> dict:
        """This client as oidc-provider's client metadata."""
        return {"client_id": self.client_id, "client_secret": self.client_secret,
                "redirect_uris": list(self.redirect_uris),
                "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
                "token_endpoint_auth_method": self.token_endpoint_auth_method}


#: The people every provider is seeded with.
USERS = (
    ProviderUser("olivia", "olivia's provider pw", "Olivia Observer", "olivia@example.test",
                 ("idp-observers", "idp-staff")),
    ProviderUser("ivan", "ivan's provider pw", "Ivan Interviewer", "ivan@example.test",
                 ("idp-interviewers", "idp-unmapped")),
    ProviderUser("nadia", "nadia's provider pw", "Nadia Nogroup", "nadia@example.test", ()),
)


def new_signing_key() -> RSAKey:
    """A fresh RS256 signing key with a kid of its own."""
    return RSAKey.generate_key(2048, parameters={"kid": f"test-{uuid.uuid4().hex[:12]}", "use": "sig",
                                                 "alg": "RS256"})


def node_binary() -> str:
    """The ``node`` the provider runs on; missing Node.js is an error (scripts/peers installs it)."""
    found = shutil.which("node")
    if found is None:
        raise RuntimeError("node is not installed: scripts/peers needs Node.js and npm for the OIDC provider")
    if not (PEER_DIR / "node_modules" / "oidc-provider").is_dir():
        raise RuntimeError("oidc-provider is not installed in tests/peers/oidc: run scripts/peers (npm ci)")
    return found


@dataclass
class OidcProvider:
    """``oidc-provider`` on 127.0.0.1 with ``clients`` and :data:`USERS`; started at construction.

    ``issuer`` is its base URL (discovery at ``/.well-known/openid-configuration``); with ``tls``
    it speaks HTTPS only, with a certificate from that test CA.
    :meth:`rotate_key` restarts it on the same port signing with a new key only.
    """

    directory: Path
    clients: list[ProviderClient]
    users: tuple[ProviderUser, ...] = USERS
    claims_in_id_token: bool = False
    tls: TlsFiles | None = None
    port: int = field(default_factory=free_port)
    signing_key: RSAKey = field(default_factory=new_signing_key)
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_file = self.directory / "provider.json"
        self.log_file = self.directory / "provider.log"
        self.start()

    @property
    def issuer(self) -> str:
        """The provider's issuer identifier (also its base URL)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        config = {
            "port": self.port,
            "issuer": self.issuer,
            "clients": [c.config() for c in self.clients],
            "users": [u.config() for u in self.users],
            "jwks": {"keys": [self.signing_key.as_dict(private=True)]},
            "claims_in_id_token": self.claims_in_id_token,
        }
        if self.tls is not None:
            config["tls"] = {"cert": str(self.tls.cert), "key": str(self.tls.key)}
        self.config_file.write_text(json.dumps(config, indent=1))
        self.config_file.chmod(0o600)

    def start(self) -> None:
        """Start the provider and wait (up to 20 s) until its discovery document answers."""
        node = node_binary()
        self._write_config()
        log = open(self.log_file, "ab")
        try:
            self.proc = subprocess.Popen([node, str(PEER_DIR / "provider.mjs"), str(self.config_file)],
                                         cwd=PEER_DIR, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + 20
        url = f"{self.issuer}/.well-known/openid-configuration"
        tls = ssl.create_default_context(cafile=str(self.tls.ca_cert)) if self.tls else None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"oidc-provider exited: {self.log_file.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=1, context=tls) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"oidc-provider did not answer within 20 s: {self.log_file.read_text()[-2000:]}")

    def stop(self) -> None:
        """Stop the provider (SIGTERM, then SIGKILL after 5 s)."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def rotate_key(self) -> RSAKey:
        """Restart on the same port signing with a brand-new key (the old one is no longer published)."""
        self.stop()
        self.signing_key = new_signing_key()
        self.start()
        return self.signing_key


_FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')


async def sign_in_at_provider(url: str, username: str, password: str, callback_url: str, *,
                              cancel: bool = False, verify: ssl.SSLContext | bool = True) -> dict[str, str]:
    """Be a browser at the provider: follow ``url`` to its login form, sign in (or Cancel), and
    follow the redirects until one goes to ``callback_url``; return that redirect's query.

    Raises ``AssertionError`` when the provider shows its form again (a wrong password).
    ``verify`` trusts a provider with a test CA's certificate.
    """
    async with httpx.AsyncClient(follow_redirects=False, timeout=10, verify=verify) as browser:
        answer = await browser.get(url)
        for _ in range(12):
            if answer.is_redirect:
                target = urljoin(str(answer.url), answer.headers["location"])
                if target.split("?")[0] == callback_url:
                    return dict(parse_qsl(urlsplit(target).query))
                answer = await browser.get(target)
            elif answer.status_code == 200 and (action := _FORM_ACTION.search(answer.text)):
                if "Wrong user name or password" in answer.text:
                    raise AssertionError(f"the provider refused {username}'s password")
                form = {"login": username, "password": password, **({"cancel": "1"} if cancel else {})}
                answer = await browser.post(urljoin(str(answer.url), action.group(1)), data=form)
            else:
                raise AssertionError(f"unexpected answer from the provider: HTTP {answer.status_code} "
                                     f"{answer.text[:500]}")
        raise AssertionError("too many redirects at the provider")
