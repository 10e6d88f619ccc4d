"""The Admin > Cameras page and the PTZ pad as the server renders them, per role.

What the page's script does with the cameras API is tested in a real browser
(tests/test_browser_cameras.py); here: who may open the page, who sees its link and the pad.
"""

from __future__ import annotations

from valt_core.db.models import Camera, Room

from .test_web import _sign_in

NAV_LINK = 'href="/admin/cameras"'


async def test_admin_cameras_needs_a_signed_in_admin(env):
    r = await env.client.get("/admin/cameras")
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")

    for name in ("vera", "otto"):
        await env.user(name, "viewer" if name == "vera" else "operator", password=f"{name}'s password")
        assert (await _sign_in(env, name, f"{name}'s password")).status_code == 302
        page = await env.client.get("/admin/cameras")
        html = await page.get_data(as_text=True)
        assert page.status_code == 403, name
        assert "Not allowed" in html and "You may not open this page" in html
        # Neither the 403 page nor any other page links to it for them.
        assert NAV_LINK not in html
        assert NAV_LINK not in await (await env.client.get("/")).get_data(as_text=True)
        env.client.cookie_jar.clear()

    await env.user("ada", "admin", password="ada's password")
    await _sign_in(env, "ada", "ada's password")
    page = await env.client.get("/admin/cameras")
    html = await page.get_data(as_text=True)
    assert page.status_code == 200
    assert NAV_LINK in html and "Find cameras" in html and "admin_cameras.js" in html
    assert 'name="csrf-token"' in html
    for other in ("/", "/observe"):
        assert NAV_LINK in await (await env.client.get(other)).get_data(as_text=True), other


async def test_ptz_pad_is_rendered_for_operators_not_viewers(env):
    async with env.ctx.db.session() as s:
        room = Room(name="Room")
        s.add(room)
        await s.flush()
        s.add(Camera(name="Wide", driver="sim", room_id=room.id))
        await s.commit()
    await env.user("vera", "viewer", password="vera's password")
    await env.user("otto", "operator", password="otto's password")
    await _sign_in(env, "vera", "vera's password")
    html = await (await env.client.get("/observe")).get_data(as_text=True)
    assert 'class="tile"' in html and 'class="ptz"' not in html
    env.client.cookie_jar.clear()
    await _sign_in(env, "otto", "otto's password")
    html = await (await env.client.get("/observe")).get_data(as_text=True)
    # Rendered hidden: the script shows it only for cameras whose capabilities include ptz.
    assert '<div class="ptz" hidden>' in html and 'data-dir="right"' in html
