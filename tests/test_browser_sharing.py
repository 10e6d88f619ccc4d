"""Sharing in Debian's Chromium: an interviewer records a room from Observe and shares the
recording view-only with a supervisor from the player page; the supervisor finds it under
"Shared with me", watches it and cannot download it; someone of another group finds nothing by
search and gets 404 by its URL. Screenshots are kept in ``test-artifacts/``."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from .test_browser import ARTIFACTS, browser, sign_in, wait_until  # noqa: F401 - fixture
from .test_browser_csp import RECORD_VIOLATIONS
from .test_browser_review import LOADED, ROWS
from .test_browser_review_player import seconds_shown_at_least
from .test_cli import Server, http

PASSWORD = "sharing demo pw"
PEOPLE = {"ivy": "Ivy Interviewer", "sam": "Sam Supervisor", "cleo": "Cleo Counselor"}
LOOK = ["rooms.view", "cameras.view", "live.watch", "recordings.view"]


async def api(server: Server, method: str, path: str, token: str, body=None):
    """A call to the API off the event loop (the browser keeps running meanwhile)."""
    return await asyncio.to_thread(http, method, server.base + "/api/v1" + path, body, token)


async def signed_in_page(browser, server: Server, name: str):  # noqa: F811
    """A new browser (its own cookies) with ``name`` signed in."""
    page = await browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    await page.add_init_script(RECORD_VIOLATIONS)
    await sign_in(page, server.base, f"{name}'s password", name)
    return page


async def test_share_view_only_then_find_it_under_shared_with_me_and_hidden_from_others(tmp_path, browser):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD=PASSWORD)
    try:
        boss = http("POST", server.base + "/api/v1/auth/login", {"username": "admin", "password": PASSWORD})[1]["token"]
        ids = {}
        for name, display in PEOPLE.items():
            status, user = await api(server, "POST", "/users", boss, {
                "username": name, "password": f"{name}'s password", "display_name": display, "role": None})
            assert status == 201 and user["role"] == "" and user["groups"] == [], user
            ids[name] = user["id"]
        for group, members, rights in (
            ("Interviewers", ["ivy"], LOOK + ["recordings.record", "recordings.share", "clips.create",
                                              "clips.download", "markers.write"]),
            ("Supervisors", ["sam"], LOOK + ["clips.download"]),
            ("Counseling clinic", ["cleo"], LOOK + ["clips.download"]),
        ):
            status, made = await api(server, "POST", "/groups", boss, {
                "name": group, "members": [ids[m] for m in members], "rights": [{"right": r} for r in rights]})
            assert status == 201, made
            if group == "Counseling clinic":  # the clinic sees its own counselors' sessions
                status, made = await api(server, "PATCH", f"/groups/{made['id']}", boss,
                                         {"video_access": [{"author_group_id": made["id"]}]})
                assert status == 200, made
        room = next(r for r in (await api(server, "GET", "/rooms", boss))[1] if r["name"] == "Interview Room 1")

        # The interviewer records the room from its Observe page.
        ivy = await signed_in_page(browser, server, "ivy")
        await ivy.goto(f"{server.base}/observe/rooms/{room['id']}")
        await ivy.click("button[data-action=start]")
        await wait_until(ivy, "document.querySelector('.room').dataset.recording === 'recording'", timeout=15000)
        await wait_until(ivy, seconds_shown_at_least(4), timeout=20000)
        await ivy.click("button[data-action=stop]")
        await wait_until(ivy, "document.querySelector('.room').dataset.recording === 'idle'", timeout=15000)
        status, page = await api(server, "GET", "/recordings", boss)
        (rec,) = page["items"]
        assert rec["author_id"] == ids["ivy"], rec
        # A clip of it, so the supervisor's player has one to (not) download.
        detail = (await api(server, "GET", f"/recordings/{rec['id']}", boss))[1]
        track = detail["tracks"][0]
        status, clip = await api(server, "POST", f"/recordings/{rec['id']}/clips", boss,
                                 {"start_s": track["start_s"], "end_s": track["start_s"] + 2})
        assert status == 202, clip

        # ... finds it on Review, opens the player and shares it with Sam, view only.
        await ivy.click("text=Review")
        await wait_until(ivy, f"{LOADED} && {ROWS}.length === 1", timeout=15000)
        await ivy.click("tr.recording td.name a")
        await ivy.wait_for_url(f"{server.base}/review/recordings/{rec['id']}")
        sharing = ivy.locator("#sharing")
        await expect(sharing.locator("select[name=target] option", has_text="Sam Supervisor")).to_have_count(1)
        await sharing.locator("select[name=target]").select_option(label="Sam Supervisor")
        assert not await sharing.locator("input[name=can_download]").is_checked()
        await sharing.locator("button[type=submit]").click()
        shared = sharing.locator(".share-list li.share")
        await expect(shared).to_have_count(1, timeout=10000)
        await expect(shared).to_contain_text("Sam Supervisor (person): view only")
        await ivy.screenshot(path=str(ARTIFACTS / "sharing-shared.png"))
        assert await ivy.evaluate("window.__cspViolations") == []
        await ivy.close()

        # The supervisor finds it under "Shared with me" and watches it ...
        sam = await signed_in_page(browser, server, "sam")
        await sam.click("text=Review")
        await wait_until(sam, f"{LOADED} && {ROWS}.length === 1", timeout=15000)
        await sam.select_option("select[name=shared]", "me")
        await wait_until(sam, f"{LOADED} && {ROWS}.length === 1 && location.search.includes('shared=me')",
                         timeout=10000)
        assert await sam.locator("tr.recording").get_attribute("data-recording-id") == str(rec["id"])
        await sam.screenshot(path=str(ARTIFACTS / "sharing-shared-with-me.png"))
        await sam.click("tr.recording td.name a")
        await sam.wait_for_url(f"{server.base}/review/recordings/{rec['id']}")
        await expect(sam.locator(".view video")).to_have_count(2, timeout=10000)
        await sam.click("button.play")
        await wait_until(sam, "window.valtPlayer.clock() > 1.5", timeout=20000)
        # ... but cannot download it: no download link, and the API says no.
        await expect(sam.locator(".clip-table tr.clip .view-only")).to_have_text("ready (view only: no download)",
                                                                                timeout=30000)
        assert await sam.locator("a.download").count() == 0
        assert await sam.locator("#sharing").count() == 0  # and cannot pass it on
        statuses = await sam.evaluate(
            f"""Promise.all([fetch('/api/v1/recordings/{rec['id']}/tracks/{track['id']}/media').then(r => r.status),
                             fetch('/api/v1/clips/{clip['id']}/download').then(r => r.status)])""")
        assert statuses == [403, 403], statuses
        await sam.screenshot(path=str(ARTIFACTS / "sharing-view-only-player.png"))
        assert await sam.evaluate("window.__cspViolations") == []
        await sam.close()

        # Someone of another group: nothing by search, 404 by URL.
        cleo = await signed_in_page(browser, server, "cleo")
        await cleo.goto(f"{server.base}/review?q={rec['name'].split()[0]}")
        await wait_until(cleo, LOADED, timeout=15000)
        assert await cleo.locator("tr.recording").count() == 0
        await expect(cleo.locator("#review-empty")).to_have_text("No recording matches the search and filters.")
        response = await cleo.goto(f"{server.base}/review/recordings/{rec['id']}")
        assert response.status == 404
        status, _ = await api(server, "GET", f"/recordings/{rec['id']}", boss)
        assert status == 200
        await cleo.close()
    finally:
        server.stop()
