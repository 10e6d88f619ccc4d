"""The JSON API as a client uses it: rooms, cameras, users, plugins, health, OpenAPI."""

from __future__ import annotations

import re

from sqlmodel import select

from valt_core.db.models import AuditEvent


async def test_health_reports_database_and_storage(env):
    r = await env.client.get("/api/v1/health")
    assert r.status_code == 200
    body = await r.get_json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "ok" and body["database"]["backend"] in ("sqlite", "mysql")
    assert body["storage"] == {**body["storage"], "status": "ok", "driver": "local"}
    assert body["storage"]["free_bytes"] > 0


async def test_rooms_and_cameras_round_trip(env):
    admin = await env.user("admin1", "admin")
    viewer = await env.user("viewer1", "viewer")
    r = await env.client.post("/api/v1/rooms", json={"name": "Interview 1", "description": "east wing"},
                              headers=env.bearer(admin))
    assert r.status_code == 201
    room = await r.get_json()
    r = await env.client.post("/api/v1/cameras", headers=env.bearer(admin), json={
        "name": "Interview 1 wide", "driver": "sim", "room_id": room["id"], "config": {"width": 320, "height": 240}})
    assert r.status_code == 201, await r.get_json()
    cam = await r.get_json()
    # The driver's model filled in its defaults.
    assert cam["config"]["fps"] == 25 and cam["config"]["width"] == 320
    assert set(cam["capabilities"]) >= {"stream", "snapshot"}
    listed = await (await env.client.get("/api/v1/rooms", headers=env.bearer(viewer))).get_json()
    assert [c["name"] for c in listed[0]["cameras"]] == ["Interview 1 wide"]
    one = await (await env.client.get(f"/api/v1/cameras/{cam['id']}", headers=env.bearer(viewer))).get_json()
    assert one["driver"] == "sim" and one["room_id"] == room["id"]
    got_room = await (await env.client.get(f"/api/v1/rooms/{room['id']}", headers=env.bearer(viewer))).get_json()
    assert got_room["description"] == "east wing" and len(got_room["cameras"]) == 1
    async with env.ctx.db.session() as s:
        actions = {e.action for e in (await s.exec(select(AuditEvent))).all()}
    assert {"room.create", "camera.create"} <= actions


async def test_bad_requests_get_clear_4xx_and_change_nothing(env):
    admin = await env.user("admin2", "admin")
    h = env.bearer(admin)
    assert (await env.client.post("/api/v1/rooms", json={"name": "A"}, headers=h)).status_code == 201
    dup = await env.client.post("/api/v1/rooms", json={"name": "A"}, headers=h)
    assert dup.status_code == 409 and "already exists" in (await dup.get_json())["message"]
    cases = [
        ({"name": "c1", "driver": "acme"}, "unknown camera driver 'acme'"),
        ({"name": "c1", "driver": "sim", "config": {"width": 641}}, "width: must be even"),
        ({"name": "c1", "driver": "sim", "room_id": 999}, "no room 999"),
        ({"name": "", "driver": "sim"}, "invalid request body"),
        ({"name": "c1", "driver": "sim", "colour": "red"}, "invalid request body"),
    ]
    for payload, message in cases:
        r = await env.client.post("/api/v1/cameras", json=payload, headers=h)
        assert r.status_code == 400, payload
        assert message in (await r.get_json())["message"], payload
    cams = await (await env.client.get("/api/v1/cameras", headers=h)).get_json()
    assert cams == []
    missing = await env.client.get("/api/v1/rooms/424242", headers=h)
    assert missing.status_code == 404 and (await missing.get_json())["error"] == "not_found"
    nowhere = await env.client.get("/api/v1/no-such-thing", headers=h)
    assert nowhere.status_code == 404 and (await nowhere.get_json())["error"] == "not_found"


async def test_camera_secrets_are_never_returned(env):
    from valt_core.db.models import Camera

    admin = await env.user("admin3", "admin")
    async with env.ctx.db.session() as s:
        # Keys named like secrets are masked whatever the driver declares.
        s.add(Camera(name="door", driver="sim", config={"password": "cam-pass-123", "width": 320}))
        await s.commit()
    r = await env.client.get("/api/v1/cameras", headers=env.bearer(admin))
    text = await r.get_data(as_text=True)
    assert "cam-pass-123" not in text
    assert (await r.get_json())[0]["config"] == {"password": "********", "width": 320}


async def test_users_api_creates_users_who_can_sign_in(env):
    admin = await env.user("boss", "admin")
    r = await env.client.post("/api/v1/users", headers=env.bearer(admin),
                              json={"username": "op1", "password": "long enough pw", "role": "operator"})
    assert r.status_code == 201
    assert "password" not in await r.get_data(as_text=True)
    r = await env.client.post("/api/v1/auth/login", json={"username": "op1", "password": "long enough pw"})
    assert r.status_code == 200 and (await r.get_json())["user"]["role"] == "operator"
    short = await env.client.post("/api/v1/users", headers=env.bearer(admin),
                                  json={"username": "op2", "password": "short"})
    assert short.status_code == 400
    users = await (await env.client.get("/api/v1/users", headers=env.bearer(admin))).get_json()
    assert {u["username"] for u in users} == {"boss", "op1"}


async def test_plugins_endpoint_lists_bundled_plugins(env):
    admin = await env.user("admin4", "admin")
    plugins = await (await env.client.get("/api/v1/plugins", headers=env.bearer(admin))).get_json()
    rows = {(p["group"], p["name"]): p for p in plugins}
    assert rows[("valt.cameras", "sim")]["distribution"] == "valt-camera-sim"
    assert rows[("valt.auth", "local")]["version"] == "0.1.0"
    assert ("valt.storage", "local") in rows


async def test_openapi_documents_every_route(env):
    doc = await (await env.client.get("/api/v1/openapi.json")).get_json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for rule in env.app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert method.lower() in paths[path], f"{method} {path} missing"
    login = paths["/api/v1/auth/login"]["post"]
    assert login["security"] == []
    schema_ref = login["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert doc["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]["required"] == ["username", "password"]
    assert paths["/api/v1/cameras"]["post"]["x-valt-permission"] == "cameras.manage"
    assert paths["/api/v1/rooms/{room_id}"]["get"]["parameters"][0]["schema"] == {
        "type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1}
