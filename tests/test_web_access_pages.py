"""The Admin > Users and Admin > Groups pages as the server renders them, per person.

What the pages' scripts do with the API is tested in a real browser
(tests/test_browser_admin_access.py); here: who may open them and who sees their links.
"""

from __future__ import annotations

from .test_web import _sign_in

PAGES = {"/admin/users": "admin_users.js", "/admin/groups": "admin_groups.js"}
LINKS = ('href="/admin/users"', 'href="/admin/groups"')


async def test_the_pages_need_users_manage_and_only_its_holders_see_the_links(env):
    for path in PAGES:
        r = await env.client.get(path)
        assert r.status_code == 302 and r.headers["Location"].endswith("/login"), path

    boss = await env.user("ada", "admin", password="ada's password")
    # Someone in no built-in group, given users.manage by a group of their own.
    r = await env.client.post("/api/v1/users", headers=env.bearer(boss), json={
        "username": "hana", "password": "hana's password", "role": None})
    assert r.status_code == 201
    hana = (await r.get_json())["id"]
    r = await env.client.post("/api/v1/groups", headers=env.bearer(boss), json={
        "name": "People admins", "members": [hana], "rights": [{"right": "users.manage"}]})
    assert r.status_code == 201
    await env.user("otto", "operator", password="otto's password")

    for name, allowed in (("otto", False), ("hana", True), ("ada", True)):
        assert (await _sign_in(env, name, f"{name}'s password")).status_code == 302
        home = await (await env.client.get("/")).get_data(as_text=True)
        for link in LINKS:
            assert (link in home) is allowed, (name, link)
        for path, script in PAGES.items():
            page = await env.client.get(path)
            html = await page.get_data(as_text=True)
            if allowed:
                assert page.status_code == 200 and script in html and 'name="csrf-token"' in html, (name, path)
            else:
                assert page.status_code == 403 and "You may not open this page" in html, (name, path)
                assert script not in html
        env.client.cookie_jar.clear()
