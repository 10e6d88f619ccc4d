"""Admin > Cameras and the PTZ pad in Debian's Chromium, against real camera peers.

An admin finds the ONVIF simulator on a private test network, adds it from the page (a wrong
password first, then the right one), edits it, and steers it from the live view: press and hold
an arrow, save a preset, go back to it. The simulator's own state says whether the camera
really moved. Its stream is a real GStreamer RTSP camera, so its live tile must play.
Screenshots of each step are kept in ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from playwright.async_api import expect

from .peers.cameras import RtspCamera
from .peers.netns import NetNamespace
from .peers.onvif import OnvifDevice
from .test_browser import ARTIFACTS, browser, sign_in  # noqa: F401 - fixture
from .test_cli import Server, http

PASSWORD = "cameras demo pw"


async def settle(device: OnvifDevice, timeout_s: float = 5.0) -> dict:
    """The simulator's state once its head has stopped moving (fails if it keeps moving)."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = await asyncio.to_thread(device.state)
        if not state["moving"] or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.1)


async def shot(page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"cameras-{name}.png"), full_page=True)


async def test_add_an_onvif_camera_from_the_page_then_steer_it_live(tmp_path, browser):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        rtsp = RtspCamera("--mount", "/cam", "--fps", "25", "--gop", "25")
        stack.callback(rtsp.stop)
        # Discovery probes only a private link to a namespace, never a real network.
        ns = stack.enter_context(NetNamespace())
        device = stack.enter_context(OnvifDevice(rtsp.url, user="admin", password="pw", netns=ns,
                                                 discovery_address=ns.ns_address))
        server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD=PASSWORD,
                        VALT_CAMERAS__DISCOVERY_ADDRESSES=json.dumps([ns.host_address]))
        stack.callback(server.stop)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        page_errors: list[str] = []
        page.on("pageerror", lambda err: page_errors.append(str(err)))

        await sign_in(page, server.base, PASSWORD)
        await page.click("header.bar >> text=Cameras")
        await page.wait_for_url(server.base + "/admin/cameras")
        rows = page.locator("tr.camera-row")
        await expect(rows).to_have_count(4)
        await expect(rows.first.locator(".badge", has_text="snapshot")).to_be_visible()
        await shot(page, "1-list")

        # The form is the driver's schema; the API's field errors show next to the fields.
        form = page.locator("#camera-form")
        await page.click("#add-camera")
        await form.locator("select[name=driver]").select_option("onvif")
        await expect(form.locator("input[name='config.port']")).to_have_value("80")
        await expect(form.locator("input[name='config.password']")).to_have_attribute("type", "password")
        await expect(form.locator(".label.required", has_text="Host")).to_be_visible()
        await form.locator("button[type=submit]").click()
        await expect(form.locator(".field-error[data-field=name]")).to_contain_text("at least 1 character")
        await expect(form.locator(".result")).to_have_text("Please correct the fields marked in red.")
        await form.locator("input[name=name]").fill("No host")
        await form.locator("button[type=submit]").click()
        await expect(form.locator(".field-error[data-field='config.host']")).to_have_text("Field required")
        await expect(form.locator(".field-error[data-field=name]")).to_be_hidden()
        await shot(page, "2-field-errors")
        await form.locator("[data-form=cancel]").click()

        # Find cameras: a spinner while searching, then the simulator with its name, model and address.
        await page.click("#find-cameras")
        await expect(page.locator("#found .searching")).to_be_visible()
        item = page.locator(".found-item", has_text="ONVIF-PTZ-1")
        await expect(item).to_be_visible(timeout=15000)
        await expect(item.locator(".name")).to_have_text("Valt Sim")
        await expect(item.locator(".address")).to_have_text(f"{ns.ns_address}:{device.port}")
        await shot(page, "3-found")
        await item.locator("button", has_text="Add").click()
        await expect(form).to_be_visible()
        await expect(form.locator("select[name=driver]")).to_have_value("onvif")
        await expect(form.locator("input[name='config.host']")).to_have_value(ns.ns_address)
        await expect(form.locator("input[name='config.port']")).to_have_value(str(device.port))

        await form.locator("input[name=name]").fill("PTZ 1")
        await form.locator("select[name=room_id]").select_option(label="Interview Room 1")
        await form.locator("input[name='config.username']").fill("admin")
        await form.locator("input[name='config.password']").fill("wrong")
        await form.locator("[data-form=test]").click()
        result = form.locator(".result")
        await expect(result).to_contain_text("refused the user name or password", timeout=15000)
        await expect(result).to_have_class("result bad")
        await shot(page, "4-wrong-password")
        await form.locator("input[name='config.password']").fill("pw")
        await form.locator("[data-form=test]").click()
        await expect(result).to_contain_text("ValtSim", timeout=15000)
        await expect(result).to_contain_text("main: h264 1280×720")
        await shot(page, "5-identity")
        await form.locator("button[type=submit]").click()
        await expect(form).to_be_hidden()
        row = rows.filter(has_text="PTZ 1")
        await expect(row).to_have_count(1)
        await expect(row.locator(".driver")).to_have_text("onvif")
        await expect(row.locator(".badge", has_text="presets")).to_be_visible()
        await expect(row).to_contain_text("Interview Room 1")
        await expect(item.locator(".added")).to_have_text("added")  # the search's list knows it now

        # The list's Test connection; then an edit that keeps the masked password.
        await row.locator("button", has_text="Test connection").click()
        await expect(page.locator("tr.detail .result.ok")).to_contain_text("serial VS-0001", timeout=15000)
        await row.locator("button", has_text="Edit").click()
        await expect(form.locator("select[name=driver]")).to_be_disabled()
        await expect(form.locator("input[name='config.password']")).to_have_value("********")
        await form.locator("[data-form=test]").click()
        await expect(result).to_contain_text("ValtSim", timeout=15000)
        await form.locator("input[name=name]").fill("PTZ Door")
        await form.locator("button[type=submit]").click()
        await expect(form).to_be_hidden()
        row = rows.filter(has_text="PTZ Door")
        await expect(row.locator(".status")).to_have_text("online", timeout=20000)
        await shot(page, "6-added")

        # A camera without a PTZ head gets no pad: switch the head off on one sim camera.
        login = {"username": "admin", "password": PASSWORD}
        token = http("POST", server.base + "/api/v1/auth/login", login)[1]["token"]
        cameras = http("GET", server.base + "/api/v1/cameras", token=token)[1]
        (wide,) = [c for c in cameras if c["name"] == "Room 1 wide"]
        r = http("PATCH", server.base + f"/api/v1/cameras/{wide['id']}", {"config": {**wide["config"], "ptz": False}},
                 token=token)
        assert r[0] == 200, r

        # The live view of its room: the tile plays the GStreamer camera behind the ONVIF device.
        await page.click("header.bar >> text=Observe")
        await page.click("text=Interview Room 1")
        await page.wait_for_url(f"{server.base}/observe/rooms/*")
        tile = page.locator(".tile", has_text="PTZ Door")
        video = tile.locator("video")
        await video.evaluate("v => new Promise(ok => { const t = setInterval(() => "
                             "{ if (v.currentTime > 1) { clearInterval(t); ok(); } }, 100); })")
        before = await video.evaluate("v => v.currentTime")
        await asyncio.sleep(2)
        assert await video.evaluate("v => v.currentTime") - before > 1.5
        pad = tile.locator(".ptz")
        await expect(pad).to_be_visible()
        await expect(page.locator(".tile", has_text="Room 1 table").locator(".ptz")).to_be_visible()
        await expect(page.locator(".tile", has_text="Room 1 wide").locator(".ptz")).to_be_hidden()

        # Press and hold the right arrow: the head pans while held and stops on release.
        assert (await settle(device))["position"]["pan"] == 0
        await pad.locator("[data-dir=right]").hover()
        await page.mouse.down()
        await asyncio.sleep(0.6)
        moving = await asyncio.to_thread(device.state)
        await page.mouse.up()
        assert moving["moving"], moving
        state = await settle(device)
        assert not state["moving"], state
        pan = state["position"]["pan"]
        assert 0.05 < pan < 0.5, state  # half speed for about 0.6 s
        await asyncio.sleep(0.5)
        assert (await asyncio.to_thread(device.state))["position"]["pan"] == pan  # really stopped
        await shot(page, "7-panned")

        # Save a preset here (the name is asked in a prompt), move away, go back to it.
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept("Door")))
        await pad.locator("[data-preset=save]").click()
        await expect(pad.locator(".presets select option", has_text="Door")).to_have_count(1)
        await expect(pad.locator(".ptz-msg")).to_contain_text('Saved "Door"')
        (door,) = [p for p in device.state()["presets"] if p["name"] == "Door"]
        assert door["pan"] == pan
        r = http("POST", server.base + f"/api/v1/cameras/{await tile.get_attribute('data-camera-id')}/ptz",
                 {"action": "absolute", "pan": -0.5, "tilt": 0.3, "zoom": 0}, token=token)
        assert r[0] == 204, r
        assert (await settle(device))["position"]["pan"] == -0.5
        await pad.locator(".presets select").select_option(label="Door")
        await pad.locator("[data-preset=go]").click()
        deadline = time.monotonic() + 10
        while (await settle(device))["position"]["pan"] != pan and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        position = (await settle(device))["position"]
        assert (position["pan"], position["tilt"]) == (pan, 0), position
        await shot(page, "8-preset")

        # Back in Admin > Cameras: remove a camera, after the confirm.
        await page.click("header.bar >> text=Cameras")
        await expect(rows).to_have_count(5)
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await rows.filter(has_text="Room 2 table").locator("button", has_text="Remove").click()
        await expect(rows).to_have_count(4)
        await expect(rows.filter(has_text="Room 2 table")).to_have_count(0)
        await shot(page, "9-removed")
        assert page_errors == []
