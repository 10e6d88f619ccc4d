"""Tests of the ``hikvision`` driver against a stand-in ISAPI camera, and through Valt's API."""

from __future__ import annotations

import socket
import threading

import pytest
import valt_camera_hikvision.plugin as hikvision_plugin
from fake_camera import JPEG, FakeIsapiCamera
from sqlmodel import select
from valt_camera_hikvision.client import IsapiClient
from valt_camera_hikvision.driver import HikvisionCamera

from valt_core.app import create_app
from valt_core.cameras import Capability
from valt_core.db.models import Camera
from valt_core.errors import CameraAuthFailed, CameraError, CameraUnreachable, ValidationFailed
from valt_core.plugins import PluginHost
from valt_core.settings import Settings
from valt_core.users import create_user

PASSWORD = "p@ss:w/rd 1"


@pytest.fixture
def host() -> PluginHost:
    """A plugin host with this plugin registered through its hook, installed or not."""
    return PluginHost.load(disable=["cameras:hikvision"], extra_plugins=[hikvision_plugin])


def driver(host: PluginHost, **config) -> HikvisionCamera:
    return host.build_camera_driver("hikvision", {"host": "127.0.0.1", **config})


def test_hook_registers_the_driver(host):
    klass = host.camera_driver_class("hikvision")
    assert klass is HikvisionCamera
    assert klass.capabilities == Capability.STREAM | Capability.SNAPSHOT


async def test_identify_reads_the_device_info(host):
    with FakeIsapiCamera("admin", PASSWORD) as cam:
        info = await driver(host, http_port=cam.port, password=PASSWORD).identify()
    assert (info.manufacturer, info.model, info.firmware) == ("Hikvision", "DS-2CD2143G2-I", "V5.7.3")
    assert info.serial == "DS-2CD2143G2-I20240101AAWRL00000001"


async def test_snapshot_is_the_cameras_jpeg(host):
    with FakeIsapiCamera("operator", PASSWORD, channel=2) as cam:
        jpeg = await driver(host, http_port=cam.port, channel=2, username="operator", password=PASSWORD).snapshot()
    assert jpeg == JPEG
    assert "/ISAPI/Streaming/channels/201/picture" in cam.requests


async def test_wrong_password_is_refused(host):
    with FakeIsapiCamera("admin", PASSWORD) as cam:
        with pytest.raises(CameraAuthFailed) as caught:
            await driver(host, http_port=cam.port, password="wrong-password").identify()
    assert "wrong-password" not in caught.value.message


async def test_missing_resource_is_a_camera_error(host):
    with FakeIsapiCamera("admin", PASSWORD, channel=1) as cam:
        with pytest.raises(CameraError, match="HTTP 404"):
            await driver(host, http_port=cam.port, channel=3, password=PASSWORD).snapshot()


async def test_nothing_listening_is_unreachable(host):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(CameraUnreachable):
        await driver(host, http_port=port).identify()


def test_silent_camera_times_out():
    # Accepts the connection but never answers.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        accepted: list[socket.socket] = []
        t = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
        t.start()
        client = IsapiClient("127.0.0.1", server.getsockname()[1], "admin", "x", timeout_s=0.3)
        with pytest.raises(CameraUnreachable, match="timed out"):
            client.device_info()
        for conn in accepted:
            conn.close()


async def test_stream_uris(host):
    cam = driver(host, rtsp_port=8554, channel=1, username="ad min", password=PASSWORD)
    assert await cam.stream_uri() == "rtsp://ad%20min:p%40ss%3Aw%2Frd%201@127.0.0.1:8554/Streaming/Channels/101"
    assert (await cam.stream_uri("sub")).endswith("/Streaming/Channels/102")
    with pytest.raises(ValidationFailed, match="unknown stream profile"):
        await cam.stream_uri("third")
    v6 = host.build_camera_driver("hikvision", {"host": "[fd00::64]"})
    assert await v6.stream_uri() == "rtsp://admin:@[fd00::64]:554/Streaming/Channels/101"
    assert [(s.name, s.codec, s.width, s.height) for s in await cam.streams()] == [
        ("main", "h264", 0, 0), ("sub", "h264", 0, 0)]


@pytest.mark.parametrize("config, problem", [
    ({}, "host: Field required"),
    ({"host": "http://10.0.0.5/"}, "host: .*without scheme"),
    ({"host": "10.0.0.5:8000"}, "host: give the ports as rtsp_port and http_port"),
    ({"host": "10.0.0.5", "rtsp_port": 0}, "rtsp_port"),
    ({"host": "10.0.0.5", "channel": 0}, "channel"),
    ({"host": "10.0.0.5", "pasword": "x"}, "pasword: unknown setting"),
])
def test_bad_config_is_refused(host, config, problem):
    with pytest.raises(ValidationFailed, match=problem):
        host.build_camera_driver("hikvision", config)


async def test_api_adds_a_camera_and_masks_its_password(host, tmp_path):
    settings = Settings.model_validate({
        "data_dir": str(tmp_path),
        # Cheap hashes: this test is about cameras, not password strength.
        "auth": {"backend_options": {"local": {"time_cost": 1, "memory_cost_kib": 8192, "parallelism": 1}}},
    })
    app = create_app(settings, host)
    ctx = app.extensions["valt"]
    await ctx.db.upgrade()
    try:
        await create_user(ctx, "admin", "admin-password", role="admin")
        client = app.test_client()
        login = await client.post("/api/v1/auth/login", json={"username": "admin", "password": "admin-password"})
        auth = {"Authorization": f"Bearer {(await login.get_json())['token']}"}
        room = await (await client.post("/api/v1/rooms", json={"name": "Room 3"}, headers=auth)).get_json()

        resp = await client.post("/api/v1/cameras", headers=auth, json={
            "name": "Room 3 wide", "driver": "hikvision", "room_id": room["id"],
            "config": {"host": "192.0.2.10", "password": PASSWORD},
        })
        assert resp.status_code == 201, await resp.get_data(as_text=True)
        camera = await resp.get_json()
        assert camera["config"] == {"host": "192.0.2.10", "rtsp_port": 554, "http_port": 80, "channel": 1,
                                    "username": "admin", "password": "********"}
        assert camera["capabilities"] == ["stream", "snapshot"]
        shown = await (await client.get(f"/api/v1/cameras/{camera['id']}", headers=auth)).get_data(as_text=True)
        assert PASSWORD not in shown
        async with ctx.db.session() as s:
            stored = (await s.exec(select(Camera).where(Camera.id == camera["id"]))).one()
        assert stored.config["password"] == PASSWORD  # kept for the driver, only hidden in answers

        bad = await client.post("/api/v1/cameras", headers=auth, json={
            "name": "Room 3 table", "driver": "hikvision", "config": {"host": "192.0.2.11", "rtsp_port": 70000}})
        assert bad.status_code == 400
        assert (await bad.get_json())["error"] == "invalid_request"
    finally:
        await ctx.db.dispose()
