"""Signing in with an OpenID provider in Debian's Chromium: ``valt demo`` with the ``oidc`` backend
next to ``local``, and the real provider of tests/peers/oidc.

The login page offers "Sign in with Test IdP"; the button leads to the provider's own form, where
Olivia types her name and password; she lands back on Valt signed in, in the Valt group her
provider group maps to (read through the API with the browser's own cookie), and sees the rooms
that group may see. Signing out of Valt ends her provider session too (one hop is made outside
the page, see below): the next "Sign in with" asks for her password again. Requests to anything
but this machine are refused by the browser.
"""

from __future__ import annotations

import json
import re

from playwright.async_api import expect

from .peers.nats import free_port
from .peers.oidc import OidcProvider, ProviderClient
from .test_browser import ARTIFACTS, browser  # noqa: F401 - fixture
from .test_cli import Server

SECRET = "journey client secret"


async def test_sign_in_with_the_provider_lands_signed_in_with_the_mapped_group(tmp_path, browser):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    provider_port = free_port()
    issuer = f"http://127.0.0.1:{provider_port}"
    options = {"issuer": issuer, "client_id": "valt", "client_secret": SECRET,
               "sign_in_label": "Sign in with Test IdP", "scopes": ["openid", "profile", "email", "groups"],
               "group_map": {"idp-observers": "Viewers"}}
    # Valt reads the provider's discovery document at the first sign-in, so it may start first;
    # the provider needs Valt's port for the client's redirect URIs.
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD="oidc journey pw",
                    VALT_AUTH__BACKENDS='["local", "oidc"]', VALT_AUTH__BACKEND_OPTIONS__OIDC=json.dumps(options))
    provider = None
    try:
        provider = OidcProvider(tmp_path / "provider", [ProviderClient(
            "valt", SECRET, (server.base + "/auth/sso/oidc/callback",), (server.base + "/login",))],
            port=provider_port)
        context = await browser.new_context(viewport={"width": 1100, "height": 800})
        await context.route(re.compile(r"^(?!http://127\.0\.0\.1:)"), lambda route: route.abort())
        page = await context.new_page()

        await page.goto(server.base + "/")
        await page.wait_for_url(re.compile(r".*/login"))
        button = page.locator(".sign-in-with a[data-backend=oidc]")
        await expect(button).to_have_text("Sign in with Test IdP")
        await expect(page.locator("input[name=password]")).to_be_visible()  # local passwords still work
        await page.screenshot(path=str(ARTIFACTS / "oidc-1-login.png"))

        await button.click()
        await page.wait_for_url(re.compile(re.escape(issuer) + r"/interaction/"))
        await page.fill("input[name=login]", "olivia")
        await page.fill("input[name=password]", "not her password")
        await page.click("button:text('Sign in')")
        await expect(page.locator("[role=alert]")).to_have_text("Wrong user name or password.")
        await page.fill("input[name=login]", "olivia")
        await page.fill("input[name=password]", "olivia's provider pw")
        await page.screenshot(path=str(ARTIFACTS / "oidc-2-provider.png"))
        await page.click("button:text('Sign in')")

        await page.wait_for_url(server.base + "/")
        await expect(page.locator("header .who")).to_have_text("Olivia Observer (viewer)")
        rooms = await page.locator("section.room h2").all_inner_texts()
        assert rooms == ["Interview Room 1", "Interview Room 2"]
        await page.screenshot(path=str(ARTIFACTS / "oidc-3-signed-in.png"))
        me = await (await page.request.get(server.base + "/api/v1/auth/me")).json()
        assert me["username"] == "olivia" and me["auth_backend"] == "oidc", me
        assert me["display_name"] == "Olivia Observer" and me["email"] == "olivia@example.test"
        assert [g["name"] for g in me["groups"]] == ["Viewers"]  # idp-staff is not mapped
        assert "live.watch" in me["rights"] and "recordings.record" not in me["rights"]

        # Signing out of Valt sends the browser on to the provider's sign-out.
        await page.click("header button:text('Sign out')")
        await page.wait_for_url(re.compile(re.escape(issuer) + r"/session/end.*"))
        await page.click("button:text('Yes, sign me out')")
        await page.wait_for_url(server.base + "/login")
        await page.goto(server.base + "/")
        await page.wait_for_url(re.compile(r".*/login"))
        # ... so the provider asks for the password again, instead of signing her straight back in.
        await page.locator(".sign-in-with a[data-backend=oidc]").click()
        await expect(page.locator("input[name=login]")).to_be_visible()
        await context.close()
    finally:
        if provider is not None:
            provider.stop()
        server.stop()
