"""The web UI as a person uses it: sign-in form, the home page of rooms and cameras, sign-out."""

from __future__ import annotations

import re

from valt_core.db.models import Camera, Room


def _csrf(html: str, name: str = 'name="csrf_token" value') -> str:
    return re.search(name + r'="([^"]+)"', html).group(1)


async def _sign_in(env, username, password):
    page = await env.client.get("/login")
    return await env.client.post("/login", form={
        "username": username, "password": password, "csrf_token": _csrf(await page.get_data(as_text=True))})


async def test_home_sends_strangers_to_sign_in(env):
    for page in ("/", "/observe", "/observe/rooms/1"):
        r = await env.client.get(page)
        assert r.status_code == 302 and r.headers["Location"].endswith("/login"), page
    page = await env.client.get("/login")
    html = await page.get_data(as_text=True)
    assert page.status_code == 200 and 'type="password"' in html


async def test_sign_in_shows_rooms_and_cameras_then_sign_out(env):
    await env.user("olivia", "operator", password="olivia's password")
    async with env.ctx.db.session() as s:
        room = Room(name="Interview Room 1")
        s.add(room)
        await s.flush()
        s.add(Camera(name="Room 1 wide", driver="sim", room_id=room.id))
        s.add(Camera(name="Room 1 table", driver="sim", room_id=room.id))
        await s.commit()
    r = await _sign_in(env, "olivia", "olivia's password")
    assert r.status_code == 302
    cookie = r.headers.get("Set-Cookie", "")
    assert "valt_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    home = await env.client.get("/")
    html = await home.get_data(as_text=True)
    assert home.status_code == 200
    assert "Interview Room 1" in html and "Room 1 wide" in html and "Room 1 table" in html
    assert "olivia" in html and "(operator)" in html
    # Sign-out needs the page's CSRF token.
    assert (await env.client.post("/logout", form={"csrf_token": "forged"})).status_code == 403
    assert (await env.client.get("/")).status_code == 200
    out = await env.client.post("/logout", form={"csrf_token": _csrf(html)})
    assert out.status_code == 302
    assert (await env.client.get("/")).status_code == 302


async def test_wrong_password_on_the_form_is_refused(env):
    await env.user("pat", password="pat's password")
    r = await _sign_in(env, "pat", "not it at all")
    assert r.status_code == 401
    assert "Wrong user name or password" in await r.get_data(as_text=True)
    assert (await env.client.get("/")).status_code == 302


async def test_form_without_its_csrf_token_is_refused(env):
    await env.user("quinn", password="quinn's password")
    await env.client.get("/login")
    r = await env.client.post("/login", form={"username": "quinn", "password": "quinn's password",
                                              "csrf_token": "made-up"})
    assert r.status_code == 400
    assert (await env.client.get("/")).status_code == 302


async def test_page_text_is_escaped(env):
    await env.user("rita", password="rita's password")
    async with env.ctx.db.session() as s:
        s.add(Room(name="<script>alert(1)</script>"))
        await s.commit()
    await _sign_in(env, "rita", "rita's password")
    html = await (await env.client.get("/")).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
