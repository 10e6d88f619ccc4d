"""The Review page in Debian's Chromium, past what the recording journey
(test_browser_review_player.py) does there: an operator finds a recording by a marker's words,
with its badge, room, author and thumbnail; the search is in the page's URL and survives a
reload; operators have no delete button; the operator renames the recording inline; an admin
sees the API's refusal to delete a recording that still records, and deletes a stopped one after
the confirmation dialog. No page breaks its Content-Security-Policy. The recordings and markers
are made through the API. Screenshots of each step are kept in ``test-artifacts/``."""

from __future__ import annotations

import asyncio
import time

from .test_browser import ARTIFACTS, browser, sign_in, wait_until  # noqa: F401 - fixture
from .test_browser_csp import RECORD_VIOLATIONS
from .test_cli import Server, http

PASSWORD = "review demo pw"
OPERATOR = ("olivia", "olivia's password")
ROWS = "document.querySelectorAll('#review-table tbody tr.recording')"
LOADED = "document.getElementById('review').dataset.loading === 'false'"


async def api(server: Server, method: str, path: str, token: str, body=None):
    """A call to the API off the event loop (the browser keeps running meanwhile)."""
    return await asyncio.to_thread(http, method, server.base + "/api/v1" + path, body, token)


async def test_find_on_review_rename_and_delete(tmp_path, browser):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD=PASSWORD)
    try:
        login = {"username": "admin", "password": PASSWORD}
        admin = http("POST", server.base + "/api/v1/auth/login", login)[1]["token"]
        status, _ = http("POST", server.base + "/api/v1/users",
                         {"username": OPERATOR[0], "password": OPERATOR[1], "role": "operator",
                          "display_name": "Olivia"}, admin)
        assert status == 201
        operator = http("POST", server.base + "/api/v1/auth/login",
                        {"username": OPERATOR[0], "password": OPERATOR[1]})[1]["token"]
        rooms = {r["name"]: r for r in http("GET", server.base + "/api/v1/rooms", token=admin)[1]}
        room1, room2 = rooms["Interview Room 1"], rooms["Interview Room 2"]
        assert len(room1["cameras"]) == 2
        # The recording the admin deletes at the end: room 2, recorded while room 1 starts.
        status, other = await api(server, "POST", f"/rooms/{room2['id']}/record/start", admin)
        assert status == 201, other

        # The operator records room 1 for a few seconds (a thumbnail to show) with two markers.
        status, rec = await api(server, "POST", f"/rooms/{room1['id']}/record/start", operator)
        assert status == 201, rec
        rec_id = rec["id"]
        status, _ = await api(server, "POST", f"/rooms/{room2['id']}/record/stop", admin)
        assert status == 200
        deadline = time.monotonic() + 20
        while (await api(server, "GET", f"/recordings/{rec_id}", operator))[1]["elapsed_s"] < 3:
            assert time.monotonic() < deadline, "the recording did not run"
            await asyncio.sleep(0.25)
        for body in ({"event": "suspect entered the room", "time_s": 1.0},
                     {"event": "child asked for water", "time_s": 2.5}):
            status, made = await api(server, "POST", f"/recordings/{rec_id}/markers", operator, body)
            assert status == 201, made
        status, _ = await api(server, "POST", f"/rooms/{room1['id']}/record/stop", operator)
        assert status == 200

        page = await browser.new_page(viewport={"width": 1280, "height": 860})
        await page.add_init_script(RECORD_VIOLATIONS)  # the pages run under their CSP, nothing blocked
        await sign_in(page, server.base, OPERATOR[1], OPERATOR[0])

        # Review: a marker's words find exactly that recording, with its badge and thumbnail.
        await page.get_by_role("link", name="Review", exact=True).click()
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
