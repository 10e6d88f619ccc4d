"""Moving a room's cameras to another media server (``PATCH /api/v1/rooms/{id}``), the camera move
it shares its code with, and the embedded media server in ``GET /api/v1/media-servers``.

The app runs its own media server (``local``) as ``valt serve`` does; the enrolled server ``ms1``
never starts, as on a site that enrols a server before it sets up its host. Whether a camera left
or came back to ``local`` is read from the engine's own pipelines, not from our answers.
"""

from __future__ import annotations

import asyncio

from sqlmodel import select

from valt_core.db.models import AuditEvent

SMALL = {"width": 320, "height": 240, "keyframe_interval": 25}


async def _site(env):
    """An admin, two rooms with sim cameras (two, and one), and the enrolled media server ms1."""
    token = await env.user("boss", "admin")
    h = env.bearer(token)
    rooms, cams = {}, {}
    for room_name, camera_names in (("Interview 1", ("wide", "table")), ("Interview 2", ("door",))):
        r = await env.client.post("/api/v1/rooms", json={"name": room_name}, headers=h)
        rooms[room_name] = (await r.get_json())["id"]
        for name in camera_names:
            r = await env.client.post("/api/v1/cameras", headers=h, json={
                "name": name, "driver": "sim", "room_id": rooms[room_name], "config": SMALL})
            assert r.status_code == 201, await r.get_json()
            cams[name] = (await r.get_json())["id"]
    r = await env.client.post("/api/v1/media-servers", json={"name": "ms1", "pool": "east"}, headers=h)
    assert r.status_code == 201, await r.get_json()
    return h, rooms, cams, (await r.get_json())["id"]


async def _assigned(env, h) -> dict[str, int | None]:
    cameras = await (await env.client.get("/api/v1/cameras", headers=h)).get_json()
    return {c["name"]: c["media_server_id"] for c in cameras}


async def _local_pipelines(env, expected: set[int], timeout_s: float = 10.0) -> set[int]:
    # The engine's own view of what it ingests; it starts a pipeline a moment after the answer.
    engine = env.ctx.media.engine
    deadline = asyncio.get_running_loop().time() + timeout_s
    while set(engine.pipelines) != expected and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    return set(engine.pipelines)


async def _audited(env, action: str) -> list[AuditEvent]:
    async with env.ctx.db.session() as s:
        return list((await s.exec(select(AuditEvent).where(AuditEvent.action == action))).all())


async def test_a_room_moves_to_another_server_and_back_with_one_audit_event_each(env):
    h, rooms, cams, ms1 = await _site(env)
    assert await _local_pipelines(env, set(cams.values())) == set(cams.values())

    r = await env.client.patch(f"/api/v1/rooms/{rooms['Interview 1']}", json={"media_server_id": ms1}, headers=h)
    assert r.status_code == 200, await r.get_json()
    room = await r.get_json()
    assert room["name"] == "Interview 1"
    assert {c["name"]: c["media_server_id"] for c in room["cameras"]} == {"table": ms1, "wide": ms1}
    assert await _assigned(env, h) == {"wide": ms1, "table": ms1, "door": None}
    # Released on the embedded server; the other room's camera stays there.
    assert await _local_pipelines(env, {cams["door"]}) == {cams["door"]}
    listed = {s["name"]: s for s in await (await env.client.get("/api/v1/media-servers", headers=h)).get_json()}
    assert listed["ms1"]["cameras"] == sorted([cams["wide"], cams["table"]])
    assert listed["local"]["cameras"] == [cams["door"]]
    [event] = await _audited(env, "room.move")
    assert event.target_type == "room" and event.target_id == str(rooms["Interview 1"])
    assert event.actor_name == "boss"
    assert sorted(event.detail["cameras"]) == sorted([cams["wide"], cams["table"]])
    assert event.detail["media_server_id"] == ms1
    assert await _audited(env, "camera.update") == []  # one event for the room, none per camera

    # Asked again, nothing moves and nothing more is audited.
    r = await env.client.patch(f"/api/v1/rooms/{rooms['Interview 1']}", json={"media_server_id": ms1}, headers=h)
    assert r.status_code == 200 and len(await _audited(env, "room.move")) == 1

    # null: back to the app server's own media server, which ingests them again.
    r = await env.client.patch(f"/api/v1/rooms/{rooms['Interview 1']}", json={"media_server_id": None}, headers=h)
    assert r.status_code == 200, await r.get_json()
    assert await _assigned(env, h) == {"wide": None, "table": None, "door": None}
    assert await _local_pipelines(env, set(cams.values())) == set(cams.values())
    back = (await _audited(env, "room.move"))[-1]
    assert back.detail["media_server_id"] is None and len(back.detail["cameras"]) == 2


async def test_only_server_managers_move_rooms(env):
    h, rooms, _cams, ms1 = await _site(env)
    url = f"/api/v1/rooms/{rooms['Interview 1']}"
    anonymous = await env.client.patch(url, json={"media_server_id": ms1})
    assert anonymous.status_code == 401
    for role in ("viewer", "operator"):
        token = await env.user(f"a_{role}", role)
        r = await env.client.patch(url, json={"media_server_id": ms1}, headers=env.bearer(token))
        assert r.status_code == 403, (role, await r.get_json())
        assert "servers.manage" in (await r.get_json())["message"]
    assert set((await _assigned(env, h)).values()) == {None}
    assert await _audited(env, "room.move") == []


async def test_room_moves_refuse_unknown_servers_bad_bodies_and_recording_rooms(env):
    h, rooms, _cams, ms1 = await _site(env)
    url = f"/api/v1/rooms/{rooms['Interview 1']}"
    # 101.0 is the integer 101 to JSON (and to the OpenAPI schema): an unknown server, not a bad body.
    for unknown in (ms1 + 100, float(ms1 + 100)):
        r = await env.client.patch(url, json={"media_server_id": unknown}, headers=h)
        assert r.status_code == 404, await r.get_json()
        assert (await r.get_json())["message"] == f"no media server {ms1 + 100}"
    r = await env.client.patch("/api/v1/rooms/999", json={"media_server_id": ms1}, headers=h)
    assert r.status_code == 404 and (await r.get_json())["message"] == "no room 999"
    for bad in ({"media_server_id": str(ms1)}, {"media_server_id": 0}, {"media_server_id": ms1 + 0.5},
                {"media_server_id": ms1, "name": "x"}):
        r = await env.client.patch(url, json=bad, headers=h)
        assert r.status_code == 400, (bad, await r.get_json())
        assert (await r.get_json())["error"] == "invalid_request"
    r = await env.client.post(f"{url}/record/start", headers=h)
    assert r.status_code == 201, await r.get_json()
    try:
        r = await env.client.patch(url, json={"media_server_id": ms1}, headers=h)
        assert r.status_code == 409
        assert "is recording" in (await r.get_json())["message"]
    finally:
        assert (await env.client.post(f"{url}/record/stop", headers=h)).status_code == 200
    assert set((await _assigned(env, h)).values()) == {None}
    assert await _audited(env, "room.move") == []


async def test_a_camera_given_to_a_server_that_is_away_waits_for_it(env):
    # The move is stored whether or not ms1 runs yet; it ingests its cameras when it arrives.
    h, _rooms, cams, ms1 = await _site(env)
    r = await env.client.patch(f"/api/v1/cameras/{cams['door']}", json={"media_server_id": ms1}, headers=h)
    assert r.status_code == 200, await r.get_json()
    assert (await r.get_json())["media_server_id"] == ms1
    assert cams["door"] not in await _local_pipelines(env, {cams["wide"], cams["table"]})
    r = await env.client.post("/api/v1/cameras", headers=h, json={
        "name": "spare", "driver": "sim", "config": SMALL, "media_server_id": ms1})
    assert r.status_code == 201, await r.get_json()
    listed = {s["name"]: s for s in await (await env.client.get("/api/v1/media-servers", headers=h)).get_json()}
    assert listed["ms1"]["cameras"] == sorted([cams["door"], (await r.get_json())["id"]])
    assert listed["ms1"]["status"] == "unknown"


async def test_the_embedded_media_server_is_listed_with_its_cameras_and_load(env):
    h, _rooms, cams, _ms1 = await _site(env)
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        servers = await (await env.client.get("/api/v1/media-servers", headers=h)).get_json()
        if servers[0]["status"] == "online" or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    local, enrolled = servers
    assert local["embedded"] is True and local["id"] is None and local["name"] == "local"
    assert local["status"] == "online" and local["last_seen_at"] is not None
    assert local["cameras"] == sorted(cams.values())
    assert local["cpu_percent"] is not None and local["events_waiting"] is not None
    assert enrolled["name"] == "ms1" and enrolled["embedded"] is False and enrolled["cameras"] == []
    viewer = await env.user("v1", "viewer")
    assert (await env.client.get("/api/v1/media-servers", headers=env.bearer(viewer))).status_code == 403
