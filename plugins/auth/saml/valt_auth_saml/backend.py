"""The ``saml`` auth backend: SP-initiated SAML 2.0 sign-in (HTTP-Redirect out, HTTP-POST back).

The response comes back by a cross-site POST, which carries no SameSite=Lax cookie, so the core
cannot tie it to the browser that started; this backend ties it to its request instead: the
request's ID is kept in the flow, and only a response whose InResponseTo names it (and whose
signature, audience, recipient and validity times are right) signs anyone in.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Mapping

from valt_core.auth import AuthBackend, Identity, SignInRefused, SignInStart

from .config import SamlAuthConfig

#: SP metadata's registered media type (RFC 7727 names it for SAML metadata).
METADATA_MEDIA_TYPE = "application/samlmetadata+xml"


class SamlAuthBackend(AuthBackend):
    """Signs people in through a SAML 2.0 identity provider, with groups from an attribute."""

    name = "saml"
    Config = SamlAuthConfig
    checks_passwords = False
    sign_in_label = "Sign in with single sign-on"
    callback_methods = ("POST",)
    binds_browser = False

    def __init__(self, config: SamlAuthConfig) -> None:
        super().__init__(config)
        self.sign_in_label = config.sign_in_label
        # pysaml2 logs whole requests, responses and assertions (at debug, and some at error):
        # none of that may reach Valt's logs. Our own module says what went wrong, without them.
        logging.getLogger("saml2").setLevel(logging.CRITICAL)
        # Its schema library says "Resource 'XMLSchema.xsd' is already loaded" at import.
        logging.getLogger("xmlschema").setLevel(logging.WARNING)
        # Imported here, not at the top: pysaml2 takes about a second to import, which every
        # `valt` command would pay (the plugin host imports every plugin) even without SAML.
        with warnings.catch_warnings():
            # pysaml2 still names a cipher mode where cryptography has moved it; nothing to act on.
            warnings.filterwarnings("ignore", message=".*has been moved to cryptography.hazmat.decrepit")
            from .service_provider import ServiceProvider
        self.sp = ServiceProvider(config)

    async def begin_sign_in(self, callback_url: str, state: str) -> SignInStart:
        """A signed AuthnRequest to the IdP, with ``state`` as RelayState; the flow keeps its ID."""
        url, request_id = await asyncio.to_thread(self.sp.authn_request, callback_url, state)
        return SignInStart(url=url, flow={"request_id": request_id})

    async def finish_sign_in(
        self, callback_url: str, params: Mapping[str, str], flow: Mapping[str, str]
    ) -> Identity:
        """Check the posted ``SAMLResponse`` against the request in ``flow``; who signed in."""
        saml_response = params.get("SAMLResponse", "")
        if not saml_response:
            raise SignInRefused("The identity provider sent no SAML response.")
        request_id = flow.get("request_id", "")
        if not request_id:
            raise SignInRefused("This sign-in was not started here. Start again from Valt's sign-in page.")
        return await asyncio.to_thread(self.sp.read_response, callback_url, saml_response, request_id)

    async def metadata(self, callback_url: str) -> tuple[str, bytes]:
        """Valt's SP metadata for the IdP's administrator (served at /auth/sso/saml/metadata)."""
        return METADATA_MEDIA_TYPE, await asyncio.to_thread(self.sp.sp_metadata, callback_url)
