"""OIDC sign-in through the core's routes (/auth/sso/oidc/start and /callback) with the ``oidc``
backend and the real provider of tests/peers/oidc, on SQLite and MariaDB.

The test plays the browser: it follows the start route's redirect to the provider over HTTP,
signs in on the provider's form, and brings the provider's redirect back to Valt's callback with
the test client (which keeps Valt's cookies, as a browser would).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlmodel import select

from valt_core.app import create_app
from valt_core.db.models import AuditEvent, User

from .conftest import Env, make_settings
from .peers.oidc import USERS, OidcProvider, ProviderClient, sign_in_at_provider

LABEL = "Sign in with Test IdP"
SECRET = "core test client secret"
# The test client's requests are to http://localhost, so that is where Valt says to come back.
CALLBACK = "http://localhost/auth/sso/oidc/callback"


@pytest.fixture(scope="module")
def oidc_provider(tmp_path_factory):
    provider = OidcProvider(tmp_path_factory.mktemp("oidc-core"),
                            [ProviderClient("valt", SECRET, (CALLBACK,), ("http://localhost/login",))])
    yield provider
    provider.stop()


@pytest.fixture
async def oidc_env(tmp_path: Path, database_url: str, oidc_provider: OidcProvider):
    """The app with ``local`` and ``oidc``."""
    settings = make_settings(tmp_path, database_url)
    settings.auth.backends = ["local", "oidc"]
    settings.auth.backend_options["oidc"] = {
        "issuer": oidc_provider.issuer, "client_id": "valt", "client_secret": SECRET, "sign_in_label": LABEL,
        "scopes": ["openid", "profile", "email", "groups"],
        "group_map": {"idp-observers": "Viewers", "idp-interviewers": "Operators"}}
    app = create_app(settings)
    ctx = app.extensions["valt"]
    await ctx.db.upgrade()
    async with app.test_app() as test_app:
        yield Env(app=app, ctx=ctx, client=test_app.test_client())


async def sign_in(env: Env, username: str, password: str, next_path: str = "/", cancel: bool = False):
    """Start at Valt, sign in at the provider, and bring its answer to Valt's callback."""
    r = await env.client.get("/auth/sso/oidc/start", query_string={"next": next_path})
    assert r.status_code == 303, await r.get_data(as_text=True)
    params = await sign_in_at_provider(r.headers["Location"], username, password, CALLBACK, cancel=cancel)
    return await env.client.get("/auth/sso/oidc/callback", query_string=params), params


async def test_the_button_signs_in_with_the_mapped_group_and_an_answer_works_once(oidc_env):
    page = await (await oidc_env.client.get("/login")).get_data(as_text=True)
    assert 'data-backend="oidc"' in page and LABEL in page
    r, params = await sign_in(oidc_env, "olivia", "olivia's provider pw", "/review")
    assert r.status_code == 303, await r.get_data(as_text=True)
    assert r.headers["Location"] == "/review"
    me = await (await oidc_env.client.get("/api/v1/auth/me")).get_json()
    assert me["username"] == "olivia" and me["auth_backend"] == "oidc", me
    assert me["display_name"] == "Olivia Observer" and me["email"] == "olivia@example.test"
    assert [g["name"] for g in me["groups"]] == ["Viewers"]

    again = await oidc_env.client.get("/auth/sso/oidc/callback", query_string=params)
    assert again.status_code == 400
    assert "expired or was already used" in await again.get_data(as_text=True)


async def test_groups_follow_the_provider_at_each_sign_in(oidc_env, oidc_provider):
    r, _ = await sign_in(oidc_env, "ivan", "ivan's provider pw")
    assert r.status_code == 303
    me = await (await oidc_env.client.get("/api/v1/auth/me")).get_json()
    assert [g["name"] for g in me["groups"]] == ["Operators"]

    # At the provider Ivan moves from the interviewers to the observers.
    moved = tuple(dataclasses.replace(u, groups=("idp-observers",)) if u.username == "ivan" else u for u in USERS)
    oidc_provider.stop()
    oidc_provider.users = moved
    try:
        oidc_provider.start()
        r, _ = await sign_in(oidc_env, "ivan", "ivan's provider pw")
        assert r.status_code == 303
    finally:
        oidc_provider.stop()
        oidc_provider.users = USERS
        oidc_provider.start()
    me = await (await oidc_env.client.get("/api/v1/auth/me")).get_json()
    assert [g["name"] for g in me["groups"]] == ["Viewers"]
    assert "recordings.record" not in me["rights"]


async def test_a_refusal_shows_on_the_login_page_is_audited_and_makes_no_user(oidc_env):
    r, params = await sign_in(oidc_env, "nadia", "", cancel=True)
    assert params["error"] == "access_denied"
    assert r.status_code == 401
    page = await r.get_data(as_text=True)
    assert f"{LABEL}: The identity provider did not let you sign in (access denied)." in page
    async with oidc_env.ctx.db.session() as s:
        assert (await s.exec(select(User).where(User.username == "nadia"))).first() is None
        events = (await s.exec(select(AuditEvent).where(AuditEvent.action == "auth.login_failed"))).all()
    assert [(e.detail or {}).get("method") for e in events] == ["oidc"]
    assert "access denied" in events[0].detail["reason"]
