"""The review player in Debian's Chromium: two cameras of a recording play on one clock, a gap
says "No video" while the other camera plays on, a marker's tick jumps to it, and a clip cut with
the keyboard downloads with the right length. Screenshots are kept in ``test-artifacts/``."""

from __future__ import annotations

import asyncio
import re
import time
import zipfile

from playwright.async_api import expect

from .peers.cameras import RtspCamera
from .test_browser import ARTIFACTS, browser, sign_in, wait_until  # noqa: F401 - fixture
from .test_browser_csp import RECORD_VIOLATIONS
from .test_cli import Server, http
from .test_recording import probe

PASSWORD = "review player pw"
SMALL = {"width": 320, "height": 240, "keyframe_interval": 25}

#: How far each video is from the shared clock (tracks with video at that moment only), sampled
#: in the page every 50 ms for about a second: [camera, video time - clock, video's rate].
DRIFTS = """new Promise((done) => { const out = []; const id = setInterval(() => {
  const c = window.valtPlayer.clock();
  out.push(...window.valtPlayer.videoTimes().filter(v => v.media).map(v => [v.camera, v.time - c, v.rate]));
  if (out.length >= 40) { clearInterval(id); done(out); } }, 50); })"""


async def poll(what, check, timeout: float, every: float = 0.25):
    """Call ``what()`` until ``check(answer)`` holds; the last answer, or AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        answer = what()
        if check(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s; last: {answer}")
        await asyncio.sleep(every)


async def record_with_a_gap(server: Server, door: RtspCamera) -> tuple[str, dict]:
    """Record a sim camera ("table", with sound) and an RTSP camera ("door") that dies for ~5 s."""
    base = server.base
    token = http("POST", base + "/api/v1/auth/login", {"username": "admin", "password": PASSWORD})[1]["token"]
    room = http("POST", base + "/api/v1/rooms", {"name": "Interview 3"}, token)[1]
    for body in ({"name": "table", "driver": "sim", "room_id": room["id"], "config": {**SMALL, "audio": True}},
                 {"name": "door", "driver": "rtsp", "room_id": room["id"], "config": {"url": door.url}}):
        assert http("POST", base + "/api/v1/cameras", body, token)[0] == 201
    status, rec = http("POST", base + f"/api/v1/rooms/{room['id']}/record/start", None, token)
    assert status == 201, rec

    def recording():
        return http("GET", base + f"/api/v1/recordings/{rec['id']}", token=token)[1]

    def door_gaps(r):
        return next(t for t in r["tracks"] if t["camera_name"] == "door")["gaps"]

    # Recording starts the cameras (VALT_MEDIA__ALWAYS_ON=false: the demo's own cameras stay off).
    await poll(recording, lambda r: r["elapsed_s"] >= 10 and all(t["segments"] >= 2 for t in r["tracks"]), 40)
    door.kill()
    await poll(recording, lambda r: door_gaps(r), 20)  # the gap opens once the camera is missed
    killed = recording()["elapsed_s"]
    await poll(recording, lambda r: r["elapsed_s"] >= killed + 3, 20)
    door.start()  # same port: the pipeline reconnects by itself
    after = await poll(recording, lambda r: door_gaps(r) and door_gaps(r)[0]["end_s"] is not None, 30)
    await poll(recording, lambda r: r["elapsed_s"] >= door_gaps(after)[0]["end_s"] + 8, 40)
    status, rec = http("POST", base + f"/api/v1/rooms/{room['id']}/record/stop", None, token)
    assert status == 200 and rec["state"] == "stopped", rec
    return token, rec


async def test_review_player_plays_tracks_in_sync_shows_gaps_markers_and_cuts_a_clip(tmp_path, browser):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    door = RtspCamera("--size", "320x240", "--gop", "25")
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD=PASSWORD, VALT_MEDIA__ALWAYS_ON="false",
                    VALT_MEDIA__SEGMENT_SECONDS="2", VALT_MEDIA__RECONNECT_MAX_S="1")
    try:
        token, rec = await record_with_a_gap(server, door)
        tracks = {t["camera_name"]: t for t in rec["tracks"]}
        (gap,) = tracks["door"]["gaps"]
        assert gap["end_s"] - gap["start_s"] >= 3, gap
        markers = []
        for body in ({"event": "Door opens", "time_s": 2.0, "color": "red"},
                     {"event": "Second look", "time_s": round(gap["end_s"] + 3, 3), "color": "green"}):
            status, made = http("POST", server.base + f"/api/v1/recordings/{rec['id']}/markers", body, token)
            assert status == 201, made
            markers.append(made)

        page = await browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        await page.add_init_script(RECORD_VIOLATIONS)
        errors = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        await sign_in(page, server.base, PASSWORD)
        await page.goto(server.base + f"/review/recordings/{rec['id']}")
        views = page.locator(".view video")
        await expect(views).to_have_count(2, timeout=10000)
        await expect(page.locator(".timeline .tick")).to_have_count(2, timeout=10000)
        await expect(page.locator(".marker-list .marker")).to_have_count(2)

        # Play: both videos advance.
        await page.click("button.play")
        await wait_until(page, "window.valtPlayer.videoTimes().every(v => v.time > 1)", timeout=20000)
        first = await page.evaluate("window.valtPlayer.videoTimes()")
        await wait_until(page, "window.valtPlayer.clock() > %f" % (max(v["time"] for v in first) + 1.5), 15000)
        later = await page.evaluate("window.valtPlayer.videoTimes()")
        for a, b in zip(first, later):
            assert b["time"] - a["time"] > 1.0, (a, b)
        # Only one track is heard (table has the sound).
        assert {v["camera"]: v["muted"] for v in later} == {"table": False, "door": True}, later
        await page.screenshot(path=str(ARTIFACTS / "review-player-playing.png"))

        # Seek on the timeline (to about 1 s), then 4x: every video stays on the shared clock.
        box = await page.locator(".timeline").bounding_box()
        length = max(t["end_s"] for t in rec["tracks"])
        await page.mouse.click(box["x"] + box["width"] * 1.0 / length, box["y"] + box["height"] / 2)
        assert await page.evaluate("window.valtPlayer.clock()") < 2.5
        await page.select_option("select.speed", "4")
        # A video starts or changes speed with a lag of its own, which the player corrects in well
        # under a second; then every one of them stays within 0.1 s of the clock.
        changed = time.monotonic()
        await wait_until(page, "window.valtPlayer.state() === 'playing' && "
                               "window.valtPlayer.videoTimes().every(v => !v.media || "
                               "Math.abs(v.time - window.valtPlayer.clock()) < 0.05)", 15000)
        settled = time.monotonic() - changed
        samples = await page.evaluate(DRIFTS)
        drifts = [abs(d) for _camera, d, _rate in samples]
        print(f"4x after a seek: settled in {settled:.2f} s, then max drift {max(drifts):.3f} s "
              f"over {len(drifts)} samples" + ("" if max(drifts) < 0.1 else f": {samples}"))
        assert drifts and max(drifts) < 0.1, samples
        assert await page.evaluate("window.valtPlayer.rate()") == 4

        # Inside the gap: the door says "No video" with the reason; the table plays on.
        await page.keyboard.press("k")
        assert await page.evaluate("window.valtPlayer.state()") == "paused"
        await page.select_option("select.speed", "1")
        middle = (gap["start_s"] + gap["end_s"]) / 2
        await page.mouse.click(box["x"] + box["width"] * (middle - 1) / length, box["y"] + box["height"] / 2)
        await page.keyboard.press("Space")
        assert await page.evaluate("window.valtPlayer.state()") != "paused"
        door_view = page.locator(f'.view[data-track-id="{tracks["door"]["id"]}"] .no-video')
        await expect(door_view).to_be_visible(timeout=10000)
        await expect(door_view).to_contain_text("No video")
        # ... and the span in wall-clock times.
        await expect(door_view).to_contain_text(re.compile(r"camera offline \d\d:\d\d:\d\d–\d\d:\d\d:\d\d"))
        table_id = tracks["table"]["id"]
        table_time = f"window.valtPlayer.videoTimes().find(v => v.track_id === {table_id}).time"
        t0 = await page.evaluate(table_time)
        await wait_until(page, f"{table_time} > {t0 + 1}", 10000)
        assert await page.locator(f'.view[data-track-id="{table_id}"] .no-video').is_hidden()
        await page.screenshot(path=str(ARTIFACTS / "review-player-gap.png"))
        # After the gap the door picks up again.
        await wait_until(page, f"window.valtPlayer.clock() > {gap['end_s'] + 1}", 15000)
        await expect(door_view).to_be_hidden(timeout=5000)
        await wait_until(page, "window.valtPlayer.videoTimes().every(v => v.media && Math.abs(v.time - "
                               "window.valtPlayer.clock()) < 0.1)", 10000)

        # A marker's tick jumps to its moment.
        await page.keyboard.press("k")
        second = markers[1]
        await page.click(f'.timeline .tick[data-marker-id="{second["id"]}"]')
        clock = await page.evaluate("window.valtPlayer.clock()")
        assert abs(clock - second["time_s"]) < 0.3, (clock, second)
        await expect(page.locator(".marker-text")).to_contain_text("Second look")
        # M marks the moment: a text box, Enter saves it; it is on the timeline and in the API.
        await page.locator("h1").click()  # keys go to the page, not to a button
        await page.keyboard.press("m")
        await page.keyboard.type("Looks at the door")
        await page.keyboard.press("Enter")
        await expect(page.locator(".marker-list .marker")).to_have_count(3)
        await expect(page.locator(".timeline .tick")).to_have_count(3)
        listed = http("GET", server.base + f"/api/v1/recordings/{rec['id']}/markers", token=token)[1]
        (mine,) = [m for m in listed if m["event"] == "Looks at the door"]
        assert abs(mine["time_s"] - second["time_s"]) < 0.3 and mine["author"] == "Demo admin", mine
        # Its author edits it, then deletes it (after saying yes to the question).
        item = page.locator(f'.marker-list .marker[data-marker-id="{mine["id"]}"]')
        await item.get_by_role("button", name="Edit").click()
        await item.locator("input[type=text]").fill("Looks at the window")
        await item.locator("input[type=text]").press("Enter")
        await expect(page.locator(".marker-list")).to_contain_text("Looks at the window")
        changed = http("GET", server.base + f"/api/v1/recordings/{rec['id']}/markers", token=token)[1]
        assert [m["event"] for m in changed if m["id"] == mine["id"]] == ["Looks at the window"], changed
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.locator(f'.marker-list .marker[data-marker-id="{mine["id"]}"]').get_by_role(
            "button", name="Delete").click()
        await expect(page.locator(".marker-list .marker")).to_have_count(2)
        await expect(page.locator(".timeline .tick")).to_have_count(2)
        await page.locator("h1").click()
        # ? lists the shortcuts; G shows every camera alike; a click on a small view makes it large.
        await page.keyboard.press("?")
        await expect(page.locator(".help-overlay")).to_be_visible()
        await expect(page.locator(".help-overlay")).to_contain_text("add a marker here")
        await page.keyboard.press("Escape")
        await expect(page.locator(".help-overlay")).to_be_hidden()
        small = page.locator('.view[data-role="small"]')
        swapped = await small.get_attribute("data-track-id")
        await small.click()
        await expect(page.locator(f'.view[data-track-id="{swapped}"]')).to_have_attribute("data-role", "main")
        await page.keyboard.press("g")
        await expect(page.locator(".stage")).to_have_attribute("data-layout", "grid")
        await page.screenshot(path=str(ARTIFACTS / "review-player-grid.png"))
        await page.keyboard.press("g")

        # In at the first marker, out 5 s later, with the keyboard; then the clip of both cameras.
        await page.click(f'.timeline .tick[data-marker-id="{markers[0]["id"]}"]')
        await page.locator("h1").click()  # keys go to the page, not to a button
        await page.keyboard.press("[")
        for _ in range(5):
            await page.keyboard.press("ArrowRight")
        await page.keyboard.press("]")
        await expect(page.locator(".clip-panel .length")).to_have_text("5.0 s")
        await page.click("button.create-clip")
        link = page.locator(".clip-table tr.clip a.download")
        await expect(link).to_be_visible(timeout=60000)
        row = await page.locator(".clip-table tr.clip").inner_text()
        assert "Demo admin" in row and len([w for w in row.split() if len(w) >= 64]) >= 1, row  # who and the SHA-256
        await page.screenshot(path=str(ARTIFACTS / "review-player-clip.png"))
        async with page.expect_download() as info:
            await link.click()
        download = await info.value
        data = (tmp_path / "clip.zip")
        await download.save_as(data)
        with zipfile.ZipFile(data) as z:
            names = [n for n in z.namelist() if n.endswith(".mp4")]
            assert len(names) == 2, z.namelist()
            for name in names:
                seen = probe(z.read(name))
                # Keyframe-aligned: it may start up to one GOP (1 s) before the in point.
                assert 4.5 <= seen["duration"] <= 6.5, (name, seen["duration"])
                assert seen["frames"] >= 25 * 4, (name, seen["frames"])
        assert not errors, errors
        assert await page.evaluate("window.__cspViolations") == []
        assert await page.locator("#player .error").is_hidden()  # no API error was shown
    finally:
        server.stop()
        door.stop()
