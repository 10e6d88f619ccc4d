"""SAML sign-in through the core's routes (/auth/sso/saml/start, /callback, /metadata) with the
``saml`` backend and the real pysaml2 IdP of tests/peers/saml_idp.py, on SQLite and MariaDB.

The IdP registers Valt from the metadata route; the browser's part is played by the test: it
follows the start route's redirect to the IdP over HTTP, signs in on the IdP's form and posts
the IdP's answer to the callback, as the IdP's page would make a browser do.
"""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from sqlmodel import select

from valt_core.app import create_app
from valt_core.db.models import AuditEvent, User

from .conftest import Env, make_settings
from .peers.saml_idp import SamlIdp, make_key_pair, read_post_form, tampered

LABEL = "Sign in with Test IdP"


@pytest.fixture(scope="module")
def saml_idp(tmp_path_factory) -> SamlIdp:
    idp = SamlIdp(tmp_path_factory.mktemp("saml-idp-core"))
    idp.add_user("ann", "ann's idp password", groups=["idp-operators", "idp-staff"], display_name="Ann Archer",
                 email="ann@example.org")
    yield idp
    idp.stop()


@pytest.fixture(scope="module")
def sp_keys(tmp_path_factory):
    return make_key_pair(tmp_path_factory.mktemp("saml-sp-core"), "sp")


@pytest.fixture
async def saml_env(tmp_path: Path, database_url: str, saml_idp: SamlIdp, sp_keys):
    """The app with ``local`` and ``saml``; the IdP trusts it from its metadata route."""
    settings = make_settings(tmp_path, database_url)
    settings.auth.backends = ["local", "saml"]
    settings.auth.backend_options["saml"] = {
        "entity_id": "urn:valt:core-test", "sp_key_file": str(sp_keys.key), "sp_cert_file": str(sp_keys.cert),
        "idp_metadata_url": f"{saml_idp.base}/metadata", "sign_in_label": LABEL,
        "group_map": {"idp-operators": "Operators"}}
    app = create_app(settings)
    ctx = app.extensions["valt"]
    await ctx.db.upgrade()
    async with app.test_app() as test_app:
        env = Env(app=app, ctx=ctx, client=test_app.test_client())
        r = await env.client.get("/auth/sso/saml/metadata")
        assert r.status_code == 200 and r.content_type.startswith("application/samlmetadata+xml")
        saml_idp.trust_sp(await r.get_data())
        yield env


def at_idp(location: str, username: str, password: str, base: str) -> tuple[str, dict[str, str]]:
    """Open the IdP URL, sign in on its form; the ACS URL and the fields its page would post."""
    with urllib.request.urlopen(location, timeout=10) as answer:
        ticket = re.search(r'name="ticket" value="([^"]+)"', answer.read().decode()).group(1)
    form = urllib.parse.urlencode({"ticket": ticket, "username": username, "password": password}).encode()
    with urllib.request.urlopen(f"{base}/login", form, timeout=10) as answer:
        return read_post_form(answer.read().decode())


async def start(env: Env, saml_idp: SamlIdp, next_path: str = "/") -> str:
    r = await env.client.get("/auth/sso/saml/start", query_string={"next": next_path})
    assert r.status_code == 303, await r.get_data(as_text=True)
    location = r.headers["Location"]
    assert location.startswith(f"{saml_idp.base}/sso/redirect?SAMLRequest=")
    return location


async def test_the_login_page_button_leads_to_a_sign_in_with_the_mapped_group(saml_env, saml_idp):
    page = await (await saml_env.client.get("/login")).get_data(as_text=True)
    assert 'data-backend="saml"' in page and LABEL in page
    location = await start(saml_env, saml_idp, "/review")
    acs, fields = at_idp(location, "ann", "ann's idp password", saml_idp.base)
    assert urllib.parse.urlsplit(acs).path == "/auth/sso/saml/callback"

    r = await saml_env.client.post("/auth/sso/saml/callback", form=fields)
    assert r.status_code == 303, await r.get_data(as_text=True)
    assert r.headers["Location"] == "/review"
    me = await (await saml_env.client.get("/api/v1/auth/me")).get_json()
    assert me["username"] == "ann" and me["auth_backend"] == "saml", me
    assert me["display_name"] == "Ann Archer" and me["email"] == "ann@example.org"
    assert [g["name"] for g in me["groups"]] == ["Operators"]  # idp-staff is not mapped

    # The same answer posted again finds its sign-in used up.
    again = await saml_env.app.test_client().post("/auth/sso/saml/callback", form=fields)
    assert again.status_code == 400
    assert "expired or was already used" in await again.get_data(as_text=True)


async def test_a_tampered_answer_is_refused_on_the_login_page_and_audited(saml_env, saml_idp):
    location = await start(saml_env, saml_idp)
    _, fields = at_idp(location, "ann", "ann's idp password", saml_idp.base)
    forged = {**fields, "SAMLResponse": tampered(fields["SAMLResponse"], ">ann<", ">admin<")}
    r = await saml_env.client.post("/auth/sso/saml/callback", form=forged)
    assert r.status_code == 401
    page = await r.get_data(as_text=True)
    assert f"{LABEL}: The identity provider&#39;s answer is not signed as required, or was changed" in page
    assert "SAMLResponse" not in page and fields["SAMLResponse"][:40] not in page
    async with saml_env.ctx.db.session() as s:
        assert (await s.exec(select(User).where(User.username.in_(["ann", "admin"])))).all() == []
        failed = (await s.exec(select(AuditEvent).where(AuditEvent.action == "auth.login_failed"))).all()
    assert [e.detail["method"] for e in failed] == ["saml"]
    assert "changed on the way" in failed[0].detail["reason"]
    # The sign-in was used up by the refused answer: the honest one cannot follow it.
    assert (await saml_env.client.post("/auth/sso/saml/callback", form=fields)).status_code == 400
    # The ACS takes the HTTP-POST binding only.
    assert (await saml_env.client.get("/auth/sso/saml/callback",
                                      query_string={"RelayState": fields["RelayState"]})).status_code == 405


async def test_an_unsolicited_answer_is_refused(saml_env, saml_idp):
    location = await start(saml_env, saml_idp)
    relay_state = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["RelayState"][0]
    r = await saml_env.client.get("/auth/sso/saml/metadata")
    acs = re.search(r'Location="([^"]+/callback)"', await r.get_data(as_text=True)).group(1)
    unsolicited = saml_idp.respond(None, "ann", in_response_to=None, acs_url=acs, sp_entity_id="urn:valt:core-test")
    r = await saml_env.client.post("/auth/sso/saml/callback",
                                   form={"SAMLResponse": unsolicited, "RelayState": relay_state})
    assert r.status_code == 401
    assert "does not belong to a sign-in started here" in await r.get_data(as_text=True)
