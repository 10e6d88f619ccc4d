"""Signing in through a SAML identity provider in Debian's Chromium: ``valt demo`` with the
``saml`` backend next to ``local``, and the pysaml2 IdP of tests/peers/saml_idp.py.

The IdP's admin registers Valt from the SP metadata Valt serves at /auth/sso/saml/metadata.
The login page offers "Sign in with Test IdP"; the button sends a signed AuthnRequest to the
IdP, whose own form takes Sam's name and password (a wrong one first); the IdP's answer is
posted back to Valt's ACS, and Sam lands on Valt signed in, in the Valt group his IdP group maps
to (read through the API with the browser's own cookie). Requests to anything but this machine
are refused by the browser.
"""

from __future__ import annotations

import json
import re
import urllib.request

from playwright.async_api import expect

from .peers.saml_idp import SamlIdp, make_key_pair
from .test_browser import ARTIFACTS, browser  # noqa: F401 - fixture
from .test_cli import FAST_AUTH_ENV, Server

ENTITY_ID = "urn:valt:journey-sp"


async def test_sign_in_with_the_saml_idp_lands_signed_in_with_the_mapped_group(tmp_path, browser):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    idp = SamlIdp(tmp_path / "idp")
    idp.add_user("sam", "sam's idp password", groups=["idp-observers", "idp-staff"],
                 display_name="Sam Saml", email="sam@example.test")
    sp_keys = make_key_pair(tmp_path / "sp", "sp")
    options = {**json.loads(FAST_AUTH_ENV["VALT_AUTH__BACKEND_OPTIONS"]),
               "saml": {"entity_id": ENTITY_ID, "sp_key_file": str(sp_keys.key), "sp_cert_file": str(sp_keys.cert),
                        "idp_metadata_url": f"{idp.base}/metadata", "sign_in_label": "Sign in with Test IdP",
                        "group_map": {"idp-observers": "Viewers"}}}
    server = None
    try:
        server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD="saml journey pw",
                        VALT_AUTH__BACKENDS='["local", "saml"]', VALT_AUTH__BACKEND_OPTIONS=json.dumps(options))
        with urllib.request.urlopen(server.base + "/auth/sso/saml/metadata", timeout=10) as answer:
            assert answer.headers["Content-Type"].startswith("application/samlmetadata+xml")
            assert idp.trust_sp(answer.read()) == ENTITY_ID

        context = await browser.new_context(viewport={"width": 1100, "height": 800})
        await context.route(re.compile(r"^(?!http://127\.0\.0\.1:)"), lambda route: route.abort())
        page = await context.new_page()
        await page.goto(server.base + "/")
        await page.wait_for_url(re.compile(r".*/login"))
        button = page.locator(".sign-in-with a[data-backend=saml]")
        await expect(button).to_have_text("Sign in with Test IdP")
        await page.screenshot(path=str(ARTIFACTS / "saml-1-login.png"))

        await button.click()
        await page.wait_for_url(re.compile(re.escape(idp.base) + r"/sso/redirect\?SAMLRequest="))
        await page.fill("input[name=username]", "sam")
        await page.fill("input[name=password]", "not his password")
        await page.click("button:text('Sign in')")
        await expect(page.locator("[role=alert]")).to_have_text("Wrong user name or password.")
        await page.fill("input[name=username]", "sam")
        await page.fill("input[name=password]", "sam's idp password")
        await page.screenshot(path=str(ARTIFACTS / "saml-2-idp.png"))
        await page.click("button:text('Sign in')")

        # The IdP's page posts the response to Valt's ACS, which signs Sam in and sends him home.
        await page.wait_for_url(server.base + "/")
        rooms = await page.locator("section.room h2").all_inner_texts()
        assert rooms == ["Interview Room 1", "Interview Room 2"]
        await page.screenshot(path=str(ARTIFACTS / "saml-3-signed-in.png"))
        me = await (await page.request.get(server.base + "/api/v1/auth/me")).json()
        assert me["username"] == "sam" and me["auth_backend"] == "saml", me
        assert me["display_name"] == "Sam Saml" and me["email"] == "sam@example.test"
        assert [g["name"] for g in me["groups"]] == ["Viewers"]  # idp-staff is not mapped
        await context.close()
    finally:
        if server is not None:
            server.stop()
        idp.stop()
