"""The Observe tiles in Debian's Chromium say why a camera is not online."""

from __future__ import annotations

from playwright.async_api import expect

from .peers.cameras import RtspCamera
from .test_browser import browser, sign_in  # noqa: F401 - fixture
from .test_cli import Server, http


async def test_observe_tile_shows_the_reason_a_camera_is_offline(tmp_path, browser):  # noqa: F811
    cam = RtspCamera("--user", "cam", "--password", "right one")
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD="tiles demo pw")
    try:
        token = http("POST", server.base + "/api/v1/auth/login",
                     {"username": "admin", "password": "tiles demo pw"})[1]["token"]
        room_id = http("GET", server.base + "/api/v1/rooms", token=token)[1][0]["id"]
        status, made = http("POST", server.base + "/api/v1/cameras", {
            "name": "door", "driver": "rtsp", "room_id": room_id,
            "config": {"url": cam.url, "username": "cam", "password": "wrong one"}}, token)
        assert status == 201, made
        page = await browser.new_page(viewport={"width": 1280, "height": 860})
        await sign_in(page, server.base, "tiles demo pw")
        await page.goto(server.base + "/observe")
        tile = page.locator(f'.tile[data-camera-id="{made["id"]}"] .status')
        # The page refreshes statuses every 3 s; the camera refuses the password at once.
        # (expect, not wait_for_function: the page's CSP forbids evaluating strings.)
        await expect(tile).to_have_text("offline · wrong credentials", timeout=20000)
        assert await tile.get_attribute("title") == "wrong credentials"
        other_tiles = page.locator(f'.tile:not([data-camera-id="{made["id"]}"]) .status')
        # The simulated cameras come online on their own time on a busy machine: wait for one.
        await expect(other_tiles.first).to_have_text("online", timeout=20000)
        others = await other_tiles.all_inner_texts()
        # A camera that is online shows no reason.
        assert "online" in others and not any(s.startswith("online ·") for s in others), others
    finally:
        server.stop()
        cam.stop()
