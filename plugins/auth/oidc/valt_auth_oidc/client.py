"""The OpenID Connect relying party: discovery, the authorization URL, the token endpoint, ID token
checks and userinfo. No Valt imports: errors are :class:`ProviderError` with a message for people.

authlib builds the OAuth 2.0 messages (the authorization request with its PKCE challenge, the
token request and client_secret_post); httpx sends them, each call under ``timeout_s``; joserfc
checks the ID token (signature against the provider's JWKS, then the claims).
"""

from __future__ import annotations

import base64
import logging
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import httpx
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

log = logging.getLogger(__name__)

#: Plain words for the OAuth error codes a provider may send back to the callback.
AUTHORIZE_ERRORS = {
    "access_denied": "The identity provider did not let you sign in (access denied).",
    "login_required": "The identity provider asks you to sign in there first.",
    "consent_required": "The identity provider needs your consent before you can sign in.",
    "interaction_required": "The identity provider needs you to do something there before you can sign in.",
    "account_selection_required": "The identity provider asks you to choose an account first.",
    "temporarily_unavailable": "The identity provider is temporarily unavailable. Try again in a moment.",
    "server_error": "The identity provider failed while signing you in. Try again in a moment.",
}


class ProviderError(Exception):
    """A sign-in the provider's answer does not allow. ``message`` is for the person signing in
    (never a token, code or secret); ``detail`` adds what an admin needs, for the log."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


@dataclass(frozen=True)
class ProviderMetadata:
    """What Valt uses of the provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    iss_parameter_supported: bool

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], expected_issuer: str) -> "ProviderMetadata":
        """Check a discovery document (OpenID Connect Discovery 1.0, section 4.3) and keep its endpoints."""
        if doc.get("issuer") != expected_issuer:
            raise ProviderError("The identity provider is set up wrongly in Valt (issuer mismatch).",
                                f"discovery names issuer {doc.get('issuer')!r}, settings say {expected_issuer!r}")
        missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")
                   if not isinstance(doc.get(k), str)]
        if missing:
            raise ProviderError("The identity provider's discovery document is incomplete.",
                                f"missing {', '.join(missing)}")
        return cls(
            issuer=doc["issuer"],
            authorization_endpoint=doc["authorization_endpoint"],
            token_endpoint=doc["token_endpoint"],
            jwks_uri=doc["jwks_uri"],
            userinfo_endpoint=doc.get("userinfo_endpoint") or None,
            end_session_endpoint=doc.get("end_session_endpoint") or None,
            iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported") is True,
        )


def signing_keys(jwks: Mapping[str, Any]) -> KeySet:
    """The signature keys of a JWKS document; encryption keys and kinds joserfc cannot read are left out."""
    usable = []
    for key in jwks.get("keys") or ():
        if not isinstance(key, dict) or key.get("use", "sig") != "sig":
            continue
        try:
            KeySet.import_key_set({"keys": [key]})
        except (JoseError, ValueError, TypeError) as err:
            log.info("oidc: ignoring a provider key (kid %r) joserfc cannot use: %s", key.get("kid"), err)
            continue
        usable.append(key)
    if not usable:
        raise ProviderError("The identity provider publishes no key Valt can check signatures with.")
    return KeySet.import_key_set({"keys": usable})


@dataclass
class _Cached:
    metadata: ProviderMetadata
    keys: KeySet | None
    fetched_at: float


class OidcClient:
    """One relying party registration at one provider. Safe to share between requests: each call
    opens its own HTTP client, and the discovery document and keys are cached for ``cache_s``."""

    def __init__(self, *, issuer: str, client_id: str, client_secret: str, auth_method: str,
                 algorithms: Sequence[str], leeway_s: int, timeout_s: float, cache_s: float,
                 ca_file: str | None = None) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self._client_secret = client_secret
        self.auth_method = auth_method
        self.algorithms = tuple(algorithms)
        self.leeway_s = leeway_s
        self.timeout = httpx.Timeout(timeout_s)
        self.cache_s = cache_s
        self.verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._cached: _Cached | None = None
        self.fetches = 0
        """How many times the discovery document was read (the tests watch key rotation with it)."""

    # --- discovery and keys --------------------------------------------------------------------

    async def _get_json(self, url: str, what: str, headers: Mapping[str, str] | None = None) -> Any:
        try:
            async with httpx.AsyncClient(timeout=self.timeout, verify=self.verify) as http:
                answer = await http.get(url, headers={"Accept": "application/json", **(headers or {})})
        except httpx.HTTPError as err:
            raise _unreachable(err, f"{what} {url}") from err
        if answer.status_code != 200:
            raise ProviderError(f"The identity provider's {what} failed (HTTP {answer.status_code}).",
                                f"{what} {url}: HTTP {answer.status_code}")
        try:
            return answer.json()
        except ValueError as err:
            raise ProviderError(f"The identity provider's {what} is not JSON.", f"{what} {url}") from err

    async def _fetch(self) -> _Cached:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = await self._get_json(url, "discovery document")
        if not isinstance(doc, dict):
            raise ProviderError("The identity provider's discovery document is not a JSON object.", url)
        metadata = ProviderMetadata.from_document(doc, self.issuer)
        self.fetches += 1
        self._cached = _Cached(metadata, None, time.monotonic())
        return self._cached

    async def _current(self, refresh: bool = False) -> _Cached:
        cached = self._cached
        if refresh or cached is None or time.monotonic() - cached.fetched_at > self.cache_s:
            cached = await self._fetch()
        return cached

    async def metadata(self) -> ProviderMetadata:
        """The discovery document's endpoints (read again once ``cache_s`` has passed)."""
        return (await self._current()).metadata

    async def _keys(self, refresh: bool) -> KeySet:
        cached = await self._current(refresh)
        if cached.keys is None:
            jwks = await self._get_json(cached.metadata.jwks_uri, "key set")
            if not isinstance(jwks, dict):
                raise ProviderError("The identity provider's key set is not a JSON object.")
            cached.keys = signing_keys(jwks)
        return cached.keys

    # --- the flow ------------------------------------------------------------------------------

    def authorization_url(self, metadata: ProviderMetadata, *, redirect_uri: str, scopes: Sequence[str],
                          state: str, nonce: str, code_verifier: str) -> str:
        """Where the browser goes: an authorization code request with PKCE (S256) and a nonce."""
        return prepare_grant_uri(
            metadata.authorization_endpoint, self.client_id, "code", redirect_uri=redirect_uri,
            scope=" ".join(scopes), state=state, nonce=nonce,
            code_challenge=create_s256_code_challenge(code_verifier), code_challenge_method="S256")

    def check_callback_issuer(self, metadata: ProviderMetadata, params: Mapping[str, str]) -> None:
        """RFC 9207: the ``iss`` the provider sends with its answer must be this provider (mix-up defence)."""
        iss = params.get("iss")
        if iss is None:
            if metadata.iss_parameter_supported:
                raise ProviderError("The sign-in answer did not say which provider sent it.",
                                    "callback without iss, though the provider announces RFC 9207")
        elif iss != metadata.issuer:
            raise ProviderError("The sign-in answer came from another identity provider.",
                                f"callback iss {iss!r}, expected {metadata.issuer!r}")

    async def exchange_code(self, metadata: ProviderMetadata, *, code: str, redirect_uri: str,
                            code_verifier: str) -> dict[str, Any]:
        """The token endpoint's answer for ``code`` (with the PKCE verifier and the client secret)."""
        body = prepare_token_request("authorization_code", code=code, redirect_uri=redirect_uri,
                                     code_verifier=code_verifier)
        headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
        if self.auth_method == "client_secret_basic":
            # RFC 6749, 2.3.1: both halves form-encoded before Base64 (authlib's encoder skips that,
            # which breaks secrets holding '%' or '+').
            pair = f"{quote_plus(self.client_id)}:{quote_plus(self._client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            _, headers, body = ClientAuth(self.client_id, self._client_secret, self.auth_method).prepare(
                "POST", metadata.token_endpoint, headers, body)
        try:
            async with httpx.AsyncClient(timeout=self.timeout, verify=self.verify) as http:
                answer = await http.post(metadata.token_endpoint, content=body.encode(), headers=headers)
        except httpx.HTTPError as err:
            raise _unreachable(err, "token endpoint") from err
        try:
            token = answer.json()
        except ValueError:
            token = None
        if isinstance(token, dict) and "error" in token:
            raise _token_error(str(token["error"]), str(token.get("error_description") or ""))
        if answer.status_code != 200 or not isinstance(token, dict):
            raise ProviderError(f"The identity provider's token endpoint failed (HTTP {answer.status_code}).",
                                metadata.token_endpoint)
        return token

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of ``id_token`` once its signature, issuer, audience, times and nonce are right.

        The signature is checked against the provider's published keys; a key ID not among them
        makes the keys be read again once (the provider rotated its key), before refusing.
        """
        try:
            header = jws.extract_compact(id_token.encode()).headers()
        except (JoseError, ValueError, TypeError) as err:
            raise ProviderError("The identity provider sent an identity token Valt cannot read.",
                                f"{type(err).__name__}: {err}") from err
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise ProviderError("The identity token is signed with an algorithm Valt does not accept.",
                                f"alg {alg!r}; accepted: {', '.join(self.algorithms)}")
        kid = header.get("kid")
        key = pick_key(await self._keys(refresh=False), kid, alg)
        if key is None:
            # No rate limit needed: ID tokens come from the token endpoint over the back channel,
            # so a browser cannot make Valt read the keys again by sending made-up kids.
            log.info("oidc: ID token signed with unknown key %r; reading the provider's keys again", kid)
            key = pick_key(await self._keys(refresh=True), kid, alg)
        if key is None:
            raise ProviderError("The identity token is signed with a key the identity provider does not publish.",
                                f"kid {kid!r}")
        try:
            token = jwt.decode(id_token, key, algorithms=[alg])
        except BadSignatureError as err:
            raise ProviderError("The identity token's signature does not match the identity provider's key.",
                                f"kid {kid!r}") from err
        except (JoseError, ValueError) as err:
            raise ProviderError("The identity provider sent an identity token Valt cannot read.",
                                f"{type(err).__name__}: {err}") from err
        claims = token.claims
        self._check_claims(claims, nonce)
        return dict(claims)

    def _check_claims(self, claims: Mapping[str, Any], nonce: str) -> None:
        # One claim at a time, in this order, so the message names the first thing wrong.
        checks: list[tuple[str, dict[str, Any]]] = [
            ("iss", {"essential": True, "value": self.issuer}),
            ("aud", {"essential": True, "value": self.client_id}),
            ("sub", {"essential": True}),
            ("exp", {"essential": True}),
            ("iat", {"essential": True}),
            ("nonce", {"essential": True, "value": nonce}),
        ]
        for name, option in checks:
            try:
                jwt.JWTClaimsRegistry(leeway=self.leeway_s, **{name: option}).validate(dict(claims))
            except ExpiredTokenError as err:
                raise ProviderError("The identity token has expired. Check that this server's clock is right, "
                                    "then sign in again.", f"exp {claims.get('exp')}, now {int(time.time())}") from err
            except (InvalidClaimError, MissingClaimError) as err:
                raise _claim_error(err.claim, claims) from err
            except ClaimError as err:
                raise ProviderError("The identity token is not valid.", f"{err}") from err
        aud = claims["aud"]
        azp = claims.get("azp")
        if (isinstance(aud, list) and len(aud) > 1 and azp is None) or (azp is not None and azp != self.client_id):
            raise ProviderError("The identity token was issued for another application.",
                                f"azp {azp!r}, client_id {self.client_id!r}")

    async def userinfo(self, metadata: ProviderMetadata, access_token: str, sub: str) -> dict[str, Any]:
        """The userinfo endpoint's claims; its ``sub`` must be the ID token's (OIDC Core 5.3.2)."""
        assert metadata.userinfo_endpoint is not None
        info = await self._get_json(metadata.userinfo_endpoint, "userinfo endpoint",
                                    headers={"Authorization": f"Bearer {access_token}"})
        if not isinstance(info, dict):
            raise ProviderError("The identity provider's userinfo answer is not a JSON object.")
        if info.get("sub") != sub:
            raise ProviderError("The identity provider's userinfo answer is about someone else.",
                                "userinfo sub differs from the ID token's")
        return info

    def end_session_url(self, metadata: ProviderMetadata, *, return_url: str, logout_hint: str) -> str | None:
        """RP-initiated logout at the provider, coming back to ``return_url``; ``None`` if not offered."""
        if not metadata.end_session_endpoint:
            return None
        params = [("client_id", self.client_id), ("post_logout_redirect_uri", return_url)]
        if logout_hint:
            params.append(("logout_hint", logout_hint))
        return add_params_to_uri(metadata.end_session_endpoint, params)


def pick_key(keys: KeySet, kid: str | None, alg: str):
    """The key ``kid`` names; with no ``kid``, the only key of the algorithm's kind."""
    if kid is not None:
        try:
            return keys.get_by_kid(kid)
        except (JoseError, ValueError, KeyError):
            return None
    kty = "OKP" if alg == "EdDSA" else "EC" if alg.startswith("ES") else "RSA"
    candidates = [k for k in keys.keys if k.key_type == kty]
    return candidates[0] if len(candidates) == 1 else None


def _unreachable(err: httpx.HTTPError, what: str) -> ProviderError:
    detail = f"{what}: {type(err).__name__}: {err}"
    if "CERTIFICATE_VERIFY_FAILED" in str(err):
        return ProviderError("The identity provider's certificate is not trusted here "
                             "(an administrator may need to set ca_file).", detail)
    return ProviderError("The identity provider cannot be reached. Try again in a moment.", detail)


def _claim_error(claim: str, claims: Mapping[str, Any]) -> ProviderError:
    messages = {
        "iss": "The identity token was issued by another identity provider.",
        "aud": "The identity token was issued for another application (wrong audience).",
        "nonce": "The identity token does not belong to this sign-in (nonce mismatch). Sign in again.",
        "sub": "The identity token does not say who signed in.",
    }
    message = messages.get(claim, f"The identity token's {claim!r} claim is not valid.")
    # Issuer and audience are not secret: they say what an admin has to fix.
    detail = f"{claim} {claims.get(claim)!r}" if claim in ("iss", "aud") else claim
    return ProviderError(message, detail)


def _token_error(error: str, description: str) -> ProviderError:
    messages = {
        "invalid_grant": "The identity provider refused to complete this sign-in (invalid_grant). "
                         "Sign in again.",
        "invalid_client": "The identity provider did not accept Valt's client credentials (invalid_client). "
                          "Ask an administrator to check the oidc client settings.",
        "unauthorized_client": "The identity provider does not let Valt sign people in this way "
                               "(unauthorized_client).",
    }
    code = error if re.fullmatch(r"[a-z_]{1,64}", error) else "error"
    message = messages.get(code, f"The identity provider refused the sign-in ({code}).")
    return ProviderError(message, f"token endpoint: {error!r}: {description}")
