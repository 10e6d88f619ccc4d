"""Every /api/v1 route demands sign-in, and the right role: proven by walking all routes."""

from __future__ import annotations

import re

from valt_core.api.guard import SIGNED_IN
from valt_core.auth.access import BUILTIN_RIGHTS

PUBLIC = {"/api/v1/auth/login", "/api/v1/health", "/api/v1/openapi.json"}


def api_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            view = app.view_functions[rule.endpoint]
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                path = re.sub(r"<(?:\w+:)?\w+>", "1", rule.rule)
                yield method, rule.rule, path, view


def test_every_route_is_guarded_or_deliberately_public(tmp_path):
    from valt_core.app import create_app

    from .conftest import make_settings

    app = create_app(make_settings(tmp_path))
    seen_public = set()
    routes = list(api_routes(app))
    assert len(routes) >= 12
    for method, rule, _path, view in routes:
        permission = getattr(view, "valt_permission", None)
        is_public = getattr(view, "valt_public", False)
        assert bool(permission) != bool(is_public), f"{method} {rule} must be guarded by exactly one of require/public"
        if is_public:
            seen_public.add(rule)
    assert seen_public == PUBLIC


async def test_no_token_gets_401_and_a_weaker_role_gets_403(env):
    tokens = {role: await env.user(f"user_{role}", role) for role in BUILTIN_RIGHTS}
    checked_403 = 0
    for method, rule, path, view in api_routes(env.app):
        permission = getattr(view, "valt_permission", None)
        if permission is None:
            continue
        r = await env.client.open(path, method=method, json={})
        assert r.status_code == 401, f"{method} {rule} answered {r.status_code} without a token"
        assert (await r.get_json())["error"] == "not_authenticated"
        for role, token in tokens.items():
            if permission == SIGNED_IN or permission in BUILTIN_RIGHTS[role]:
                continue
            r = await env.client.open(path, method=method, json={}, headers=env.bearer(token))
            assert r.status_code == 403, f"{method} {rule} let a {role} through ({r.status_code})"
            checked_403 += 1
    assert checked_403 >= 5


async def test_cookie_session_needs_csrf_for_changes(env):
    method = "POST"
    await env.user("root", "admin", password="admin password 1")
    # Sign in through the web form, as a browser does.
    page = await env.client.get("/login")
    csrf_login = re.search(r'name="csrf_token" value="([^"]+)"', await page.get_data(as_text=True)).group(1)
    r = await env.client.post("/login", form={"username": "root", "password": "admin password 1",
                                              "csrf_token": csrf_login})
    assert r.status_code == 302
    # Reads with the cookie work; a change without the CSRF token does not.
    assert (await env.client.get("/api/v1/rooms")).status_code == 200
    r = await env.client.open("/api/v1/rooms", method=method, json={"name": "Room A"})
    assert r.status_code == 403 and "CSRF" in (await r.get_json())["message"]
    home = await env.client.get("/")
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', await home.get_data(as_text=True)).group(1)
    r = await env.client.open("/api/v1/rooms", method=method, json={"name": "Room A"},
                              headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201
