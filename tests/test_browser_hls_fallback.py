"""The player's HLS fallback, wired end to end in Chromium.

Chromium has MSE and no native HLS, so it never takes this path by itself. Here the page is
made to look like Safari on iOS: ``window.MediaSource`` is removed and the video element
claims HLS support before any script runs. The player must then ask for a live token, put
the ``hls`` playlist URL in the video element, and the server must answer that playlist to
the token it gave. That the playlist itself plays is shown with FFmpeg's HLS client in
``test_hls.py``; no browser here can play it.
"""

from __future__ import annotations

import asyncio

from .test_browser import ARTIFACTS, browser, sign_in, wait_until  # noqa: F401 - fixture
from .test_cli import Server

LOOK_LIKE_SAFARI = """
delete window.MediaSource;
delete window.ManagedMediaSource;
const canPlay = HTMLMediaElement.prototype.canPlayType;
HTMLMediaElement.prototype.canPlayType = function (type) {
  return type === "application/vnd.apple.mpegurl" ? "maybe" : canPlay.call(this, type);
};
"""


async def test_player_falls_back_to_hls_without_mse(tmp_path, browser):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD="hls demo pw")
    try:
        page = await browser.new_page(viewport={"width": 1280, "height": 860})
        await page.add_init_script(LOOK_LIKE_SAFARI)
        playlists: list[tuple[str, int, str]] = []

        async def on_response(response):
            if "/hls/index.m3u8" in response.url:
                body = await response.text() if response.status == 200 else ""
                playlists.append((response.url, response.status, body))

        page.on("response", lambda r: asyncio.ensure_future(on_response(r)))
        await sign_in(page, server.base, "hls demo pw")
        await page.goto(server.base + "/observe")
        await wait_until(
            page, "[...document.querySelectorAll('.tile video')].every(v => v.src.includes('/hls/index.m3u8?token='))",
            timeout=15000)
        sources = await page.evaluate("[...document.querySelectorAll('.tile video')].map(v => v.src)")
        assert len(sources) == 4 and len(set(sources)) == 4
        states = await page.locator(".tile .state").all_inner_texts()
        assert all("HLS" in s for s in states), states
        # The video elements fetched the playlists, and the server accepted the tokens in them.
        for _ in range(50):
            if len({u for u, *_ in playlists}) >= 4:
                break
            await asyncio.sleep(0.2)
        fetched = {u for u, status, body in playlists if status == 200 and body.startswith("#EXTM3U")}
        assert set(sources) <= fetched, playlists
        await page.screenshot(path=str(ARTIFACTS / "observe-hls-fallback.png"))
    finally:
        server.stop()
