"""An uploaded session in Debian's Chromium: two phone videos sent over tus become one recording
that the review player plays like a recorded one, both tracks on one clock, the second starting
where its file says it was recorded."""

from __future__ import annotations

from playwright.async_api import expect

from .test_browser import ARTIFACTS, browser, sign_in, wait_until  # noqa: F401 - fixture
from .test_browser_csp import RECORD_VIOLATIONS
from .test_cli import Server, http
from .test_upload import PlainTus, _ffmpeg, _wait_done, sha256_of, videos  # noqa: F401 - fixture

PASSWORD = "upload review pw"


async def test_an_uploaded_session_plays_in_the_review_player(tmp_path, browser, videos):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    # A second phone, started 2 s after the first (creation_time), H.264 without audio.
    second = _ffmpeg(tmp_path / "phone-2.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "5",
                     "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
                     "-metadata", "creation_time=2026-12-01T10:00:05Z")
    first = videos["small"]  # 6 s with AAC, recorded at 10:00:03
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD=PASSWORD, VALT_MEDIA__ALWAYS_ON="false",
                    VALT_MEDIA__SEGMENT_SECONDS="2")
    try:
        base = server.base + "/api/v1"
        token = http("POST", base + "/auth/login", {"username": "admin", "password": PASSWORD})[1]["token"]
        room = http("POST", base + "/rooms", {"name": "Home visits"}, token)[1]
        status, up = http("POST", base + "/uploads", {"name": "Visit at the Smiths'", "room_id": room["id"], "files": [
            {"filename": p.name, "size": p.stat().st_size, "sha256": sha256_of(p)} for p in (first, second)]}, token)
        assert status == 201, up
        for f, path in zip(up["files"], (first, second)):
            PlainTus(f["upload_url"], token).send_all(path, chunk=200 * 1024)
        done = _wait_done(server.base, up["id"], token)
        assert done["state"] == "done", done

        page = await browser.new_page(viewport={"width": 1200, "height": 900})
        await page.add_init_script(RECORD_VIOLATIONS)
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        await sign_in(page, server.base, PASSWORD)
        await page.goto(f"{server.base}/review/recordings/{done['recording_id']}")
        await expect(page.locator(".view video")).to_have_count(2, timeout=10000)
        await page.click("button.play")
        # The first phone plays from the start; the second joins at 2 s, as its file says.
        await wait_until(page, "window.valtPlayer.clock() > 3.5", timeout=20000)
        times = {v["camera"]: v for v in await page.evaluate("window.valtPlayer.videoTimes()")}
        assert set(times) == {first.name, second.name}, times
        clock = await page.evaluate("window.valtPlayer.clock()")
        assert all(v["media"] and abs(v["time"] - clock) < 0.3 for v in times.values()), (clock, times)
        await page.screenshot(path=str(ARTIFACTS / "review-uploaded-session.png"))
        assert errors == [] and await page.evaluate("window.__cspViolations") == []
    finally:
        server.stop()
