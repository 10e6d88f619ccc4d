"""Settings of the ``oidc`` auth backend (``[auth.backend_options.oidc]``)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

#: Signature algorithms an ID token may use: public-key ones only (never ``none``; HS256 would
#: make the client secret a signing key).
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                         "EdDSA")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OidcAuthConfig(BaseModel):
    """Where the OpenID provider is, how Valt authenticates to it, and how its claims map to Valt."""

    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(
        description="The provider's issuer identifier, exactly as its discovery document states it, e.g. "
                    "https://sso.example.org/realms/clinic. The discovery document is read from "
                    "ISSUER/.well-known/openid-configuration. https only (plain http to a loopback "
                    "address is allowed for a provider on the same machine).")
    client_id: str = Field(min_length=1, description="The client ID Valt is registered with at the provider.")
    client_secret: SecretStr | None = Field(
        None, description="The client secret. Prefer client_secret_file; exactly one of the two is needed.")
    client_secret_file: Path | None = Field(
        None, description="A file holding the client secret (surrounding whitespace ignored); read at start-up.")
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] = Field(
        "client_secret_basic",
        description="How the secret is sent to the token endpoint: HTTP Basic authentication, or in the form body.")
    sign_in_label: str = Field(
        "Sign in with single sign-on", min_length=1, max_length=80,
        description="The text of the login page's button, e.g. \"Sign in with Contoso\".")
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "profile", "email"],
        description="Scopes asked for; must include openid. Add the scope that releases the groups claim "
                    "if the provider needs one (e.g. \"groups\").")
    username_claim: str = Field(
        "preferred_username",
        description="The claim that becomes the Valt user name; \"sub\" when the provider does not send it.")
    groups_claim: str = Field(
        "groups",
        description="The claim listing the person's groups at the provider (a list, or one string). A dotted "
                    "name such as realm_access.roles reaches into nested objects when no claim has that name.")
    group_map: dict[str, str] = Field(
        default_factory=dict,
        description="Provider group -> Valt group name. Provider groups not listed are ignored. Empty: Valt "
                    "leaves people's groups to its admins.")
    fetch_userinfo: bool = Field(
        True, description="Also read the userinfo endpoint, for claims the provider leaves out of the ID token.")
    id_token_algorithms: list[str] = Field(
        default_factory=lambda: list(ASYMMETRIC_ALGORITHMS),
        description="Signature algorithms accepted on ID tokens (public-key algorithms only).")
    clock_skew_s: int = Field(
        60, ge=0, le=300, description="Clock difference with the provider tolerated on the ID token's times.")
    timeout_s: float = Field(10.0, gt=0, le=120, description="Time limit of each call to the provider.")
    metadata_cache_s: float = Field(
        3600.0, ge=0,
        description="How long the discovery document and the provider's keys are reused before being read "
                    "again. A token signed with a key not yet seen makes Valt read them again at once.")
    ca_file: Path | None = Field(
        None, description="PEM file of the CA that signed the provider's certificate, when it is not a public CA.")

    @field_validator("issuer")
    @classmethod
    def _https_issuer(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            pass
        elif parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
            pass
        else:
            raise ValueError("must be an https:// URL (http:// only to a loopback address)")
        if parts.query or parts.fragment:
            raise ValueError("must have no query or fragment")
        return value

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("must include openid")
        if any(not s or " " in s for s in value):
            raise ValueError("each scope is one word")
        return value

    @field_validator("id_token_algorithms")
    @classmethod
    def _public_key_algorithms(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if a not in ASYMMETRIC_ALGORITHMS]
        if bad or not value:
            raise ValueError(f"choose from {', '.join(ASYMMETRIC_ALGORITHMS)}")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> "OidcAuthConfig":
        if (self.client_secret is None) == (self.client_secret_file is None):
            raise ValueError("set exactly one of client_secret and client_secret_file")
        return self

    def secret(self) -> str:
        """The client secret, from the setting or its file."""
        if self.client_secret is not None:
            return self.client_secret.get_secret_value()
        assert self.client_secret_file is not None
        try:
            value = self.client_secret_file.read_text().strip()
        except OSError as err:
            raise ValueError(f"client_secret_file {self.client_secret_file}: {err.strerror}") from err
        if not value:
            raise ValueError(f"client_secret_file {self.client_secret_file} is empty")
        return value
