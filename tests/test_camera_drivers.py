"""ONVIF and Axis cameras as a site uses them, through the API: add, record, steer, presets, snapshot.

The devices are the ONVIF simulator and the Axis VAPIX fake under ``tests/peers``, each pointing
at a real GStreamer RTSP camera; the driver code is the same that talks to real cameras.
"""

from __future__ import annotations

import asyncio
import io
import re

import av
import pytest
from sqlmodel import select

from valt_core.db.models import AuditEvent

from .peers.axis import AxisDevice
from .peers.cameras import RtspCamera
from .peers.netns import NetNamespace
from .peers.onvif import OnvifDevice
from .test_recording import Studio, probe, wait_for

ONLY_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def rtsp_cam():
    cam = RtspCamera("--mount", "/cam", "--fps", "25", "--gop", "25")
    yield cam
    cam.stop()


@pytest.fixture(scope="module")
def axis_rtsp():
    cam = RtspCamera("--mount", "/axis-media/media.amp", "--fps", "25", "--gop", "25")
    yield cam
    cam.stop()


@pytest.fixture
def onvif_device(rtsp_cam):
    with OnvifDevice(rtsp_cam.url, user="admin", password="s3cret pass") as dev:
        yield dev


@pytest.fixture
def axis_device(axis_rtsp):
    with AxisDevice(rtsp_port=axis_rtsp.port, user="root", password="axis pass") as dev:
        yield dev


def onvif_config(dev, password="s3cret pass"):
    return {"host": dev.host, "port": dev.port, "username": "admin", "password": password}


def axis_config(dev, rtsp_port: int, password="axis pass"):
    return {"host": dev.host, "http_port": dev.port, "rtsp_port": rtsp_port, "username": "root", "password": password}


async def journey(env, driver: str, config: dict, wrong: dict, state, preset_names: set[str]):
    """The user journey both drivers must pass; ``state()`` reads the device's own idea of its position."""
    admin = env.bearer(await env.user("admin", "admin"))
    operator = env.bearer(await env.user("op", "operator"))
    viewer = env.bearer(await env.user("view", "viewer"))
    client = env.client

    # Testing the settings before adding: a wrong password is refused with a clear message.
    r = await client.post("/api/v1/cameras/probe", json={"driver": driver, "config": wrong}, headers=admin)
    body = await r.get_json()
    assert r.status_code == 502 and body["error"] == "camera_auth_failed", body
    assert "refused the user name or password" in body["message"] and wrong["password"] not in body["message"]
    r = await client.post("/api/v1/cameras/probe", json={"driver": driver, "config": config}, headers=admin)
    found = await r.get_json()
    assert r.status_code == 200, found
    assert found["identity"]["serial"] and found["identity"]["manufacturer"]
    assert {"ptz", "ptz_absolute", "ptz_relative", "presets", "snapshot"} <= set(found["capabilities"])
    assert found["streams"][0]["name"] == "main" and found["streams"][0]["codec"] == "h264"

    # Add it to a room; it comes online from the stream URI the device gave, and records.
    studio = Studio(env, (admin["Authorization"].split()[1]))
    (cam_id,) = await studio.setup({"PTZ 1": {"driver": driver, "config": config}})
    cam = await studio.camera(cam_id)
    assert cam["config"]["password"] == "********"
    await studio.wait_status(cam_id, "online")
    rec = await studio.record("start", expect=201)
    await asyncio.sleep(3)
    await studio.record("stop")
    recording = await studio.recording(rec["id"])
    (track,) = recording["tracks"]
    played = probe(await (await studio.media(rec["id"], track["id"])).get_data())
    assert played["video"] == "h264" and played["duration"] >= 2.0 and played["frames"] >= 40, played

    # Steering: press and hold (move), release (stop); the device really turned.
    url = f"/api/v1/cameras/{cam_id}/ptz"
    r = await client.post(url, json={"action": "move", "pan": 0.5}, headers=viewer)
    assert r.status_code == 403
    assert (await client.post(url, json={"action": "move", "pan": 0.5}, headers=operator)).status_code == 204
    await asyncio.sleep(0.5)
    assert (await client.post(url, json={"action": "stop"}, headers=operator)).status_code == 204
    pos = await (await client.get(url, headers=viewer)).get_json()
    assert pos["pan"] > 0.02 and not pos["moving"], pos
    assert state()["position"]["pan"] > 0
    r = await client.post(url, json={"action": "absolute", "pan": -0.5, "tilt": 0.25, "zoom": 0.5}, headers=operator)
    assert r.status_code == 204
    pos = await (await client.get(url, headers=viewer)).get_json()
    assert (round(pos["pan"], 2), round(pos["tilt"], 2), round(pos["zoom"], 2)) == (-0.5, 0.25, 0.5)
    r = await client.post(url, json={"action": "relative", "pan": 0.25, "tilt": 0, "zoom": 0}, headers=operator)
    assert r.status_code == 204
    pos = await (await client.get(url, headers=viewer)).get_json()
    assert round(pos["pan"], 2) == -0.25, pos
    r = await client.post(url, json={"action": "absolute", "pan": 2}, headers=operator)
    assert r.status_code == 400

    # Presets: save where it points, move away, recall, list, delete.
    presets_url = f"/api/v1/cameras/{cam_id}/presets"
    r = await client.post(presets_url, json={"name": "Door"}, headers=operator)
    door = await r.get_json()
    assert r.status_code == 201 and door["name"] == "Door", door
    await client.post(url, json={"action": "absolute", "pan": 0.75, "tilt": -0.5, "zoom": 0}, headers=operator)
    r = await client.post(url, json={"action": "goto_preset", "preset": door["token"]}, headers=operator)
    assert r.status_code == 204
    pos = await (await client.get(url, headers=viewer)).get_json()
    assert round(pos["pan"], 2) == -0.25 and round(pos["zoom"], 2) == 0.5, pos
    listed = await (await client.get(presets_url, headers=viewer)).get_json()
    assert {p["name"] for p in listed} == preset_names | {"Door"}
    assert (await client.delete(f"{presets_url}/{door['token']}", headers=operator)).status_code == 204
    listed = await (await client.get(presets_url, headers=viewer)).get_json()
    assert {p["name"] for p in listed} == preset_names
    r = await client.delete(f"{presets_url}/{door['token']}", headers=operator)
    assert r.status_code == 404, await r.get_json()
    r = await client.post(url, json={"action": "goto_preset", "preset": "no-such-preset"}, headers=operator)
    assert r.status_code == 404

    # A snapshot is a real JPEG of the camera.
    r = await client.get(f"/api/v1/cameras/{cam_id}/snapshot", headers=viewer)
    assert r.status_code == 200 and r.content_type == "image/jpeg"
    with av.open(io.BytesIO(await r.get_data())) as img:
        frame = next(img.decode(video=0))
        assert frame.width >= 320

    # Test the connection of the added camera; then a wrong password, set through an edit, fails it.
    r = await client.post(f"/api/v1/cameras/{cam_id}/test", headers=admin)
    assert r.status_code == 200 and (await r.get_json())["identity"]["serial"] == found["identity"]["serial"]
    r = await client.patch(f"/api/v1/cameras/{cam_id}", json={"config": {**wrong}}, headers=admin)
    assert r.status_code == 200, await r.get_json()
    r = await client.post(f"/api/v1/cameras/{cam_id}/test", headers=admin)
    assert r.status_code == 502 and (await r.get_json())["error"] == "camera_auth_failed"
    # Sent back masked, the stored password is kept: the right one, restored, works again.
    r = await client.patch(f"/api/v1/cameras/{cam_id}", json={"config": config}, headers=admin)
    r = await client.patch(f"/api/v1/cameras/{cam_id}", json={"config": {**config, "password": "********"}},
                           headers=admin)
    assert r.status_code == 200
    assert (await client.post(f"/api/v1/cameras/{cam_id}/test", headers=admin)).status_code == 200

    async with env.ctx.db.session() as s:
        actions = {e.action for e in (await s.exec(select(AuditEvent))).all()}
    assert {"camera.preset.save", "camera.preset.goto", "camera.preset.delete", "camera.snapshot",
            "camera.update"} <= actions
    return cam_id


@ONLY_SQLITE
async def test_onvif_camera_journey(env, onvif_device):
    await journey(env, "onvif", onvif_config(onvif_device), onvif_config(onvif_device, "wrong"),
                  onvif_device.state, set())
    assert onvif_device.state()["auth_failures"] >= 2


@ONLY_SQLITE
async def test_axis_camera_journey(env, axis_device, axis_rtsp):
    config = axis_config(axis_device, axis_rtsp.port)
    await journey(env, "axis", config, {**config, "password": "wrong"}, axis_device.state, {"Home"})
    assert axis_device.state()["auth_failures"] >= 2


@ONLY_SQLITE
async def test_unreachable_and_unsupported_are_clear(env, rtsp_cam):
    admin = env.bearer(await env.user("admin", "admin"))
    r = await env.client.post("/api/v1/cameras/probe", headers=admin,
                              json={"driver": "onvif", "config": {"host": "127.0.0.1", "port": 9}})
    body = await r.get_json()
    assert r.status_code == 502 and body["error"] == "camera_unreachable" and "127.0.0.1:9" in body["message"]
    # A camera whose driver has no PTZ: 501 without touching the device.
    r = await env.client.post("/api/v1/cameras", headers=admin,
                              json={"name": "Fixed", "driver": "rtsp", "config": {"url": rtsp_cam.url}})
    cam_id = (await r.get_json())["id"]
    r = await env.client.post(f"/api/v1/cameras/{cam_id}/ptz", headers=admin, json={"action": "move", "pan": 1})
    body = await r.get_json()
    assert r.status_code == 501 and body["error"] == "not_supported" and "Fixed" in body["message"]
    # Its driver takes no snapshots: the still comes from the newest keyframe of the stream.
    r = await env.client.get(f"/api/v1/cameras/{cam_id}/snapshot", headers=admin)
    assert r.status_code == 200 and r.content_type == "image/jpeg", await r.get_data()
    with av.open(io.BytesIO(await r.get_data())) as img:
        frame = next(img.decode(video=0))
        assert (frame.width, frame.height) == (640, 360)


@ONLY_SQLITE
async def test_onvif_device_without_ptz_shows_no_ptz(env, rtsp_cam):
    admin = env.bearer(await env.user("admin", "admin"))
    with OnvifDevice(rtsp_cam.url, user="admin", password="pw", ptz=False) as dev:
        config = {"host": dev.host, "port": dev.port, "username": "admin", "password": "pw"}
        r = await env.client.post("/api/v1/cameras/probe", headers=admin, json={"driver": "onvif", "config": config})
        caps = set((await r.get_json())["capabilities"])
        assert "snapshot" in caps and "ptz" not in caps and "presets" not in caps
        r = await env.client.post("/api/v1/cameras", headers=admin,
                                  json={"name": "Fixed ONVIF", "driver": "onvif", "config": config})
        cam_id = (await r.get_json())["id"]
        await env.client.post(f"/api/v1/cameras/{cam_id}/test", headers=admin)
        cam = await (await env.client.get(f"/api/v1/cameras/{cam_id}", headers=admin)).get_json()
        assert "ptz" not in cam["capabilities"]
        r = await env.client.post(f"/api/v1/cameras/{cam_id}/ptz", headers=admin, json={"action": "stop"})
        assert r.status_code == 501


@ONLY_SQLITE
async def test_clock_far_off_is_warned_about(env, rtsp_cam):
    admin = env.bearer(await env.user("admin", "admin"))
    with OnvifDevice(rtsp_cam.url, user="admin", password="pw", clock_offset_s=3600) as dev:
        config = {"host": dev.host, "port": dev.port, "username": "admin", "password": "pw"}
        r = await env.client.post("/api/v1/cameras/probe", headers=admin, json={"driver": "onvif", "config": config})
        body = await r.get_json()
        assert r.status_code == 200, body  # the device still accepts us: requests are signed in its time
        (warning,) = body["identity"]["warnings"]
        # The device's clock has whole seconds: the offset is 3600 give or take one.
        assert re.search(r"clock is \+(3599|3600|3601) s off", warning), warning


@ONLY_SQLITE
async def test_discovery_finds_onvif_and_axis_in_a_private_network(env, rtsp_cam):
    admin = env.bearer(await env.user("admin", "admin"))
    with NetNamespace() as ns, \
            OnvifDevice(rtsp_cam.url, user="admin", password="pw", netns=ns,
                        discovery_address=ns.ns_address) as onvif, \
            AxisDevice(rtsp_port=554, password="pw", netns=ns, ssdp_address=ns.ns_address) as axis:
        # Probes go out only from the host end of the private link.
        env.ctx.settings.cameras.discovery_addresses = [ns.host_address]
        r = await env.client.post("/api/v1/cameras/discover", json={"timeout_s": 2}, headers=admin)
        body = await r.get_json()
        assert r.status_code == 200, body
        by_driver = {f["driver"]: f for f in body["found"]}
        assert set(by_driver) == {"onvif", "axis"}, body
        assert by_driver["onvif"]["config"] == {"host": ns.ns_address, "port": onvif.port}
        assert by_driver["axis"]["config"] == {"host": ns.ns_address, "http_port": axis.port}
        assert by_driver["axis"]["serial"] == "ACCC8E000001" and by_driver["onvif"]["model"]
        assert body["took_s"] < 4
        # Add what was found (the person types the password), and it answers.
        config = {**by_driver["onvif"]["config"], "username": "admin", "password": "pw"}
        r = await env.client.post("/api/v1/cameras", headers=admin,
                                  json={"name": "Found", "driver": "onvif", "config": config})
        assert r.status_code == 201
        r = await env.client.post("/api/v1/cameras/discover", json={"timeout_s": 1.5}, headers=admin)
        again = {f["driver"]: f for f in (await r.get_json())["found"]}
        assert again["onvif"]["camera_id"] is not None and again["axis"]["camera_id"] is None
        # With no camera network configured on that link, nothing there is found.
        env.ctx.settings.cameras.discovery_addresses = ["127.0.0.1"]
        r = await env.client.post("/api/v1/cameras/discover", json={"timeout_s": 1}, headers=admin)
        assert (await r.get_json())["found"] == []


async def test_edit_and_remove_cameras_keep_recordings(env):
    """Edits are validated by the driver; removal keeps past recordings (SQLite and MariaDB)."""
    admin = env.bearer(await env.user("admin", "admin"))
    client = env.client
    r = await client.post("/api/v1/rooms", json={"name": "Room"}, headers=admin)
    room_id = (await r.get_json())["id"]
    r = await client.post("/api/v1/cameras", headers=admin,
                          json={"name": "Sim", "driver": "sim", "room_id": room_id, "config": {"fps": 10}})
    cam_id = (await r.get_json())["id"]
    r = await client.patch(f"/api/v1/cameras/{cam_id}", json={"config": {"fps": 0}}, headers=admin)
    body = await r.get_json()
    assert r.status_code == 400 and "fps" in str(body), body
    r = await client.patch(f"/api/v1/cameras/{cam_id}", json={"name": "Sim 2", "config": {"fps": 12}}, headers=admin)
    body = await r.get_json()
    assert r.status_code == 200 and body["name"] == "Sim 2" and body["config"]["fps"] == 12
    # A taken name while moving rooms: a clear 409 from the route itself (a lookup used to flush
    # the name first, so the clash surfaced as a database error).
    await client.post("/api/v1/cameras", headers=admin, json={"name": "Other", "driver": "sim", "enabled": False})
    r = await client.patch(f"/api/v1/cameras/{cam_id}", json={"name": "Other", "room_id": room_id}, headers=admin)
    assert r.status_code == 409 and (await r.get_json())["message"] == "a camera named 'Other' already exists"
    r = await client.post(f"/api/v1/rooms/{room_id}/record/start", headers=admin)
    rec_id = (await r.get_json())["id"]
    assert (await client.delete(f"/api/v1/cameras/{cam_id}", headers=admin)).status_code == 409
    await asyncio.sleep(1.5)
    await client.post(f"/api/v1/rooms/{room_id}/record/stop", headers=admin)
    assert (await client.delete(f"/api/v1/cameras/{cam_id}", headers=admin)).status_code == 204
    assert (await client.get(f"/api/v1/cameras/{cam_id}", headers=admin)).status_code == 404
    rec = await (await client.get(f"/api/v1/recordings/{rec_id}", headers=admin)).get_json()
    assert len(rec["tracks"]) == 1 and rec["tracks"][0]["camera_id"] is None

    async def no_pipeline():
        return cam_id not in env.ctx.engine.pipelines
    await wait_for(no_pipeline, 5, "the removed camera's pipeline to stop")
