"""A phone's live view in Debian's Chromium, before and after it drops and comes back from another
address: the Observe tile plays the device, and plays it again once it publishes from 127.0.0.2.
Screenshots are kept in ``test-artifacts/``."""

from __future__ import annotations

import asyncio
import json

from .peers.mobile_sim import FfmpegPublisher, SourceProxy
from .test_browser import ARTIFACTS, CHROMIUM_ARGS, browser, sign_in, wait_until  # noqa: F401 - fixture
from .test_browser_observe import VIDEO_STATE
from .test_cli import Server, free_port, http, run

PASSWORD = "mobile boss password"


async def playing_for(page, seconds: float) -> dict:
    """The tile's video state after ``seconds`` more, asserting it played through them."""
    before = (await page.evaluate(VIDEO_STATE))[0]
    await asyncio.sleep(seconds)
    after = (await page.evaluate(VIDEO_STATE))[0]
    assert after["t"] - before["t"] > seconds * 0.6, (before, after)
    # New pictures decoded, not one frame held. (How many depends on how loaded the machine's two
    # cores are; the frame rate of live view is measured in bench/, not here.)
    assert after["frames"] > before["frames"], (before, after)
    return after


async def test_live_view_of_a_device_plays_before_and_after_it_reconnects_from_another_address(
        tmp_path, browser):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    rtmp = free_port()
    env = {"VALT_LIVE__TRANSPORT_OPTIONS": json.dumps({"rtmp": {"port": rtmp, "host": "127.0.0.1"}}),
           "VALT_MEDIA__PUSH_GRACE_S": "30"}
    assert run(tmp_path, "db", "upgrade", **env).returncode == 0
    r = run(tmp_path, "user", "add", "boss", "--admin", "--password-stdin", input=PASSWORD + "\n", **env)
    assert r.returncode == 0, r.stderr
    server = Server(tmp_path, "serve", **env)
    wifi = await SourceProxy(("127.0.0.1", rtmp), "127.0.0.1").start()
    lte = await SourceProxy(("127.0.0.1", rtmp), "127.0.0.2").start()
    publishers: list[FfmpegPublisher] = []
    try:
        token = http("POST", server.base + "/api/v1/auth/login", {"username": "boss", "password": PASSWORD})[1]["token"]
        room = http("POST", server.base + "/api/v1/rooms", {"name": "Field visit"}, token)[1]
        status, dev = http("POST", server.base + "/api/v1/devices", {"name": "Phone", "room_id": room["id"]}, token)
        assert status == 201, dev
        publishers.append(FfmpegPublisher(wifi.url(f"live/{dev['stream_key']}"), seconds=60, size="320x240").start())

        page = await browser.new_page(viewport={"width": 1000, "height": 700})
        await sign_in(page, server.base, PASSWORD, username="boss")
        await page.goto(f"{server.base}/observe/rooms/{room['id']}")
        await wait_until(page, "document.querySelector('.tile video').currentTime > 1", timeout=20000)
        await playing_for(page, 2)
        await page.screenshot(path=str(ARTIFACTS / "mobile-live-before.png"))

        wifi.drop()  # the phone loses Wi-Fi ...
        await asyncio.to_thread(publishers[0].wait, 10)
        await asyncio.sleep(2)
        # ... and comes back over "LTE", from another address, on the same key.
        publishers.append(FfmpegPublisher(lte.url(f"live/{dev['stream_key']}"), seconds=60, size="320x240").start())
        stalled = (await page.evaluate(VIDEO_STATE))[0]
        await wait_until(page, f"document.querySelector('.tile video').currentTime > {stalled['t'] + 1.5}",
                         timeout=20000)
        after = await playing_for(page, 2)
        assert after["lag"] is not None and after["lag"] < 3.0, after
        await page.screenshot(path=str(ARTIFACTS / "mobile-live-after.png"))
        status, listed = http("GET", server.base + f"/api/v1/devices/{dev['id']}", token=token)
        assert listed["last_published_from"] == "127.0.0.2" and listed["status"] == "online", listed
    finally:
        for pub in publishers:
            pub.stop()
        await wifi.close()
        await lte.close()
        server.stop()
