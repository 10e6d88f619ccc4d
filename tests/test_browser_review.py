"""Marking moments live on the Observe page and finding the recording on the Review page, in
Debian's Chromium: an operator records a room, marks two moments (the Mark button and the M key),
finds the recording by a marker's text, renames it; an admin deletes another recording after the
confirmation dialog, and sees the API's refusal for one that still records. Screenshots of each
step are kept in ``test-artifacts/``."""

from __future__ import annotations

import asyncio

from .test_browser import ARTIFACTS, browser, sign_in, wait_until  # noqa: F401 - fixture
from .test_browser_csp import RECORD_VIOLATIONS
from .test_cli import Server, http

PASSWORD = "review demo pw"
OPERATOR = ("olivia", "olivia's password")
ROWS = "document.querySelectorAll('#review-table tbody tr.recording')"
LOADED = "document.getElementById('review').dataset.loading === 'false'"


def seconds_shown_at_least(n: int) -> str:
    """JS: the room's REC clock on the Observe page shows at least ``n`` seconds."""
    return ("(() => { const m = document.querySelector('.rec-indicator').textContent.match(/(\\d+):(\\d+):(\\d+)/);"
            f" return m !== null && (+m[1] * 3600 + +m[2] * 60 + +m[3]) >= {n}; }})()")


async def api(server: Server, method: str, path: str, token: str, body=None):
    """A call to the API off the event loop (the browser keeps running meanwhile)."""
    return await asyncio.to_thread(http, method, server.base + "/api/v1" + path, body, token)


async def elapsed(server: Server, token: str, room_id: int) -> float:
    """The recording time of the room's running recording, as the server has it now."""
    status, room = await api(server, "GET", f"/rooms/{room_id}", token)
    assert status == 200, room
    return room["recording"]["elapsed_s"]


async def said(page) -> str:
    """The confirmation the Observe page shows after a mark was saved (or why it was not)."""
    await wait_until(page, "document.querySelector('.mark-msg').textContent !== ''", timeout=10000)
    return await page.inner_text(".mark-msg")


async def test_mark_live_then_find_rename_and_delete_on_review(tmp_path, browser):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD=PASSWORD)
    try:
        login = {"username": "admin", "password": PASSWORD}
        admin = http("POST", server.base + "/api/v1/auth/login", login)[1]["token"]
        status, _ = http("POST", server.base + "/api/v1/users",
                         {"username": OPERATOR[0], "password": OPERATOR[1], "role": "operator",
                          "display_name": "Olivia"}, admin)
        assert status == 201
        rooms = {r["name"]: r for r in http("GET", server.base + "/api/v1/rooms", token=admin)[1]}
        room1, room2 = rooms["Interview Room 1"], rooms["Interview Room 2"]
        assert len(room1["cameras"]) == 2
        # The recording the admin deletes at the end: room 2, recorded while room 1 is marked.
        status, other = await api(server, "POST", f"/rooms/{room2['id']}/record/start", admin)
        assert status == 201, other

        # The operator records room 1 from its Observe page and marks two moments.
        page = await browser.new_page(viewport={"width": 1280, "height": 860})
        await page.add_init_script(RECORD_VIOLATIONS)  # the pages run under their CSP, nothing blocked
        await sign_in(page, server.base, OPERATOR[1], OPERATOR[0])
        await page.goto(f"{server.base}/observe/rooms/{room1['id']}")
        mark = page.locator("button[data-mark]")
        assert await mark.is_hidden()  # nothing to mark while the room is idle
        await page.click("button[data-action=start]")
        await wait_until(page, "document.querySelector('.room').dataset.recording === 'recording'", timeout=15000)
        await mark.wait_for(state="visible", timeout=10000)
        status, _ = await api(server, "POST", f"/rooms/{room2['id']}/record/stop", admin)
        assert status == 200
        rec_id = (await api(server, "GET", f"/rooms/{room1['id']}", admin))[1]["recording"]["id"]

        presses = []
        await wait_until(page, seconds_shown_at_least(2), timeout=15000)
        before = await elapsed(server, admin, room1["id"])
        await mark.click()
        presses.append((before, await elapsed(server, admin, room1["id"]), "suspect entered the room"))
        text = page.locator(".mark-text")
        await text.wait_for(state="visible")
        await text.fill(presses[0][2])
        await text.press("Enter")
        assert (await said(page)).startswith("Marked at ")
        assert await text.is_hidden()
        await page.screenshot(path=str(ARTIFACTS / "observe-marked.png"))

        await wait_until(page, seconds_shown_at_least(6), timeout=15000)
        await page.evaluate("document.activeElement && document.activeElement.blur()")
        before = await elapsed(server, admin, room1["id"])
        await page.keyboard.press("m")
        presses.append((before, await elapsed(server, admin, room1["id"]), "child asked for water"))
        await text.wait_for(state="visible")
        assert await text.input_value() == ""  # the M itself did not land in the text box
        await page.screenshot(path=str(ARTIFACTS / "observe-mark-text.png"))
        await text.type(presses[1][2])
        await text.press("Enter")
        assert (await said(page)).startswith("Marked at ")
        await page.click("button[data-action=stop]")
        await wait_until(page, "document.querySelector('.room').dataset.recording === 'idle'", timeout=15000)
        assert await mark.is_hidden()
        assert await page.evaluate("window.__cspViolations") == []

        # The markers are stored at the recording times of the presses, with their text.
        status, markers = await api(server, "GET", f"/recordings/{rec_id}/markers", admin)
        assert status == 200, markers
        markers = sorted(markers["items"] if isinstance(markers, dict) else markers, key=lambda m: m["time_s"])
        assert [m["event"] for m in markers] == [p[2] for p in presses]
        for marker, (before, after, _) in zip(markers, presses):
            assert before - 1 <= marker["time_s"] <= after + 1, (marker, before, after)

        # Review: a marker's words find exactly that recording, with its badge and thumbnail.
        await page.click("text=Review")
        await page.wait_for_url(server.base + "/review")
        await wait_until(page, f"{LOADED} && {ROWS}.length === 2", timeout=15000)
        assert await page.locator("button.delete").count() == 0  # operators do not delete
        await page.fill("input[name=q]", "asked for water")
        await wait_until(page, f"{LOADED} && {ROWS}.length === 1 && location.search.includes('q=')", timeout=10000)
        row = page.locator("tr.recording")
        assert await row.get_attribute("data-recording-id") == str(rec_id)
        assert await row.locator(".badge.markers").inner_text() == "2 markers"
        assert await row.locator(".room").inner_text() == "Interview Room 1"
        assert await row.locator(".author").inner_text() == "Olivia"
        await wait_until(page, "(() => { const i = document.querySelector('tr.recording img.thumb');"
                               " return i !== null && i.complete && i.naturalWidth > 0; })()", timeout=15000)
        assert "q=asked+for+water" in page.url
        await page.screenshot(path=str(ARTIFACTS / "review-search.png"))

        # The link restores the search: the same one recording after a reload.
        await page.reload()
        await wait_until(page, f"{LOADED} && {ROWS}.length === 1", timeout=10000)
        assert await page.input_value("input[name=q]") == "asked for water"
        assert await row.get_attribute("data-recording-id") == str(rec_id)

        # Renamed inline; the API has the new name.
        await row.locator("button.rename").click()
        await row.locator("input.rename-input").fill("Smith intake")
        await row.locator("input.rename-input").press("Enter")
        await wait_until(page, "document.querySelector('tr.recording td.name a')?.textContent === 'Smith intake'")
        assert (await api(server, "GET", f"/recordings/{rec_id}", admin))[1]["name"] == "Smith intake"
        assert await page.evaluate("window.__cspViolations") == []
        await page.close()

        # An admin: deleting a recording that still records is refused, and the dialog says why;
        # the stopped one of room 2 goes after the confirmation.
        status, running = await api(server, "POST", f"/rooms/{room2['id']}/record/start", admin)
        assert status == 201, running
        page = await browser.new_page(viewport={"width": 1280, "height": 860})
        await sign_in(page, server.base, PASSWORD)
        await page.goto(server.base + "/review")
        await wait_until(page, f"{LOADED} && {ROWS}.length === 3", timeout=15000)
        dialog = page.locator("#delete-dialog")
        await page.locator(f"tr[data-recording-id='{running['id']}'] button.delete").click()
        await dialog.wait_for(state="visible")
        await dialog.locator("[data-confirm]").click()
        error = dialog.locator(".error")
        await error.wait_for(state="visible", timeout=10000)
        assert "stop it before deleting it" in await error.inner_text()
        await page.screenshot(path=str(ARTIFACTS / "review-delete-refused.png"))
        await dialog.locator("button[value=cancel]").click()
        await dialog.wait_for(state="hidden")

        await page.locator(f"tr[data-recording-id='{other['id']}'] button.delete").click()
        await dialog.wait_for(state="visible")
        assert await dialog.locator(".what").inner_text() == other["name"]
        await page.screenshot(path=str(ARTIFACTS / "review-delete-confirm.png"))
        await dialog.locator("[data-confirm]").click()
        await dialog.wait_for(state="hidden", timeout=15000)
        await wait_until(page, f"{LOADED} && {ROWS}.length === 2", timeout=10000)
        assert await page.locator(f"tr[data-recording-id='{other['id']}']").count() == 0
        assert (await api(server, "GET", f"/recordings/{other['id']}", admin))[0] == 404
        assert "2 recordings" in await page.inner_text("#review-total")
        await page.screenshot(path=str(ARTIFACTS / "review-deleted.png"))
    finally:
        server.stop()
