"""Admin > Media servers in Debian's Chromium, against ``valt demo`` (one process, its own media server).

An admin opens the page from the nav, sees the embedded server ``local`` with the demo's four
cameras, enrols ``ms1`` and sees its nkey seed once (copied to the clipboard, gone after a reload),
switches its live mode, moves a camera and then a room to it, and the room back. What moved is
read through the API, not from the page. An operator gets neither the link nor the page.
Screenshots are kept in ``test-artifacts/``.
"""

from __future__ import annotations

import re

import nkeys
from playwright.async_api import expect

from .test_browser import ARTIFACTS, browser, sign_in  # noqa: F401 - fixture
from .test_cli import Server, http

PASSWORD = "servers demo pw"
# Reported by the browser for anything the page's Content-Security-Policy blocks.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


async def shot(page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"media-servers-{name}.png"), full_page=True)


def cameras_by_name(base: str, token: str) -> dict[str, dict]:
    status, cameras = http("GET", base + "/api/v1/cameras", token=token)
    assert status == 200, cameras
    return {c["name"]: c for c in cameras}


async def test_an_admin_enrols_a_server_sees_its_seed_once_and_moves_a_camera_and_a_room(tmp_path, browser):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD=PASSWORD)
    try:
        login = {"username": "admin", "password": PASSWORD}
        token = http("POST", server.base + "/api/v1/auth/login", login)[1]["token"]
        context = await browser.new_context(viewport={"width": 1280, "height": 900},
                                            permissions=["clipboard-read", "clipboard-write"])
        page = await context.new_page()
        await page.add_init_script(RECORD_VIOLATIONS)
        page_errors: list[str] = []
        page.on("pageerror", lambda err: page_errors.append(str(err)))

        await sign_in(page, server.base, PASSWORD)
        await page.click("header.bar >> text=Media servers")
        await page.wait_for_url(server.base + "/admin/media-servers")
        local = page.locator("tr.server-row[data-server=local]")
        await expect(local.locator(".state .status")).to_have_text("online")
        await expect(local.locator(".toggle")).to_have_text(re.compile(r"^4 "))
        await expect(local.locator(".ingest")).to_have_text(re.compile(r"^\d+\.\d+ Mb/s$"))
        await expect(page.locator("#embedded-note")).to_contain_text("valt media-server --name NAME")

        # Enrol: the API's field error shows at the field; then the seed, this once.
        await page.click("#enrol-server")
        form = page.locator("#enrol-form")
        await form.locator("input[name=name]").fill("no spaces")
        await form.locator("button[type=submit]").click()
        await expect(form.locator(".field-error[data-field=name]")).to_contain_text("should match pattern")
        await form.locator("input[name=name]").fill("ms1")
        await form.locator("input[name=pool]").fill("east")
        await form.locator("select[name=live_mode]").select_option("direct")
        async with page.expect_response(lambda r: r.url.endswith("/api/v1/media-servers")
                                        and r.request.method == "POST") as answer:
            await form.locator("button[type=submit]").click()
        enrolled = await (await answer.value).json()
        card = page.locator("#seed-card")
        await expect(card).to_be_visible()
        await expect(card.locator(".warning")).to_contain_text("shown this once")
        seed = await card.locator(".seed").input_value()
        # The seed shown signs in as the key the server was enrolled with.
        assert nkeys.from_seed(seed.encode()).public_key.decode() == enrolled["nkey"]
        await expect(card.locator(".step-run")).to_have_text(
            "valt --config valt.toml media-server --name ms1 --pool east")
        await expect(card.locator(".step-config")).to_contain_text('nkey_seed_file = "/etc/valt/ms1.nkey"')
        await card.locator(".copy-seed").click()
        await expect(card.locator(".copied")).to_have_text("Copied.")
        assert await page.evaluate("navigator.clipboard.readText()") == seed
        await shot(page, "1-seed")
        await card.locator(".seed-done").click()
        await expect(card).to_be_hidden()
        await page.reload()
        ms1 = page.locator("tr.server-row[data-server=ms1]")
        await expect(ms1.locator(".state .status")).to_have_text("unknown")
        await expect(ms1.locator(".seen")).to_have_text("last seen never")
        await expect(ms1.locator(".pool")).to_have_text("east")
        assert seed not in await page.content()
        status, listed = http("GET", server.base + "/api/v1/media-servers", token=token)
        assert seed not in str(listed)

        # Live mode, changed in place.
        await expect(ms1.locator("select[name=live_mode]")).to_have_value("direct")
        async with page.expect_response(lambda r: r.request.method == "PATCH") as answer:
            await ms1.locator("select[name=live_mode]").select_option("relayed")
        assert (await answer.value).status == 200
        status, listed = http("GET", server.base + "/api/v1/media-servers", token=token)
        assert {s["name"]: s["live_mode"] for s in listed}["ms1"] == "relayed"

        # One camera: from the embedded server's list to ms1.
        await local.locator(".toggle").click()
        camera = page.locator("tr.server-detail[data-server=local] li.server-camera", has_text="Room 1 wide")
        await camera.locator("select[name=move_to]").select_option(str(enrolled["id"]))
        await camera.locator("button.move").click()
        await expect(ms1.locator(".toggle")).to_have_text(re.compile(r"^1 "))
        await expect(local.locator(".toggle")).to_have_text(re.compile(r"^3 "))
        await expect(page.locator("#page-error")).to_be_hidden()
        assert cameras_by_name(server.base, token)["Room 1 wide"]["media_server_id"] == enrolled["id"]
        await shot(page, "2-camera-moved")

        # A whole room, then back to the app server's own media server.
        room_form = page.locator("#room-move")
        await room_form.locator("select[name=room_id]").select_option(label="Interview Room 2")
        await room_form.locator("select[name=media_server_id]").select_option(str(enrolled["id"]))
        await room_form.locator("button[type=submit]").click()
        await expect(room_form.locator(".result")).to_have_text("Interview Room 2: 2 cameras now on ms1.")
        await expect(ms1.locator(".toggle")).to_have_text(re.compile(r"^3 "))
        cams = cameras_by_name(server.base, token)
        assert {n: c["media_server_id"] for n, c in cams.items()} == {
            "Room 1 wide": enrolled["id"], "Room 1 table": None,
            "Room 2 wide": enrolled["id"], "Room 2 table": enrolled["id"]}
        await shot(page, "3-room-moved")
        await room_form.locator("select[name=media_server_id]").select_option("")
        await room_form.locator("button[type=submit]").click()
        await expect(room_form.locator(".result")).to_have_text(
            "Interview Room 2: 2 cameras now on local (this app server).")
        cams = cameras_by_name(server.base, token)
        assert [cams[n]["media_server_id"] for n in ("Room 2 wide", "Room 2 table")] == [None, None]
        await expect(local.locator(".toggle")).to_have_text(re.compile(r"^3 "))

        assert await page.evaluate("window.__cspViolations") == []
        assert page_errors == []
        await context.close()

        # An operator: no link, and the page refuses them as Admin > Cameras does.
        status, _ = http("POST", server.base + "/api/v1/users",
                         {"username": "olga", "password": "operator pw 1", "role": "operator"}, token)
        assert status == 201
        page = await browser.new_page()
        await sign_in(page, server.base, "operator pw 1", username="olga")
        await expect(page.locator("header.bar a", has_text="Media servers")).to_have_count(0)
        response = await page.goto(server.base + "/admin/media-servers")
        assert response.status == 403
        await expect(page.locator("[role=alert]")).to_have_text(
            "You may not open this page: it needs the right "
            "\u201cSee the system: media servers, plugins, settings\u201d.")
        await expect(page.locator(".server-table")).to_have_count(0)
    finally:
        server.stop()
