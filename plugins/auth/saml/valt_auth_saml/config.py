"""Settings of the ``saml`` auth backend (``[auth.backend_options.saml]``)."""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, ConfigDict, Field, FilePath, field_validator, model_validator

#: Where the common identity providers put a person's groups: a plain name, the eduPerson
#: ``isMemberOf`` (Shibboleth) by friendly name and by OID, Entra ID's and ADFS's claim URIs.
DEFAULT_GROUP_ATTRIBUTES = [
    "groups",
    "isMemberOf",
    "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    "http://schemas.xmlsoap.org/claims/Group",
]
DEFAULT_DISPLAY_NAME_ATTRIBUTES = [
    "displayName",
    "urn:oid:2.16.840.1.113730.3.1.241",
    "http://schemas.microsoft.com/identity/claims/displayname",
]
DEFAULT_EMAIL_ATTRIBUTES = [
    "mail",
    "email",
    "urn:oid:0.9.2342.19200300.100.1.3",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
]


class SamlAuthConfig(BaseModel):
    """Valt as a SAML 2.0 service provider (SP) of one identity provider (IdP).

    An attribute is matched by its ``Name`` or its ``FriendlyName``, exactly.
    """

    model_config = ConfigDict(extra="forbid")

    sign_in_label: str = Field(
        "Sign in with single sign-on", min_length=1, max_length=80,
        description="Text of the login page's button that starts a SAML sign-in.")
    entity_id: str = Field(
        ..., min_length=1,
        description="Valt's SP entity ID, as registered at the IdP (the audience the IdP's assertions "
                    "must name); often the metadata URL, e.g. https://valt.example.org/auth/sso/saml/metadata.")
    sp_key_file: FilePath = Field(
        ..., description="PEM file of the SP's private RSA key: signs AuthnRequests and decrypts encrypted "
                         "assertions. Keep it readable by Valt only.")
    sp_cert_file: FilePath = Field(
        ..., description="PEM file of the certificate of that key, published in the SP metadata.")
    idp_metadata_file: FilePath | None = Field(
        None, description="The IdP's SAML metadata as a local XML file (set this or idp_metadata_url).")
    idp_metadata_url: str | None = Field(
        None, description="URL of the IdP's SAML metadata, read on first use and again every "
                          "metadata_refresh_hours; https, or http only to a loopback address.")
    idp_entity_id: str | None = Field(
        None, description="Entity ID of the IdP to use; needed only when the metadata describes more than one.")
    metadata_refresh_hours: float = Field(
        24.0, gt=0, description="How often metadata from idp_metadata_url (or a changed file) is read again, "
                                "so a rolled-over IdP signing certificate is picked up.")
    metadata_timeout_s: float = Field(
        10.0, gt=0, le=120, description="Time limit for fetching idp_metadata_url.")
    require_signed: Literal["assertion", "response", "either", "both"] = Field(
        "either", description="What the IdP must sign: the assertion, the whole response, either of them "
                              "(the default: Entra ID and ADFS sign assertions, Shibboleth the response) or both.")
    name_id_format: str | None = Field(
        None, description="NameID format asked for in the AuthnRequest's NameIDPolicy, e.g. "
                          "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress; unset leaves it to the IdP.")
    username_attribute: str | None = Field(
        None, description="Attribute whose (first) value is the Valt user name; unset: the assertion's NameID.")
    display_name_attributes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DISPLAY_NAME_ATTRIBUTES),
        description="Attributes tried in order for the person's display name.")
    email_attributes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EMAIL_ATTRIBUTES),
        description="Attributes tried in order for the person's e-mail address.")
    group_attributes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_GROUP_ATTRIBUTES),
        description="Attributes whose values are the person's IdP groups (all of them are read).")
    group_map: dict[str, str] = Field(
        default_factory=dict,
        description="IdP group (a value of a group attribute) -> Valt group name. Empty: Valt does not "
                    "manage these people's groups; set: their SAML-given memberships become exactly the "
                    "mapped groups at each sign-in (unmapped IdP groups are ignored).")
    clock_skew_s: int = Field(
        60, ge=0, le=600, description="Clock difference tolerated when checking an assertion's validity times.")

    @field_validator("idp_metadata_url")
    @classmethod
    def _safe_metadata_url(cls, url: str | None) -> str | None:
        # The metadata carries the keys that every signature is checked with: fetching it over
        # plain HTTP from another machine would let anyone on the path sign people in.
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname:
            return url
        if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
            return url
        raise ValueError("must be an https:// URL (http:// only to a loopback address)")

    @model_validator(mode="after")
    def _one_metadata_source(self) -> "SamlAuthConfig":
        if (self.idp_metadata_file is None) == (self.idp_metadata_url is None):
            raise ValueError("set exactly one of idp_metadata_file and idp_metadata_url")
        return self

    @model_validator(mode="after")
    def _key_matches_certificate(self) -> "SamlAuthConfig":
        # Said at start-up, in the settings' words, rather than at someone's first sign-in.
        try:
            key = serialization.load_pem_private_key(self.sp_key_file.read_bytes(), password=None)
        except (ValueError, TypeError, OSError) as err:
            raise ValueError("sp_key_file must be an unencrypted PEM private key") from err
        try:
            cert = x509.load_pem_x509_certificate(self.sp_cert_file.read_bytes())
        except (ValueError, OSError) as err:
            raise ValueError("sp_cert_file must be a PEM certificate") from err
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("sp_key_file must be an RSA key (SAML signatures here are RSA-SHA256)")
        if cert.public_key() != key.public_key():
            raise ValueError("sp_cert_file is not the certificate of sp_key_file")
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
