"""The ``oidc`` auth backend: Valt's redirect sign-in contract on top of :class:`OidcClient`."""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Mapping
from typing import Any

from authlib.common.security import generate_token

from valt_core.auth import AuthBackend, Identity, SignInRefused, SignInStart
from valt_core.errors import ConfigError

from .client import AUTHORIZE_ERRORS, OidcClient, ProviderError
from .config import OidcAuthConfig

log = logging.getLogger(__name__)

_ERROR_CODE = re.compile(r"[a-z_]{1,64}")
#: The users table's limit on user names.
MAX_USERNAME = 150


def claim_value(claims: Mapping[str, Any], name: str) -> Any:
    """The claim ``name``; a dotted name not present as such walks nested objects (``realm_access.roles``)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def map_groups(value: Any, mapping: Mapping[str, str]) -> tuple[str, ...]:
    """The Valt groups the provider's group list ``value`` maps to (sorted, each once).

    ``value`` is the claim as sent: a list of names, or one name; provider groups the mapping
    does not list are ignored, and so is anything that is not a string.
    """
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(sorted({mapping[g] for g in value if isinstance(g, str) and g in mapping}))


def identity_from_claims(claims: Mapping[str, Any], config: OidcAuthConfig) -> Identity:
    """Who the claims say signed in: user name from ``username_claim`` (else ``sub``), groups mapped."""
    username = claim_value(claims, config.username_claim)
    if not isinstance(username, str) or not username.strip():
        username = claims.get("sub")
    if not isinstance(username, str) or not username.strip():
        raise SignInRefused("The identity provider did not say who signed in.")
    if len(username.strip()) > MAX_USERNAME:
        raise SignInRefused(f"The identity provider's user name is longer than Valt allows ({MAX_USERNAME}).")
    name, email = claims.get("name"), claims.get("email")
    groups = None
    if config.group_map:
        groups = map_groups(claim_value(claims, config.groups_claim), config.group_map)
    return Identity(username=username.strip(), display_name=name if isinstance(name, str) else "",
                    email=email if isinstance(email, str) else "", groups=groups)


class OidcAuthBackend(AuthBackend):
    """Sign-in at an OpenID Connect provider: authorization code flow with PKCE (S256)."""

    name = "oidc"
    Config = OidcAuthConfig
    checks_passwords = False
    sign_in_label = "Sign in with single sign-on"

    def __init__(self, config: OidcAuthConfig) -> None:
        super().__init__(config)
        self.sign_in_label = config.sign_in_label
        try:
            secret = config.secret()
        except ValueError as err:
            raise ConfigError(f"auth backend 'oidc': {err}") from err
        try:
            self.client = OidcClient(
                issuer=config.issuer, client_id=config.client_id, client_secret=secret,
                auth_method=config.token_endpoint_auth_method, algorithms=config.id_token_algorithms,
                leeway_s=config.clock_skew_s, timeout_s=config.timeout_s, cache_s=config.metadata_cache_s,
                ca_file=str(config.ca_file) if config.ca_file else None)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(f"auth backend 'oidc': ca_file {config.ca_file}: {err}") from err

    async def begin_sign_in(self, callback_url: str, state: str) -> SignInStart:
        """The provider's authorization URL (with ``state``, a nonce and a PKCE challenge) and the flow."""
        try:
            metadata = await self.client.metadata()
        except ProviderError as err:
            raise self._refused(err) from err
        # 43-128 characters of the unreserved set (RFC 7636, 4.1); generate_token uses letters and digits.
        verifier, nonce = generate_token(64), generate_token(32)
        url = self.client.authorization_url(metadata, redirect_uri=callback_url, scopes=self.config.scopes,
                                            state=state, nonce=nonce, code_verifier=verifier)
        return SignInStart(url=url, flow={"code_verifier": verifier, "nonce": nonce, "redirect_uri": callback_url})

    async def finish_sign_in(self, callback_url: str, params: Mapping[str, str],
                             flow: Mapping[str, str]) -> Identity:
        """Exchange the code, check the ID token (and read userinfo), and say who signed in."""
        error = params.get("error")
        if error is not None:
            log.warning("oidc: the provider answered %s: %s", error, params.get("error_description", ""))
            code = error if _ERROR_CODE.fullmatch(error) else "error"
            raise SignInRefused(AUTHORIZE_ERRORS.get(code, f"The identity provider refused the sign-in ({code})."))
        code = params.get("code")
        if not code:
            raise SignInRefused("The identity provider's answer has no sign-in code.")
        try:
            return await self._finish(code, params, flow, flow.get("redirect_uri") or callback_url)
        except ProviderError as err:
            raise self._refused(err) from err

    async def _finish(self, code: str, params: Mapping[str, str], flow: Mapping[str, str],
                      redirect_uri: str) -> Identity:
        metadata = await self.client.metadata()
        self.client.check_callback_issuer(metadata, params)
        token = await self.client.exchange_code(metadata, code=code, redirect_uri=redirect_uri,
                                                code_verifier=flow["code_verifier"])
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise ProviderError("The identity provider sent no identity token (is the openid scope allowed?).")
        claims = await self.client.verify_id_token(id_token, flow["nonce"])
        access_token = token.get("access_token")
        if self.config.fetch_userinfo and metadata.userinfo_endpoint and isinstance(access_token, str):
            info = await self.client.userinfo(metadata, access_token, claims["sub"])
            # The ID token's (signed) claims win where both have one.
            claims = {**info, **claims}
        identity = identity_from_claims(claims, self.config)
        log.info("oidc: %s signed in (sub %s, groups %s)", identity.username, claims["sub"], identity.groups)
        return identity

    async def sign_out_url(self, identity_hint: str, return_url: str) -> str | None:
        """The provider's end_session_endpoint coming back to ``return_url``, when it has one."""
        try:
            metadata = await self.client.metadata()
        except ProviderError as err:
            log.warning("oidc: no provider sign-out: %s (%s)", err.message, err.detail)
            return None
        return self.client.end_session_url(metadata, return_url=return_url, logout_hint=identity_hint)

    @staticmethod
    def _refused(err: ProviderError) -> SignInRefused:
        log.warning("oidc: sign-in refused: %s%s", err.message, f" ({err.detail})" if err.detail else "")
        return SignInRefused(err.message)
