"""Live access ends with what granted it: sign-out, a disabled user, a removed or disabled camera.

Each test is named after a finding of the hardening review (issue 9) that it failed on.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from quart.testing.connections import WebsocketDisconnectError
from sqlmodel import select

from valt_core.context import ValtContext
from valt_core.db.models import AuditEvent, Camera
from valt_core.users import change_user

from .test_live import live_token
from .test_recording import Studio

SMALL = {"driver": "sim", "config": {"width": 320, "height": 240, "keyframe_interval": 25}}


async def refused(env, url) -> int:
    """The close code a socket opened on ``url`` gets before any media.

    (Quart's test client keeps the code, not the reason; the reasons are read over a real
    server in test_live_server.py.)
    """
    async with env.client.websocket(url) as ws:
        with pytest.raises(WebsocketDisconnectError) as info:
            await ws.receive()
    return info.value.args[0]


async def closed_while_playing(ws, timeout: float = 10.0) -> int:
    """Read media until the server closes the socket; its close code."""
    async def drain():
        while True:
            await ws.receive()

    with pytest.raises(WebsocketDisconnectError) as info:
        await asyncio.wait_for(drain(), timeout)
    return info.value.args[0]


async def test_live_token_outlives_logout(env):
    studio = Studio(env, await env.user("boss", "admin"))
    (cam_id,) = await studio.setup({"a": SMALL})
    await studio.wait_status(cam_id, "online")
    viewer = env.bearer(await env.user("vic", "viewer"))
    url = (await live_token(env, viewer, cam_id))["endpoints"]["wss"]
    later = (await live_token(env, viewer, cam_id))["endpoints"]["wss"]
    async with env.client.websocket(url) as ws:
        await ws.receive()  # playing
        assert (await env.client.post("/api/v1/auth/logout", headers=viewer)).status_code == 200
        assert await closed_while_playing(ws) == 4401
    # A token issued before the sign-out opens nothing any more.
    assert await refused(env, later) == 4401
    # The opening of the stream itself was audited, not only the token.
    async with env.ctx.db.session() as s:
        opened = (await s.exec(select(AuditEvent).where(AuditEvent.action == "camera.live.open"))).all()
    assert len(opened) == 1 and opened[0].actor_name == "vic" and opened[0].detail == {"transport": "wss"}


async def test_disabled_user_loses_live_view_even_when_disabled_elsewhere(env):
    """Disabled through the API: closed at once. From another process (``valt user disable``):
    closed at the next re-check."""
    env.ctx.live.recheck_s = 0.3
    studio = Studio(env, await env.user("boss", "admin"))
    (cam_id,) = await studio.setup({"a": SMALL})
    await studio.wait_status(cam_id, "online")
    wendy = env.bearer(await env.user("wendy", "viewer"))
    me = await (await env.client.get("/api/v1/auth/me", headers=wendy)).get_json()
    url = (await live_token(env, wendy, cam_id))["endpoints"]["wss"]
    async with env.client.websocket(url) as ws:
        await ws.receive()
        r = await env.client.patch(f"/api/v1/users/{me['id']}", json={"disabled": True}, headers=studio.h)
        assert r.status_code == 200 and (await r.get_json())["disabled"] is True
        assert await closed_while_playing(ws) == 4401
    assert (await env.client.get("/api/v1/auth/me", headers=wendy)).status_code == 401
    # Enabled again and signed in again; then disabled by a second Valt process on the same database.
    r = await env.client.patch(f"/api/v1/users/{me['id']}", json={"disabled": False}, headers=studio.h)
    assert r.status_code == 200
    r = await env.client.post("/api/v1/auth/login", json={"username": "wendy", "password": "correct horse 1"})
    wendy = env.bearer((await r.get_json())["token"])
    url = (await live_token(env, wendy, cam_id))["endpoints"]["wss"]
    other = ValtContext.build(env.ctx.settings)
    try:
        async with env.client.websocket(url) as ws:
            await ws.receive()
            await change_user(other, me["id"], disabled=True)
            assert await closed_while_playing(ws, timeout=5) == 4401
    finally:
        await other.db.dispose()


async def test_live_token_for_a_deleted_camera_opens_no_other_camera(env):
    studio = Studio(env, await env.user("boss", "admin"))
    (old_id,) = await studio.setup({"old": SMALL})
    await studio.wait_status(old_id, "online")
    url = (await live_token(env, studio.h, old_id))["endpoints"]["wss"]
    assert (await env.client.delete(f"/api/v1/cameras/{old_id}", headers=studio.h)).status_code == 204
    # Even a camera that gets the very same id (as SQLite used to hand out) is another camera.
    async with env.ctx.db.session() as s:
        await s.exec(sa.insert(Camera.__table__).values(id=old_id, name="new", driver="sim", config=SMALL["config"],
                                                          enabled=True, status="unknown", status_reason="",
                                                          created_at=sa.func.now()))
        await s.commit()
    assert await refused(env, url) == 4404


async def test_disabled_camera_can_still_be_watched(env):
    studio = Studio(env, await env.user("boss", "admin"))
    (cam_id,) = await studio.setup({"a": SMALL})
    await studio.wait_status(cam_id, "online")
    url = (await live_token(env, studio.h, cam_id))["endpoints"]["wss"]
    hls = (await live_token(env, studio.h, cam_id))["endpoints"]["hls"]
    async with env.client.websocket(url) as ws:
        await ws.receive()
        r = await env.client.patch(f"/api/v1/cameras/{cam_id}", json={"enabled": False}, headers=studio.h)
        assert r.status_code == 200
        assert await closed_while_playing(ws) == 4401
    cam = await studio.camera(cam_id)
    assert cam["enabled"] is False and cam["status"] == "disabled"
    # No new token, no still, no stream for an old token, no HLS.
    r = await env.client.get(f"/api/v1/cameras/{cam_id}/live", headers=studio.h)
    assert r.status_code == 409 and (await r.get_json())["error"] == "camera_disabled"
    r = await env.client.get(f"/api/v1/cameras/{cam_id}/snapshot", headers=studio.h)
    assert r.status_code == 409
    assert await refused(env, url) == 4409
    assert (await env.client.get(hls)).status_code == 409
    assert cam_id not in env.ctx.engine.pipelines
    # Enabled again, it streams again.
    r = await env.client.patch(f"/api/v1/cameras/{cam_id}", json={"enabled": True}, headers=studio.h)
    assert r.status_code == 200
    await studio.wait_status(cam_id, "online")
    url = (await live_token(env, studio.h, cam_id))["endpoints"]["wss"]
    async with env.client.websocket(url) as ws:
        assert (await ws.receive())  # the init message


async def test_own_password_change_keeps_this_session_and_ends_the_others(env):
    me_token = await env.user("pat", "admin")
    other = await env.client.post("/api/v1/auth/login", json={"username": "pat", "password": "correct horse 1"})
    other_token = (await other.get_json())["token"]
    me = await (await env.client.get("/api/v1/auth/me", headers=env.bearer(me_token))).get_json()
    r = await env.client.patch(f"/api/v1/users/{me['id']}", json={"password": "a brand new one"},
                               headers=env.bearer(me_token))
    assert r.status_code == 200
    assert (await env.client.get("/api/v1/auth/me", headers=env.bearer(me_token))).status_code == 200
    assert (await env.client.get("/api/v1/auth/me", headers=env.bearer(other_token))).status_code == 401
    # Nobody disables themselves or drops their own admin role by accident.
    for body in ({"disabled": True}, {"role": "viewer"}):
        r = await env.client.patch(f"/api/v1/users/{me['id']}", json=body, headers=env.bearer(me_token))
        assert r.status_code == 409
