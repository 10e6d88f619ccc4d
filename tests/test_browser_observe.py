"""The Observe page in Debian's Chromium: every tile plays live video, and recording is started
and stopped from the page. Screenshots of each step are kept in ``test-artifacts/``."""

from __future__ import annotations

import asyncio

from .test_browser import ARTIFACTS, CHROMIUM_ARGS, browser, sign_in, wait_until  # noqa: F401 - fixture
from .test_cli import Server, http

VIDEO_STATE = """[...document.querySelectorAll('.tile video')].map(v => ({
    t: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames,
    dropped: v.getVideoPlaybackQuality().droppedVideoFrames,
    lag: v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : null}))"""


async def test_observe_tiles_play_and_recording_runs_from_the_page(tmp_path, browser):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD="observe demo pw")
    try:
        page = await browser.new_page(viewport={"width": 1280, "height": 860})
        await sign_in(page, server.base, "observe demo pw")
        await page.click("text=Observe")
        await page.wait_for_url(server.base + "/observe")
        assert await page.locator(".tile").count() == 4

        # Every tile plays: time advances and frames are decoded, close to the live edge.
        await wait_until(
            page, "[...document.querySelectorAll('.tile video')].every(v => v.currentTime > 1)", timeout=20000)
        first = await page.evaluate(VIDEO_STATE)
        await asyncio.sleep(3)
        later = await page.evaluate(VIDEO_STATE)
        for a, b in zip(first, later):
            assert b["t"] - a["t"] > 2.0, (a, b)
            assert b["frames"] - a["frames"] >= 50, (a, b)  # 25 fps for 3 s, none lost
            assert b["lag"] is not None and b["lag"] < 1.5, b
        states = await page.locator(".tile .state").all_inner_texts()
        assert all(s.startswith("playing") for s in states), states
        await page.screenshot(path=str(ARTIFACTS / "observe-playing.png"))

        # Start recording room 1 from the page: the indicator shows REC and a running clock.
        room = page.locator(".room", has_text="Interview Room 1")
        await room.locator("button[data-action=start]").click()
        await wait_until(
            page, "document.querySelector('.room[data-recording]').dataset.recording === 'recording'", timeout=10000)
        await asyncio.sleep(4)
        indicator = await room.locator(".rec-indicator").inner_text()
        assert indicator.startswith("REC 00:00:0"), indicator
        await page.screenshot(path=str(ARTIFACTS / "observe-recording.png"))
        await room.locator("button[data-action=stop]").click()
        await wait_until(
            page, "document.querySelector('.room[data-recording]').dataset.recording === 'idle'", timeout=10000)
        await page.screenshot(path=str(ARTIFACTS / "observe-stopped.png"))

        # The recording exists, with a track per camera of the room, as the API tells.
        token = http("POST", server.base + "/api/v1/auth/login",
                     {"username": "admin", "password": "observe demo pw"})[1]["token"]
        (rec,) = http("GET", server.base + "/api/v1/recordings", token=token)[1]["items"]
        detail = http("GET", server.base + f"/api/v1/recordings/{rec['id']}", token=token)[1]
        assert detail["state"] == "stopped" and len(detail["tracks"]) == 2
        assert all(t["duration_s"] >= 2.0 for t in detail["tracks"]), detail

        # The single-room view and the status shown on a tile.
        await page.click("text=Interview Room 2")
        await page.wait_for_url(f"{server.base}/observe/rooms/*")
        assert await page.locator(".tile").count() == 2
        statuses = await page.locator(".tile .status").all_inner_texts()
        assert statuses == ["online", "online"]
        await wait_until(
            page, "[...document.querySelectorAll('.tile video')].every(v => v.currentTime > 0.5)", timeout=15000)
        await page.screenshot(path=str(ARTIFACTS / "observe-room.png"))
    finally:
        server.stop()
