"""The ``saml`` backend against a real pysaml2 identity provider (tests/peers/saml_idp.py).

The sign-in is driven over HTTP as a browser would: the backend's redirect URL is fetched from
the IdP, its login form posted, and the form the IdP answers with (the HTTP-POST binding) is what
``finish_sign_in`` gets. The refusals use answers the IdP makes on purpose: altered after
signing, for another SP, already expired, unsigned, or answering no request of ours.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from lxml import etree
from pydantic import ValidationError
from saml2 import BINDING_HTTP_POST
from saml2.config import SPConfig
from saml2.mdstore import MetadataStore
from saml2.sigver import get_xmlsec_binary
from valt_auth_saml.backend import SamlAuthBackend
from valt_auth_saml.config import SamlAuthConfig
from valt_auth_saml.service_provider import ServiceProvider

from tests.peers.saml_idp import SamlIdp, make_key_pair, read_post_form, tampered
from valt_core.auth import Identity, SignInRefused
from valt_core.errors import ConfigError

VALT = "http://127.0.0.1:8080"
ACS = f"{VALT}/auth/sso/saml/callback"
ENTITY_ID = f"{VALT}/auth/sso/saml/metadata"
GROUP_MAP = {"idp-supervisors": "Supervisors", "idp-interviewers": "Interviewers"}


@pytest.fixture(scope="session")
def saml_idp(tmp_path_factory) -> SamlIdp:
    """One IdP for the module's tests, with Ann (two mapped groups, one not) and Bob (none)."""
    idp = SamlIdp(tmp_path_factory.mktemp("saml-idp"))
    idp.add_user("ann", "ann's idp password", groups=["idp-supervisors", "idp-interviewers", "staff"],
                 display_name="Ann Archer", email="ann@example.org")
    idp.add_user("bob", "bob's idp password", display_name="Bob Baker", email="bob@example.org")
    yield idp
    idp.stop()


@pytest.fixture(scope="session")
def sp_keys(tmp_path_factory):
    """Valt's SP key and certificate."""
    return make_key_pair(tmp_path_factory.mktemp("saml-sp"), "sp")


def make_backend(saml_idp: SamlIdp, sp_keys, **options) -> SamlAuthBackend:
    """A backend for the IdP, built from settings as the core builds it (metadata by URL by default)."""
    settings = {"entity_id": ENTITY_ID, "sp_key_file": str(sp_keys.key), "sp_cert_file": str(sp_keys.cert),
                "idp_metadata_url": f"{saml_idp.base}/metadata", "group_map": GROUP_MAP,
                "sign_in_label": "Sign in with Test IdP", **options}
    return SamlAuthBackend(SamlAuthConfig.model_validate(settings))


@pytest.fixture(scope="session")
def trusted(saml_idp, sp_keys) -> None:
    """The IdP trusts Valt's SP, registered from the SP metadata the backend serves."""
    saml_idp.trust_sp(make_backend(saml_idp, sp_keys).sp.sp_metadata(ACS))


@pytest.fixture
def backend(saml_idp, sp_keys, trusted) -> SamlAuthBackend:
    return make_backend(saml_idp, sp_keys)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8")


def post(url: str, fields: dict[str, str]) -> str:
    data = urllib.parse.urlencode(fields).encode("ascii")
    with urllib.request.urlopen(url, data, timeout=10) as answer:
        return answer.read().decode("utf-8")


def sign_in_at_idp(idp: SamlIdp, url: str, username: str, password: str) -> tuple[str, dict[str, str]]:
    """What a browser does at the IdP: open the redirect URL, fill the login form, get the POST form."""
    status, page = get(url)
    assert status == 200, page
    ticket = re.search(r'name="ticket" value="([^"]+)"', page).group(1)
    return read_post_form(post(f"{idp.base}/login", {"ticket": ticket, "username": username,
                                                     "password": password}))


async def test_sign_in_by_redirect_and_post_gives_the_person_and_their_mapped_groups(backend, saml_idp):
    assert backend.sign_in_label == "Sign in with Test IdP"
    assert not backend.checks_passwords and not backend.binds_browser
    assert backend.callback_methods == ("POST",)
    start = await backend.begin_sign_in(ACS, "relay-state-1")
    url = urllib.parse.urlsplit(start.url)
    query = urllib.parse.parse_qs(url.query)
    assert start.url.startswith(f"{saml_idp.base}/sso/redirect?")
    assert query["RelayState"] == ["relay-state-1"]
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"] and query["Signature"]
    assert set(start.flow) == {"request_id"}

    # A wrong password at the IdP gets its form again; the right one the POST to Valt's ACS.
    status, page = get(start.url)
    ticket = re.search(r'name="ticket" value="([^"]+)"', page).group(1)
    again = post(f"{saml_idp.base}/login", {"ticket": ticket, "username": "ann", "password": "wrong"})
    assert "Wrong user name or password." in again
    action, fields = read_post_form(post(f"{saml_idp.base}/login", {"ticket": ticket, "username": "ann",
                                                                   "password": "ann's idp password"}))
    assert action == ACS and fields["RelayState"] == "relay-state-1"

    identity = await backend.finish_sign_in(ACS, fields, start.flow)
    assert identity == Identity(username="ann", display_name="Ann Archer", email="ann@example.org",
                                groups=("Interviewers", "Supervisors"))

    # Bob is in no IdP group: with a group map, that means no SAML groups (the core removes them).
    start = await backend.begin_sign_in(ACS, "relay-state-2")
    _, fields = sign_in_at_idp(saml_idp, start.url, "bob", "bob's idp password")
    assert (await backend.finish_sign_in(ACS, fields, start.flow)).groups == ()


async def test_the_authn_request_is_signed_and_the_idp_checks_it(backend, saml_idp):
    start = await backend.begin_sign_in(ACS, "state")
    unsigned = re.sub(r"&(SigAlg|Signature)=[^&]*", "", start.url)
    assert get(unsigned)[0] == 400
    # The signature covers the RelayState too.
    assert get(start.url.replace("RelayState=state", "RelayState=other"))[0] == 400
    assert get(start.url)[0] == 200


async def test_an_assertion_changed_after_signing_is_refused(backend, saml_idp):
    start = await backend.begin_sign_in(ACS, "state")
    request = saml_idp.accept_request(urllib.parse.urlsplit(start.url).query)
    honest = saml_idp.respond(request, "bob")
    for old, new in ((">bob<", ">ann<"), ("Bob Baker", "Bob Boss")):
        with pytest.raises(SignInRefused, match="not signed as required, or was changed"):
            await backend.finish_sign_in(ACS, {"SAMLResponse": tampered(honest, old, new)}, start.flow)
    # A group added in the IdP's name.
    forged = tampered(honest, "<ns1:AttributeStatement>", '<ns1:AttributeStatement><ns1:Attribute Name="groups">'
                      "<ns1:AttributeValue>idp-supervisors</ns1:AttributeValue></ns1:Attribute>")
    with pytest.raises(SignInRefused, match="changed on the way"):
        await backend.finish_sign_in(ACS, {"SAMLResponse": forged}, start.flow)
    assert (await backend.finish_sign_in(ACS, {"SAMLResponse": honest}, start.flow)).username == "bob"


async def test_an_unsolicited_answer_or_one_to_another_request_is_refused(backend, saml_idp):
    start = await backend.begin_sign_in(ACS, "state")
    idp_initiated = saml_idp.respond(None, "ann", in_response_to=None, acs_url=ACS, sp_entity_id=ENTITY_ID)
    with pytest.raises(SignInRefused, match="does not belong to a sign-in started here"):
        await backend.finish_sign_in(ACS, {"SAMLResponse": idp_initiated}, start.flow)
    # An answer to one sign-in presented to another (a login CSRF: the attacker's own answer).
    other = await backend.begin_sign_in(ACS, "state-2")
    request = saml_idp.accept_request(urllib.parse.urlsplit(other.url).query)
    with pytest.raises(SignInRefused, match="does not belong to a sign-in started here"):
        await backend.finish_sign_in(ACS, {"SAMLResponse": saml_idp.respond(request, "ann")}, start.flow)
    made_up = saml_idp.respond(request, "ann", in_response_to="id-never-asked-for")
    with pytest.raises(SignInRefused, match="does not belong"):
        await backend.finish_sign_in(ACS, {"SAMLResponse": made_up}, other.flow)
    with pytest.raises(SignInRefused, match="not started here"):
        await backend.finish_sign_in(ACS, {"SAMLResponse": made_up}, {})
    with pytest.raises(SignInRefused, match="sent no SAML response"):
        await backend.finish_sign_in(ACS, {"RelayState": "state"}, start.flow)


async def test_an_answer_for_another_service_provider_is_refused(backend, saml_idp, sp_keys):
    other_sp = make_backend(saml_idp, sp_keys, entity_id="https://other-app.example.org/saml")
    saml_idp.trust_sp((await other_sp.metadata(ACS))[1])
    start = await backend.begin_sign_in(ACS, "state")
    request = saml_idp.accept_request(urllib.parse.urlsplit(start.url).query)
    for_them = saml_idp.respond(request, "ann", sp_entity_id="https://other-app.example.org/saml")
    with pytest.raises(SignInRefused, match="meant for another service"):
        await backend.finish_sign_in(ACS, {"SAMLResponse": for_them}, start.flow)
    # Sent to another ACS than the one this sign-in gave.
    elsewhere = saml_idp.respond(request, "ann", acs_url="https://elsewhere.example.org/acs")
    with pytest.raises(SignInRefused, match="addressed to another URL"):
        await backend.finish_sign_in(ACS, {"SAMLResponse": elsewhere}, start.flow)


async def test_an_encrypted_assertion_is_decrypted_with_the_sp_key(backend, saml_idp):
    start = await backend.begin_sign_in(ACS, "state")
    request = saml_idp.accept_request(urllib.parse.urlsplit(start.url).query)
    sealed = saml_idp.respond(request, "ann", encrypt=True)
    assert b"EncryptedAssertion" in base64.b64decode(sealed) and b"Ann Archer" not in base64.b64decode(sealed)
    identity = await backend.finish_sign_in(ACS, {"SAMLResponse": sealed}, start.flow)
    assert identity.username == "ann" and identity.groups == ("Interviewers", "Supervisors")


async def test_a_forged_assertion_beside_the_signed_one_is_refused(backend, saml_idp):
    """Signature wrapping: the signed assertion kept for its signature, an unsigned one added."""
    start = await backend.begin_sign_in(ACS, "state")
    request = saml_idp.accept_request(urllib.parse.urlsplit(start.url).query)
    xml = base64.b64decode(saml_idp.respond(request, "bob")).decode()
    signed = re.search(r"<ns1:Assertion .*</ns1:Assertion>", xml, re.S).group(0)
    forged = re.sub(r"<ns2:Signature .*</ns2:Signature>", "", signed, flags=re.S)
    forged = forged.replace(">bob<", ">ann<").replace('ID="', 'ID="x')
    for wrapped in (xml.replace(signed, forged + signed), xml.replace(signed, signed + forged)):
        with pytest.raises(SignInRefused):
            await backend.finish_sign_in(ACS, {"SAMLResponse": base64.b64encode(wrapped.encode()).decode()},
                                         start.flow)


async def test_an_answer_signed_by_another_idp_is_refused(backend, saml_idp, tmp_path):
    impostor = SamlIdp(tmp_path / "impostor")
    try:
        impostor.entity_id = saml_idp.entity_id  # claims to be the real one, with its own key
        impostor.trust_sp(backend.sp.sp_metadata(ACS))
        impostor.add_user("ann", "x", groups=["idp-supervisors"])
        start = await backend.begin_sign_in(ACS, "state")
        request = saml_idp.accept_request(urllib.parse.urlsplit(start.url).query)
        with pytest.raises(SignInRefused, match="not signed as required"):
            await backend.finish_sign_in(ACS, {"SAMLResponse": impostor.respond(request, "ann")}, start.flow)
    finally:
        impostor.stop()


async def test_with_a_federations_metadata_only_the_chosen_idp_is_believed(backend, saml_idp, sp_keys, tmp_path):
    other = SamlIdp(tmp_path / "member")
    try:
        other.trust_sp(backend.sp.sp_metadata(ACS))
        other.add_user("ann", "x", groups=["idp-supervisors"])
        both = "".join(re.sub(r"^<\?xml[^>]*>\s*", "", idp.metadata_xml) for idp in (saml_idp, other))
        aggregate = tmp_path / "federation.xml"
        aggregate.write_text(f'<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">{both}'
                             "</md:EntitiesDescriptor>")
        unsure = make_backend(saml_idp, sp_keys, idp_metadata_url=None, idp_metadata_file=str(aggregate))
        with pytest.raises(ConfigError, match="describes 2 identity providers; set idp_entity_id"):
            await unsure.begin_sign_in(ACS, "state")
        chosen = make_backend(saml_idp, sp_keys, idp_metadata_url=None, idp_metadata_file=str(aggregate),
                              idp_entity_id=saml_idp.entity_id)
        start = await chosen.begin_sign_in(ACS, "state")
        assert start.url.startswith(saml_idp.base)
        request = saml_idp.accept_request(urllib.parse.urlsplit(start.url).query)
        # Signed with a key the metadata vouches for, but by the other member of the federation.
        with pytest.raises(SignInRefused, match="did not come from the configured identity provider"):
            await chosen.finish_sign_in(ACS, {"SAMLResponse": other.respond(request, "ann")}, start.flow)
        assert (await chosen.finish_sign_in(ACS, {"SAMLResponse": saml_idp.respond(request, "ann")},
                                            start.flow)).username == "ann"
    finally:
        other.stop()


async def test_a_new_idp_signing_key_is_picked_up_from_its_metadata(sp_keys, tmp_path):
    idp = SamlIdp(tmp_path / "rolling")
    try:
        idp.add_user("ann", "pw", groups=["idp-supervisors"])
        backend = make_backend(idp, sp_keys, metadata_refresh_hours=6)
        hours = [0.0]
        backend.sp = ServiceProvider(backend.config, clock=lambda: hours[0] * 3600)
        idp.trust_sp(backend.sp.sp_metadata(ACS))
        from_file = make_backend(idp, sp_keys, idp_metadata_url=None, idp_metadata_file=str(idp.metadata_file))
        file_start = await from_file.begin_sign_in(ACS, "state")
        file_request = idp.accept_request(urllib.parse.urlsplit(file_start.url).query)
        start = await backend.begin_sign_in(ACS, "state")
        request = idp.accept_request(urllib.parse.urlsplit(start.url).query)
        assert (await backend.finish_sign_in(ACS, {"SAMLResponse": idp.respond(request, "ann")},
                                             start.flow)).username == "ann"
        old_key_answer = idp.respond(request, "ann")
        idp.rotate_key()
        new_key_answer = idp.respond(request, "ann")
        with pytest.raises(SignInRefused, match="not signed"):  # the metadata read before has the old key
            await backend.finish_sign_in(ACS, {"SAMLResponse": new_key_answer}, start.flow)
        hours[0] = 5.9
        with pytest.raises(SignInRefused, match="not signed"):
            await backend.finish_sign_in(ACS, {"SAMLResponse": new_key_answer}, start.flow)
        hours[0] = 6.0  # read again: the new key is trusted, the old one no more
        with pytest.raises(SignInRefused, match="not signed"):
            await backend.finish_sign_in(ACS, {"SAMLResponse": old_key_answer}, start.flow)
        assert (await backend.finish_sign_in(ACS, {"SAMLResponse": new_key_answer}, start.flow)).username == "ann"
        # A metadata file is read again as soon as it changes.
        answer = idp.respond(file_request, "ann")
        assert (await from_file.finish_sign_in(ACS, {"SAMLResponse": answer}, file_start.flow)).username == "ann"
    finally:
        idp.stop()


async def test_an_expired_assertion_is_refused(saml_idp, sp_keys, trusted):
    backend = make_backend(saml_idp, sp_keys, clock_skew_s=0)
    start = await backend.begin_sign_in(ACS, "state")
    request = saml_idp.accept_request(urllib.parse.urlsplit(start.url).query)
    # Valid for one second (SAML times have whole seconds), and two have passed on its way.
    stale = saml_idp.respond(request, "ann", valid_seconds=1)
    await asyncio.sleep(2.05)
    with pytest.raises(SignInRefused, match="expired"):
        await backend.finish_sign_in(ACS, {"SAMLResponse": stale}, start.flow)


async def test_unsigned_answers_are_refused_and_a_signed_response_is_enough_by_default(backend, saml_idp,
                                                                                     sp_keys):
    start = await backend.begin_sign_in(ACS, "state")
    request = saml_idp.accept_request(urllib.parse.urlsplit(start.url).query)
    unsigned = saml_idp.respond(request, "ann", sign_assertion=False)
    with pytest.raises(SignInRefused, match="not signed as required"):
        await backend.finish_sign_in(ACS, {"SAMLResponse": unsigned}, start.flow)
    # Shibboleth's default: the response signed, the assertion not.
    response_signed = saml_idp.respond(request, "ann", sign_assertion=False, sign_response=True)
    assert (await backend.finish_sign_in(ACS, {"SAMLResponse": response_signed}, start.flow)).username == "ann"
    strict = make_backend(saml_idp, sp_keys, require_signed="assertion")
    with pytest.raises(SignInRefused, match="not signed as required"):
        await strict.finish_sign_in(ACS, {"SAMLResponse": response_signed}, start.flow)
    both = saml_idp.respond(request, "ann", sign_response=True)
    strictest = make_backend(saml_idp, sp_keys, require_signed="both")
    assert (await strictest.finish_sign_in(ACS, {"SAMLResponse": both}, start.flow)).username == "ann"


async def test_the_idps_own_refusal_is_told_as_such(backend, saml_idp):
    start = await backend.begin_sign_in(ACS, "state")
    request = saml_idp.accept_request(urllib.parse.urlsplit(start.url).query)
    for signed in (True, False):
        with pytest.raises(SignInRefused, match="The identity provider did not sign you in"):
            await backend.finish_sign_in(ACS, {"SAMLResponse": saml_idp.refuse(request, signed)}, start.flow)


async def test_a_sha1_signature_is_refused(backend, saml_idp):
    start = await backend.begin_sign_in(ACS, "state")
    request = saml_idp.accept_request(urllib.parse.urlsplit(start.url).query)
    for signed in ({}, {"sign_assertion": False, "sign_response": True}):
        old = saml_idp.respond(request, "ann", sha1=True, **signed)
        assert b"#rsa-sha1" in base64.b64decode(old)
        with pytest.raises(SignInRefused, match="weak algorithm"):
            await backend.finish_sign_in(ACS, {"SAMLResponse": old}, start.flow)


async def test_metadata_from_a_file_a_username_attribute_and_no_group_map(saml_idp, sp_keys, trusted):
    backend = make_backend(saml_idp, sp_keys, idp_metadata_url=None, idp_metadata_file=str(saml_idp.metadata_file),
                           username_attribute="mail", group_map={})
    start = await backend.begin_sign_in(ACS, "state")
    _, fields = sign_in_at_idp(saml_idp, start.url, "ann", "ann's idp password")
    # No group map: Valt does not manage these people's groups (None, not an empty tuple).
    assert await backend.finish_sign_in(ACS, fields, start.flow) == Identity(
        username="ann@example.org", display_name="Ann Archer", email="ann@example.org", groups=None)


async def test_sp_metadata_names_the_acs_url_and_the_signing_certificate(backend, sp_keys):
    media_type, body = await backend.metadata(ACS)
    assert media_type == "application/samlmetadata+xml"
    root = etree.fromstring(body)  # well-formed XML
    md = "urn:oasis:names:tc:SAML:2.0:metadata"
    assert root.tag == f"{{{md}}}EntityDescriptor" and root.get("entityID") == ENTITY_ID
    sp = root.find(f"{{{md}}}SPSSODescriptor")
    assert sp.get("AuthnRequestsSigned") == "true"
    algorithms = [e.get("Algorithm") for e in root.find(f"{{{md}}}Extensions")]
    assert algorithms and all(re.search(r"(sha256|sha384|sha512)$", a) for a in algorithms), algorithms
    # pysaml2 (as an IdP would) loads it and finds the ACS and the signing key.
    conf = SPConfig()
    conf.load({"entityid": "https://reader.example.org", "xmlsec_binary": get_xmlsec_binary(["/usr/bin"])})
    store = MetadataStore(conf.attribute_converters, conf)
    store.load("inline", body.decode("utf-8"))
    acs = store.assertion_consumer_service(ENTITY_ID, BINDING_HTTP_POST)
    assert [a["location"] for a in acs] == [ACS]
    signing = store.certs(ENTITY_ID, "spsso", "signing")
    assert ["".join(c.split()) for _, c in signing] == [sp_keys.cert_base64()]
    base64.b64decode("".join(signing[0][1].split()), validate=True)


async def test_nothing_of_the_messages_or_keys_reaches_the_logs(backend, saml_idp, caplog):
    caplog.set_level(logging.DEBUG)
    start = await backend.begin_sign_in(ACS, "state")
    _, fields = sign_in_at_idp(saml_idp, start.url, "ann", "ann's idp password")
    await backend.finish_sign_in(ACS, fields, start.flow)
    with pytest.raises(SignInRefused):
        await backend.finish_sign_in(ACS, {"SAMLResponse": tampered(fields["SAMLResponse"], ">ann<", ">eve<")},
                                     start.flow)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "SAML response refused: signature" in logged
    for secret in ("Ann Archer", "ann@example.org", "idp-supervisors", "Assertion", "PRIVATE KEY",
                   fields["SAMLResponse"][:40], start.flow["request_id"]):
        assert secret not in logged


def test_settings_are_checked(sp_keys, tmp_path: Path):
    base = {"entity_id": ENTITY_ID, "sp_key_file": str(sp_keys.key), "sp_cert_file": str(sp_keys.cert)}
    with pytest.raises(ValidationError, match="exactly one of idp_metadata_file and idp_metadata_url"):
        SamlAuthConfig.model_validate(base)
    (tmp_path / "m.xml").write_text("<md/>")
    with pytest.raises(ValidationError, match="exactly one"):
        SamlAuthConfig.model_validate({**base, "idp_metadata_file": str(tmp_path / "m.xml"),
                                       "idp_metadata_url": "https://idp.example.org/metadata"})
    url = {"idp_metadata_url": "https://idp.example.org/metadata"}
    with pytest.raises(ValidationError, match="sp_key_file\n  Path does not point to a file"):
        SamlAuthConfig.model_validate({**base, **url, "sp_key_file": str(tmp_path / "none.pem")})
    other = make_key_pair(tmp_path, "other")
    with pytest.raises(ValidationError, match="sp_cert_file is not the certificate of sp_key_file"):
        SamlAuthConfig.model_validate({**base, **url, "sp_cert_file": str(other.cert)})
    with pytest.raises(ValidationError, match="sp_cert_file must be a PEM certificate"):
        SamlAuthConfig.model_validate({**base, **url, "sp_cert_file": str(other.key)})
    with pytest.raises(ValidationError, match="sp_key_file must be an unencrypted PEM private key"):
        SamlAuthConfig.model_validate({**base, **url, "sp_key_file": str(other.cert)})
    with pytest.raises(ValidationError, match="https"):
        SamlAuthConfig.model_validate({**base, "idp_metadata_url": "http://idp.example.org/metadata"})
    with pytest.raises(ValidationError, match="Extra inputs"):
        SamlAuthConfig.model_validate({**base, "idp_metadata_url": "https://idp.example.org/m", "sp_key": "x"})
    with pytest.raises(ValidationError, match="require_signed"):
        SamlAuthConfig.model_validate({**base, "idp_metadata_url": "https://idp.example.org/m",
                                       "require_signed": "none"})
    for name, info in SamlAuthConfig.model_fields.items():
        assert info.description, f"{name} has no description"


async def test_the_plugin_registers_through_its_entry_point():
    from valt_core.plugins import PluginHost

    assert PluginHost.load([]).auth_backends["saml"] is SamlAuthBackend


def test_loading_the_plugin_does_not_import_pysaml2():
    """Every `valt` command loads every plugin: SAML's library is imported only when it is used."""
    code = "import sys, valt_auth_saml.plugin; sys.exit('saml2' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_every_setting_is_in_the_saml_doc():
    text = (Path(__file__).resolve().parents[4] / "docs" / "auth-saml.md").read_text()
    for name in SamlAuthConfig.model_fields:
        assert f"| `{name}` |" in text, f"{name} is not in docs/auth-saml.md"
