"""The generic RTSP driver against a real RTSP camera (GStreamer) with and without credentials."""

from __future__ import annotations

import asyncio
import socket

import pytest
from valt_camera_rtsp.config import RtspCameraConfig
from valt_camera_rtsp.driver import RtspCamera as RtspDriver

from tests.peers.cameras import RtspCamera
from valt_core.cameras import rtsp_url_with_credentials as with_credentials
from valt_core.errors import CameraAuthFailed, CameraUnreachable
from valt_core.media.pipeline import OFFLINE, ONLINE, CameraPipeline


@pytest.fixture(scope="module")
def locked_camera():
    cam = RtspCamera("--user", "viewer", "--password", "p@ss word/1", "--audio", "aac")
    yield cam
    cam.stop()


async def test_right_credentials_open_the_stream(locked_camera):
    driver = RtspDriver(RtspCameraConfig(url=locked_camera.url, username="viewer", password="p@ss word/1"))
    (main,) = await driver.streams()
    assert (main.codec, main.width, main.height, main.audio_codec) == ("h264", 640, 360, "aac")
    assert (await driver.identify()).model == "RTSP camera at 127.0.0.1"


async def test_wrong_or_missing_credentials_are_refused_clearly(locked_camera):
    for password in ("wrong", ""):
        driver = RtspDriver(RtspCameraConfig(url=locked_camera.url, username="viewer" if password else "",
                                             password=password))
        with pytest.raises(CameraAuthFailed, match="refused the credentials"):
            await driver.identify()


async def test_unreachable_camera():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    driver = RtspDriver(RtspCameraConfig(url=f"rtsp://127.0.0.1:{port}/cam"))
    with pytest.raises(CameraUnreachable):
        await driver.identify()


async def test_pipeline_status_errors_never_show_the_password(locked_camera):
    driver = RtspDriver(RtspCameraConfig(url=locked_camera.url, username="viewer", password="wrong-secret"))
    pipe = CameraPipeline(driver, reconnect_max_s=1)
    await pipe.start()
    try:
        for _ in range(100):
            if pipe.status == OFFLINE:
                break
            await asyncio.sleep(0.1)
        assert pipe.status == OFFLINE
        assert "wrong-secret" not in pipe.last_error and "***@" in pipe.last_error
    finally:
        await pipe.stop()
    good = CameraPipeline(RtspDriver(RtspCameraConfig(url=locked_camera.url, username="viewer",
                                                      password="p@ss word/1")))
    await good.start()
    try:
        for _ in range(100):
            if good.status == ONLINE:
                break
            await asyncio.sleep(0.1)
        assert good.status == ONLINE and good.packets_received > 0
    finally:
        await good.stop()


def test_config_and_url_building():
    with pytest.raises(ValueError, match="rtsp:// URL"):
        RtspCameraConfig(url="http://cam/")
    with pytest.raises(ValueError, match="not in the URL"):
        RtspCameraConfig(url="rtsp://u:p@cam/stream")
    assert with_credentials("rtsp://[::1]:8554/a?x=1", "u", "p:w@") == "rtsp://u:p%3Aw%40@[::1]:8554/a?x=1"
    assert with_credentials("rtsp://cam/a", "", "") == "rtsp://cam/a"
