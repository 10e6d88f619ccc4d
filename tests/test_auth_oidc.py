"""The ``oidc`` auth backend against a real OpenID provider (npm ``oidc-provider``, tests/peers/oidc).

Each sign-in is the whole authorization code flow: the backend's authorization URL is followed
over HTTP to the provider's login form, a seeded user types their password, and the code the
provider sends back goes through the backend's ``finish_sign_in`` (token endpoint, ID token
checks, userinfo). Tokens the provider would never issue (wrong audience, expired, signed by
another key) are minted here with the provider's own private key and checked by the backend's
own verification against the JWKS the running provider publishes.
"""

from __future__ import annotations

import re
import ssl
import time
import uuid

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from valt_auth_oidc.backend import OidcAuthBackend
from valt_auth_oidc.client import ProviderError
from valt_auth_oidc.config import OidcAuthConfig

from valt_core.auth import SignInRefused

from .peers.nats import TlsFiles
from .peers.oidc import OidcProvider, ProviderClient, new_signing_key, sign_in_at_provider

# Nothing listens there: the flow stops at the provider's redirect to it, as a browser would go on.
CALLBACK = "http://127.0.0.1:9/auth/sso/oidc/callback"
SIGNED_OUT = "http://127.0.0.1:9/login"
# '+' and '%' in a secret must survive client_secret_basic's form-encoding (RFC 6749, 2.3.1).
SECRET = "valt test secret +%/= 1"
MAPPING = {"idp-observers": "Observers", "idp-staff": "Staff", "idp-interviewers": "Interviewers"}


@pytest.fixture(scope="session")
def provider(tmp_path_factory):
    """One provider for the module's tests, with a client for each token endpoint auth method."""
    clients = [ProviderClient("valt", SECRET, (CALLBACK,), (SIGNED_OUT,)),
               ProviderClient("valt-post", SECRET, (CALLBACK,), (SIGNED_OUT,), "client_secret_post")]
    server = OidcProvider(tmp_path_factory.mktemp("oidc"), clients)
    yield server
    server.stop()


def make_backend(provider: OidcProvider, **options) -> OidcAuthBackend:
    config = {"issuer": provider.issuer, "client_id": "valt", "client_secret": SECRET,
              "scopes": ["openid", "profile", "email", "groups"], "group_map": MAPPING,
              "sign_in_label": "Sign in with Test IdP", **options}
    return OidcAuthBackend(OidcAuthConfig(**config))


async def sign_in(backend: OidcAuthBackend, username: str, password: str, tamper=None, verify=True):
    """The whole flow; ``tamper`` may change the flow the core would hand back."""
    state = uuid.uuid4().hex
    start = await backend.begin_sign_in(CALLBACK, state)
    params = await sign_in_at_provider(start.url, username, password, CALLBACK, verify=verify)
    assert params["state"] == state
    flow = dict(start.flow) if tamper is None else tamper(dict(start.flow))
    return await backend.finish_sign_in(CALLBACK, params, flow), start, params


@pytest.mark.parametrize("client_id", ["valt", "valt-post"])
async def test_a_code_flow_signs_the_person_in_with_their_mapped_groups(provider, client_id):
    method = "client_secret_post" if client_id == "valt-post" else "client_secret_basic"
    backend = make_backend(provider, client_id=client_id, token_endpoint_auth_method=method)
    assert backend.sign_in_label == "Sign in with Test IdP" and not backend.checks_passwords

    identity, start, params = await sign_in(backend, "olivia", "olivia's provider pw")
    assert identity.username == "olivia"
    assert identity.display_name == "Olivia Observer" and identity.email == "olivia@example.test"
    assert identity.groups == ("Observers", "Staff")
    # PKCE S256 and a nonce went to the provider; the verifier and the secret never did.
    query = httpx.URL(start.url).params
    assert query["code_challenge_method"] == "S256" and query["code_challenge"]
    assert query["nonce"] == start.flow["nonce"] and query["client_id"] == client_id
    assert start.flow["code_verifier"] not in start.url and "secret" not in start.url
    assert params["iss"] == provider.issuer  # RFC 9207, checked by the backend

    # An unmapped provider group is ignored; someone in no mapped group gets no Valt group.
    ivan, _, _ = await sign_in(backend, "ivan", "ivan's provider pw")
    assert (ivan.username, ivan.groups) == ("ivan", ("Interviewers",))
    nadia, _, _ = await sign_in(backend, "nadia", "nadia's provider pw")
    assert nadia.groups == ()


async def test_the_provider_form_checks_passwords(provider):
    backend = make_backend(provider)
    start = await backend.begin_sign_in(CALLBACK, "s")
    with pytest.raises(AssertionError, match="refused olivia's password"):
        await sign_in_at_provider(start.url, "olivia", "not her password", CALLBACK)


async def test_groups_come_from_userinfo_when_the_id_token_has_none(provider):
    # This provider (like many) puts scope claims in userinfo only; without it there are no groups.
    no_userinfo = make_backend(provider, fetch_userinfo=False)
    identity, _, _ = await sign_in(no_userinfo, "olivia", "olivia's provider pw")
    assert identity.groups == () and identity.email == ""


async def test_no_group_map_leaves_groups_to_valt(provider):
    identity, _, _ = await sign_in(make_backend(provider, group_map={}), "olivia", "olivia's provider pw")
    assert identity.groups is None


async def test_username_claim_can_be_sub_or_any_claim(provider):
    identity, _, _ = await sign_in(make_backend(provider, username_claim="email"), "ivan", "ivan's provider pw")
    assert identity.username == "ivan@example.test"
    # A claim the provider does not send falls back to sub (here the account id).
    identity, _, _ = await sign_in(make_backend(provider, username_claim="employee_id"), "ivan",
                                   "ivan's provider pw")
    assert identity.username == "ivan"


async def test_a_wrong_pkce_verifier_is_refused_by_the_provider(provider):
    def wrong_verifier(flow):
        flow["code_verifier"] = flow["code_verifier"][::-1]
        return flow

    with pytest.raises(SignInRefused) as refused:
        await sign_in(make_backend(provider), "olivia", "olivia's provider pw", wrong_verifier)
    assert "invalid_grant" in refused.value.message


async def test_a_wrong_nonce_is_refused(provider):
    def other_nonce(flow):
        flow["nonce"] = "a nonce of another sign-in"
        return flow

    with pytest.raises(SignInRefused, match="nonce mismatch"):
        await sign_in(make_backend(provider), "olivia", "olivia's provider pw", other_nonce)


async def test_a_provider_error_is_refused_in_plain_words(provider):
    backend = make_backend(provider)
    start = await backend.begin_sign_in(CALLBACK, "s")
    params = await sign_in_at_provider(start.url, "olivia", "", CALLBACK, cancel=True)
    assert params["error"] == "access_denied" and "code" not in params
    with pytest.raises(SignInRefused) as refused:
        await backend.finish_sign_in(CALLBACK, params, start.flow)
    assert refused.value.message == "The identity provider did not let you sign in (access denied)."
    # Made-up codes are not echoed; a callback with neither code nor error is refused too.
    with pytest.raises(SignInRefused, match=r"refused the sign-in \(error\)"):
        await backend.finish_sign_in(CALLBACK, {"error": "<b>click here</b>"}, start.flow)
    with pytest.raises(SignInRefused, match="no sign-in code"):
        await backend.finish_sign_in(CALLBACK, {"state": "s"}, start.flow)


async def test_a_code_is_refused_messages_carry_no_code_or_secret(provider):
    backend = make_backend(provider)
    identity, start, params = await sign_in(backend, "olivia", "olivia's provider pw")
    assert identity.username == "olivia"
    # The same code again: the provider refuses a used code; the message has no code in it.
    with pytest.raises(SignInRefused) as refused:
        await backend.finish_sign_in(CALLBACK, params, start.flow)
    assert "invalid_grant" in refused.value.message
    for secret in (params["code"], start.flow["code_verifier"], SECRET):
        assert secret not in refused.value.message
    # A secret the provider does not accept.
    wrong = make_backend(provider, client_secret="not the secret")
    with pytest.raises(SignInRefused, match="invalid_client") as refused:
        await sign_in(wrong, "olivia", "olivia's provider pw")
    assert "not the secret" not in refused.value.message


async def test_an_answer_from_another_issuer_is_refused(provider):
    backend = make_backend(provider)
    start = await backend.begin_sign_in(CALLBACK, "s")
    params = await sign_in_at_provider(start.url, "olivia", "olivia's provider pw", CALLBACK)
    with pytest.raises(SignInRefused, match="another identity provider"):
        await backend.finish_sign_in(CALLBACK, {**params, "iss": "https://evil.example"}, start.flow)


def mint(provider: OidcProvider, key=None, **claims) -> str:
    """An ID token signed with the provider's current key (or ``key``), right unless ``claims`` say otherwise."""
    now = int(time.time())
    body = {"iss": provider.issuer, "aud": "valt", "sub": "olivia", "iat": now, "exp": now + 300,
            "nonce": "n-1", **claims}
    body = {k: v for k, v in body.items() if v is not None}
    signer = key or provider.signing_key
    return jwt.encode({"alg": "RS256", "kid": signer.kid}, body, signer)


async def test_id_token_checks_are_the_backends_own(provider):
    backend = make_backend(provider)
    verify = backend.client.verify_id_token
    # Control: a minted token with every claim right passes, so each refusal below is that claim's.
    assert (await verify(mint(provider), "n-1"))["sub"] == "olivia"
    assert (await verify(mint(provider, exp=int(time.time()) - 30), "n-1"))["sub"] == "olivia"  # leeway

    cases = [
        ({"aud": "another-app"}, "another application (wrong audience)"),
        ({"aud": ["valt", "another-app"]}, "issued for another application"),  # several audiences, no azp
        ({"azp": "another-app"}, "issued for another application"),
        ({"exp": int(time.time()) - 600}, "has expired"),
        ({"exp": None}, "'exp' claim is not valid"),
        ({"iss": "http://127.0.0.1:1"}, "issued by another identity provider"),
        ({"nonce": "n-2"}, "nonce mismatch"),
        ({"nonce": None}, "nonce mismatch"),
        ({"sub": None}, "does not say who signed in"),
    ]
    for claims, message in cases:
        with pytest.raises(ProviderError, match=re.escape(message)):
            await verify(mint(provider, **claims), "n-1")

    # Signed by someone else's key under the provider's kid, or by a key the provider never published.
    forged_key = new_signing_key()
    forged = jwt.encode({"alg": "RS256", "kid": provider.signing_key.kid}, {"sub": "olivia"}, forged_key)
    with pytest.raises(ProviderError, match="signature does not match"):
        await verify(forged, "n-1")
    with pytest.raises(ProviderError, match="key the identity provider does not publish"):
        await verify(mint(provider, key=forged_key), "n-1")
    # HS256 keyed with the client secret is refused outright: the secret is not a signing key here.
    hs256 = jwt.encode({"alg": "HS256"}, {"sub": "olivia"}, OctKey.import_key((SECRET * 2).encode()))
    with pytest.raises(ProviderError, match="algorithm Valt does not accept"):
        await verify(hs256, "n-1")


async def test_a_rotated_signing_key_is_fetched_on_first_sight(provider):
    backend = make_backend(provider)
    identity, _, _ = await sign_in(backend, "olivia", "olivia's provider pw")
    assert identity.username == "olivia" and backend.client.fetches == 1
    old_kid = provider.signing_key.kid
    provider.rotate_key()  # same port and issuer; only the new key is published
    assert provider.signing_key.kid != old_kid
    identity, _, _ = await sign_in(backend, "ivan", "ivan's provider pw")
    assert identity.username == "ivan"
    assert backend.client.fetches == 2  # read again because of the unknown kid, not the cache age
    # The old key is gone: a token under it is refused now.
    with pytest.raises(ProviderError, match="does not publish"):
        await backend.client.verify_id_token(jwt.encode({"alg": "RS256", "kid": old_kid}, {}, new_signing_key()),
                                             "n-1")


async def test_sign_out_goes_to_the_providers_end_session_endpoint(provider):
    backend = make_backend(provider)
    url = await backend.sign_out_url("olivia", SIGNED_OUT)
    assert url is not None
    parsed = httpx.URL(url)
    assert str(parsed.copy_with(query=None)) == provider.issuer + "/session/end"
    assert dict(parsed.params) == {"client_id": "valt", "post_logout_redirect_uri": SIGNED_OUT,
                                   "logout_hint": "olivia"}
    # The provider accepts it (a registered return address): it asks to confirm the sign-out.
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(url)
    assert answer.status_code == 200, answer.text[:300]


async def test_a_wrong_issuer_setting_or_an_unreachable_provider_is_refused(provider):
    # Discovery names 127.0.0.1; a setting that says localhost is another issuer.
    wrong = make_backend(provider, issuer=provider.issuer.replace("127.0.0.1", "localhost"))
    with pytest.raises(SignInRefused, match="issuer mismatch"):
        await wrong.begin_sign_in(CALLBACK, "s")
    gone = make_backend(provider, issuer="http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(SignInRefused, match="cannot be reached"):
        await gone.begin_sign_in(CALLBACK, "s")


async def test_a_provider_with_a_private_ca_is_trusted_through_ca_file(tmp_path):
    tls = TlsFiles.make(tmp_path / "tls")
    server = OidcProvider(tmp_path / "provider", [ProviderClient("valt", SECRET, (CALLBACK,))], tls=tls)
    try:
        assert server.issuer.startswith("https://")
        with pytest.raises(SignInRefused, match="certificate is not trusted"):
            await make_backend(server).begin_sign_in(CALLBACK, "s")
        trusted = make_backend(server, ca_file=str(tls.ca_cert))
        identity, _, _ = await sign_in(trusted, "olivia", "olivia's provider pw",
                                       verify=ssl.create_default_context(cafile=str(tls.ca_cert)))
        assert (identity.username, identity.groups) == ("olivia", ("Observers", "Staff"))
    finally:
        server.stop()


async def test_groups_in_the_id_token_need_no_userinfo(tmp_path):
    # Keycloak and Entra ID put the groups claim in the ID token itself.
    server = OidcProvider(tmp_path / "provider", [ProviderClient("valt", SECRET, (CALLBACK,))],
                          claims_in_id_token=True)
    try:
        backend = make_backend(server, fetch_userinfo=False)
        identity, _, _ = await sign_in(backend, "ivan", "ivan's provider pw")
        assert (identity.username, identity.email, identity.groups) == ("ivan", "ivan@example.test",
                                                                          ("Interviewers",))
    finally:
        server.stop()
