"""The SAML 2.0 service provider: pysaml2 (and its xmlsec1 binary) behind a small synchronous API.

Everything here blocks (file and network reads, xmlsec1 runs): the backend calls it in a thread.
Nothing here logs a message, an assertion or a key; pysaml2's own logger would, so the backend
quiets it.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, md
from saml2.cache import Cache
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.extension.algsupport import DigestMethod, SigningMethod
from saml2.metadata import entity_descriptor, metadata_tostring_fix
from saml2.response import (
    IncorrectlySigned,
    StatusError,
    UnsolicitedResponse,
    VerificationError,
)
from saml2.s_utils import UnravelError
from saml2.sigver import SigverError, get_xmlsec_binary
from saml2.validate import ResponseLifetimeExceed, ToEarly, valid_instance
from saml2.xmldsig import (
    DIGEST_SHA256,
    DIGEST_SHA384,
    DIGEST_SHA512,
    SIG_ECDSA_SHA256,
    SIG_ECDSA_SHA384,
    SIG_ECDSA_SHA512,
    SIG_RSA_SHA256,
    SIG_RSA_SHA384,
    SIG_RSA_SHA512,
)

from valt_core.auth import Identity, SignInRefused
from valt_core.errors import ConfigError

from .config import SamlAuthConfig

log = logging.getLogger(__name__)

#: Most ACS URLs a backend keeps a client for (one per host name Valt is reached by).
MAX_CLIENTS = 8
#: Signature and digest algorithms accepted from the IdP and offered in the SP metadata: SHA-2
#: only (xmlsec1 would verify SHA-1 and MD5 too, which can be forged or soon could be).
SIGNATURE_ALGORITHMS = (SIG_RSA_SHA256, SIG_RSA_SHA384, SIG_RSA_SHA512,
                        SIG_ECDSA_SHA256, SIG_ECDSA_SHA384, SIG_ECDSA_SHA512)
DIGEST_ALGORITHMS = (DIGEST_SHA256, DIGEST_SHA384, DIGEST_SHA512)


class _NoIdentityCache(Cache):
    """pysaml2 remembers every person it parsed a response for, forever; Valt keeps its own users."""

    def set(self, name_id, entity_id, info, not_on_or_after=0):  # noqa: D102 - pysaml2's signature
        return None


@dataclass
class _Metadata:
    xml: str
    read_at: float
    mtime: float | None


class ServiceProvider:
    """Valt's SP for one IdP: makes signed AuthnRequests, checks responses, writes SP metadata."""

    def __init__(self, config: SamlAuthConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock  # when the metadata is due to be read again
        self._lock = threading.Lock()
        self._metadata: _Metadata | None = None
        self._clients: dict[str, Saml2Client] = {}

    # --- the three things the backend asks for ----------------------------------------------

    def authn_request(self, acs_url: str, relay_state: str) -> tuple[str, str]:
        """A signed AuthnRequest for the HTTP-Redirect binding: ``(IdP URL with the request, request ID)``."""
        client = self.client(acs_url)
        request_id, info = client.prepare_for_authenticate(
            entityid=self.idp_entity_id(client),
            relay_state=relay_state,
            binding=BINDING_HTTP_REDIRECT,
            response_binding=BINDING_HTTP_POST,
            sign=True,
            sigalg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
            assertion_consumer_service_url=acs_url,
        )
        return dict(info["headers"])["Location"], request_id

    def read_response(self, acs_url: str, saml_response: str, request_id: str) -> Identity:
        """Check a base64 ``SAMLResponse`` posted to ``acs_url`` against the request it must answer.

        Raises :class:`SignInRefused` with words a person can act on for anything that must not
        sign someone in: a response to no request of ours, a bad or missing signature, an
        expired assertion, another audience, another recipient, the IdP's own refusal.
        """
        client = self.client(acs_url)
        idp = self.idp_entity_id(client)
        try:
            response = client.parse_authn_request_response(
                saml_response, BINDING_HTTP_POST, outstanding={request_id: acs_url})
        except Exception as err:  # noqa: BLE001 - pysaml2 raises bare Exception too; all are refusals
            raise _refusal(err) from None
        if response is not None and response.response.destination not in (None, acs_url):
            # pysaml2 then skips the assertion without saying why; say it.
            log.warning("SAML response refused: recipient (Destination)")
            raise SignInRefused(_ELSEWHERE)
        if response is None or response.assertion is None:
            log.warning("SAML response refused: no usable assertion")
            raise SignInRefused("The identity provider's answer holds no assertion Valt can use.")
        # pysaml2 checked these already; checked again here because they are what binds the
        # answer to this sign-in and this IdP. When only the assertion is signed, the response
        # around it is not: what counts is in the assertion (its subject confirmations'
        # InResponseTo and Recipient, its Issuer).
        assertion = response.assertion
        confirmations = [c.subject_confirmation_data for c in assertion.subject.subject_confirmation]
        if (response.in_response_to != request_id or not confirmations
                or any(c is None or c.in_response_to != request_id for c in confirmations)):
            log.warning("SAML response refused: unsolicited (InResponseTo)")
            raise SignInRefused(_UNSOLICITED)
        # pysaml2 accepts any bearer Recipient unless given its "conversation info": check it here.
        if {c.recipient for c in confirmations} != {acs_url}:
            log.warning("SAML response refused: recipient (SubjectConfirmationData)")
            raise SignInRefused(_ELSEWHERE)
        signatures = [sig for sig in (response.response.signature, assertion.signature) if sig is not None]
        if not all(_strong(sig) for sig in signatures):
            log.warning("SAML response refused: weak signature algorithm")
            raise SignInRefused("The identity provider signs with a weak algorithm (SHA-1 or older); "
                                "it must be set to sign with SHA-256.")
        issuers = {(assertion.issuer.text or "").strip() if assertion.issuer is not None else ""}
        if response.response.issuer is not None:
            issuers.add(response.issuer())
        if issuers != {idp}:
            log.warning("SAML response refused: issuer")
            raise SignInRefused("The answer did not come from the configured identity provider.")
        return self._identity(response)

    def sp_metadata(self, acs_url: str) -> bytes:
        """Valt's SP metadata (entity ID, ACS URL, signing and encryption certificate) as XML."""
        client = self.client(acs_url)
        descriptor = entity_descriptor(client.config)
        # pysaml2 would list every algorithm xmlsec1 knows (MD5 and SHA-1 among them): name the
        # ones accepted, so that an IdP choosing from the list picks one of those.
        descriptor.extensions = md.Extensions()
        for algorithm in DIGEST_ALGORITHMS:
            descriptor.extensions.add_extension_element(DigestMethod(algorithm=algorithm))
        for algorithm in SIGNATURE_ALGORITHMS:
            descriptor.extensions.add_extension_element(SigningMethod(algorithm=algorithm))
        valid_instance(descriptor)
        xml = metadata_tostring_fix(descriptor, {"xs": "http://www.w3.org/2001/XMLSchema"}, None)
        return xml if isinstance(xml, bytes) else xml.encode("utf-8")

    # --- building the pysaml2 client ---------------------------------------------------------

    def client(self, acs_url: str) -> Saml2Client:
        """The pysaml2 client for this ACS URL, rebuilt when the IdP metadata was read again."""
        with self._lock:
            if self._refresh_metadata():
                self._clients.clear()
            client = self._clients.get(acs_url)
            if client is None:
                if len(self._clients) >= MAX_CLIENTS:
                    self._clients.pop(next(iter(self._clients)))
                client = Saml2Client(self._sp_config(acs_url), identity_cache=_NoIdentityCache())
                self._clients[acs_url] = client
            return client

    def idp_entity_id(self, client: Saml2Client) -> str:
        """The configured IdP, or the only one the metadata describes."""
        known = sorted(client.metadata.identity_providers())
        wanted = self.config.idp_entity_id
        if wanted is not None:
            if wanted not in known:
                raise ConfigError(f"SAML: the IdP metadata does not describe {wanted!r} "
                                  f"(it describes: {', '.join(known) or 'no IdP'})")
            return wanted
        if len(known) != 1:
            raise ConfigError("SAML: the IdP metadata describes "
                              f"{len(known)} identity providers; set idp_entity_id to one of them")
        return known[0]

    def _sp_config(self, acs_url: str) -> SPConfig:
        c = self.config
        for label, path in (("sp_key_file", c.sp_key_file), ("sp_cert_file", c.sp_cert_file)):
            if not path.is_file():
                raise ConfigError(f"SAML: {label} {str(path)!r} is not a readable file")
        try:
            xmlsec = get_xmlsec_binary(["/usr/bin", "/usr/local/bin"])
        except Exception as err:  # noqa: BLE001 - pysaml2 raises SigverError or a bare Exception
            raise ConfigError("SAML needs the xmlsec1 program (Debian package xmlsec1)") from err
        assert self._metadata is not None
        want_assertion = c.require_signed in ("assertion", "both")
        want_response = c.require_signed in ("response", "both")
        sp = {
            "endpoints": {"assertion_consumer_service": [(acs_url, BINDING_HTTP_POST)]},
            "authn_requests_signed": True,
            "want_assertions_signed": want_assertion,
            "want_response_signed": want_response,
            "want_assertions_or_response_signed": c.require_signed == "either",
            "allow_unsolicited": False,
            "only_use_keys_in_metadata": True,
            "name_id_policy_format": c.name_id_format,
            "name_id_format_allow_create": c.name_id_format is not None,
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
        }
        conf = SPConfig()
        try:
            conf.load({
                "entityid": c.entity_id,
                "xmlsec_binary": xmlsec,
                "crypto_backend": "xmlsec1",
                "key_file": str(c.sp_key_file),
                "cert_file": str(c.sp_cert_file),
                "encryption_keypairs": [{"key_file": str(c.sp_key_file), "cert_file": str(c.sp_cert_file)}],
                "metadata": {"inline": [self._metadata.xml]},
                "allow_unknown_attributes": True,
                "accepted_time_diff": c.clock_skew_s,
                "service": {"sp": sp},
            })
        except Exception as err:  # noqa: BLE001 - a bad metadata document or key file, said plainly
            raise ConfigError("SAML: the SP settings or the IdP metadata cannot be used "
                              f"({type(err).__name__})") from err
        return conf

    def _refresh_metadata(self) -> bool:
        """Read the IdP metadata if never read, too old, or its file changed; True when it was read."""
        c = self.config
        now = self._clock()
        old = self._metadata
        if c.idp_metadata_file is not None:
            try:
                mtime = c.idp_metadata_file.stat().st_mtime
            except OSError as err:
                if old is not None:
                    return False  # keep what we have; the next look may find the file again
                raise ConfigError(f"SAML: cannot read idp_metadata_file {str(c.idp_metadata_file)!r}") from err
            if old is not None and old.mtime == mtime:
                return False
            self._metadata = _Metadata(c.idp_metadata_file.read_text(encoding="utf-8"), now, mtime)
            return True
        if old is not None and now - old.read_at < c.metadata_refresh_hours * 3600:
            return False
        assert c.idp_metadata_url is not None
        try:
            with urllib.request.urlopen(c.idp_metadata_url, timeout=c.metadata_timeout_s) as answer:
                xml = answer.read(16 << 20).decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            if old is not None:
                log.warning("SAML: IdP metadata could not be read again (%s); keeping the copy read before",
                            type(err).__name__)
                old.read_at = now  # try again at the next refresh, not on every sign-in
                return False
            raise ConfigError(f"SAML: cannot fetch the IdP metadata from {c.idp_metadata_url} "
                              f"({type(err).__name__})") from err
        self._metadata = _Metadata(xml, now, None)
        return True

    # --- reading the assertion ---------------------------------------------------------------

    def _identity(self, response) -> Identity:
        c = self.config
        attributes = _attributes(response.assertion)
        if c.username_attribute is None:
            name_id = response.name_id
            username = (name_id.text or "").strip() if name_id is not None else ""
            if not username:
                raise SignInRefused("The identity provider's answer names no one (its NameID is empty).")
        else:
            values = attributes.get(c.username_attribute, [])
            username = values[0] if values else ""
            if not username:
                raise SignInRefused(f"The identity provider sent no {c.username_attribute!r} attribute, "
                                    "which Valt takes the user name from.")
        groups: tuple[str, ...] | None = None
        if c.group_map:
            idp_groups = {v for name in c.group_attributes for v in attributes.get(name, [])}
            groups = tuple(sorted({c.group_map[g] for g in idp_groups if g in c.group_map}))
        return Identity(
            username=username,
            display_name=_first(attributes, c.display_name_attributes),
            email=_first(attributes, c.email_attributes),
            groups=groups,
        )


def _strong(signature) -> bool:
    """True when an XML signature uses only the SHA-2 algorithms Valt accepts."""
    info = signature.signed_info
    if info is None or info.signature_method is None or info.signature_method.algorithm not in SIGNATURE_ALGORITHMS:
        return False
    return all(ref.digest_method is not None and ref.digest_method.algorithm in DIGEST_ALGORITHMS
               for ref in info.reference)


def _attributes(assertion) -> dict[str, list[str]]:
    """The assertion's attribute values under both the Name and the FriendlyName of each attribute.

    Read from the assertion itself rather than pysaml2's ``ava``, whose attribute maps would
    rename some attributes and so make the configured names mean something else.
    """
    found: dict[str, list[str]] = {}
    for statement in assertion.attribute_statement:
        for attribute in statement.attribute:
            values = [v.text.strip() for v in attribute.attribute_value if v.text and v.text.strip()]
            for key in {attribute.name, attribute.friendly_name} - {None, ""}:
                found.setdefault(key, []).extend(values)
    return found


def _first(attributes: dict[str, list[str]], names: Iterable[str]) -> str:
    for name in names:
        if attributes.get(name):
            return attributes[name][0]
    return ""


_ELSEWHERE = "The identity provider's answer was addressed to another URL than this Valt's."
_UNSOLICITED = ("This answer from the identity provider does not belong to a sign-in started here. "
                "Start again from Valt's sign-in page.")


def _refusal(err: Exception) -> SignInRefused:
    """What to tell the person for a response pysaml2 rejected (never the library's own text,
    which can quote the message)."""
    if isinstance(err, UnsolicitedResponse):
        reason = "unsolicited"
        message = _UNSOLICITED
    elif isinstance(err, (SigverError, IncorrectlySigned)):  # SignatureError and 'not signed at all'
        reason = "signature"
        message = ("The identity provider's answer is not signed as required, or was changed on the way. "
                   "Sign in again; if it happens again, tell your administrator.")
    elif isinstance(err, (ResponseLifetimeExceed, ToEarly)) or (
            isinstance(err, VerificationError) and "condition not ok" in str(err).lower()):
        # pysaml2 says "Condition not OK" for validity times in the wrong order.
        reason = "lifetime"
        message = ("The identity provider's answer has expired or is not valid yet (are both servers' "
                   "clocks right?). Sign in again.")
    elif "AudienceRestrictions" in str(err):
        reason = "audience"
        message = ("The identity provider's answer was meant for another service, not this Valt: "
                   "the entity ID registered at the identity provider must be Valt's.")
    elif isinstance(err, StatusError):
        reason = "status"
        message = "The identity provider did not sign you in."
    elif isinstance(err, VerificationError) and "recipient" in str(err).lower():
        reason = "recipient"
        message = _ELSEWHERE
    elif isinstance(err, VerificationError) and "came from" in str(err).lower():
        reason = "unsolicited"
        message = _UNSOLICITED
    elif isinstance(err, UnravelError):
        reason = "undecodable"
        message = "The identity provider's answer could not be read."
    else:
        reason = "invalid"
        message = "The identity provider's answer could not be accepted."
    # The type only: pysaml2's messages can quote the response.
    log.warning("SAML response refused: %s (%s)", reason, type(err).__name__)
    return SignInRefused(message)
