"""Admin > Users and Admin > Groups in Debian's Chromium, against ``valt demo``.

The demo's admin adds a user in no built-in group from the Users page (a too-short password is
refused at its field first), sets them a new password, then creates the group "Clinic" on the
Groups page with that user in it, ``recordings.view`` in every room, ``rooms.view`` in one room
only and video access to every author. What was stored is read through the API, not from the
page. The new user signs in and sees that one room only; an operator gets no links and 403 for
the pages. Screenshots are kept in ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from valt_core.auth.access import RIGHTS

from .test_browser import ARTIFACTS, browser, sign_in  # noqa: F401 - fixture
from .test_browser_csp import RECORD_VIOLATIONS
from .test_cli import Server, http

PASSWORD = "access demo pw"


async def api(server: Server, method: str, path: str, token: str, body=None):
    """A call to the API off the event loop (the browser keeps running meanwhile)."""
    return await asyncio.to_thread(http, method, server.base + "/api/v1" + path, body, token)


async def shot(page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"admin-access-{name}.png"), full_page=True)


async def test_an_admin_adds_a_user_and_a_group_limited_to_one_room_from_the_pages(tmp_path, browser):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD=PASSWORD)
    try:
        boss = (await api(server, "POST", "/auth/login", "", {"username": "admin", "password": PASSWORD}))[1]["token"]
        rooms = {r["name"]: r["id"] for r in (await api(server, "GET", "/rooms", boss))[1]}
        assert sorted(rooms) == ["Interview Room 1", "Interview Room 2"]
        page = await browser.new_page(viewport={"width": 1280, "height": 1000})
        await page.add_init_script(RECORD_VIOLATIONS)
        page_errors: list[str] = []
        page.on("pageerror", lambda err: page_errors.append(str(err)))
        await sign_in(page, server.base, PASSWORD)

        # Users: the API's field error shows at its field, then the user is added in no built-in group.
        await page.click("header.bar >> text=Users")
        await page.wait_for_url(server.base + "/admin/users")
        await expect(page.locator("tr.user-row[data-username=admin] .groups")).to_have_text("Administrators")
        await page.click("#add-user")
        form = page.locator("#user-form")
        await form.locator("input[name=username]").fill("nora")
        await form.locator("input[name=display_name]").fill("Nora Nurse")
        await form.locator("input[name=password]").fill("short")
        await form.locator("select[name=role]").select_option("")
        await form.locator("button[type=submit]").click()
        await expect(form.locator(".field-error[data-field=password]")).to_have_text(
            "String should have at least 8 characters")
        await expect(form.locator(".result")).to_contain_text("invalid request body")
        await form.locator("input[name=password]").fill("nora's first password")
        await form.locator("select[name=role]").select_option("")
        await form.locator("button[type=submit]").click()
        await expect(form.locator(".result")).to_have_text("Nora Nurse can sign in now as nora.")
        nora_row = page.locator("tr.user-row[data-username=nora]")
        await expect(nora_row.locator(".groups")).to_have_text("")
        await expect(nora_row.locator(".backend")).to_have_text("local")
        await expect(nora_row.locator(".last-login")).to_have_text("never")
        await expect(nora_row.locator(".state")).to_have_text("enabled")
        await expect(nora_row.locator("select[name=role]")).to_have_value("")
        # ... and given a new password from her row.
        await nora_row.locator("button.reset").click()
        detail = page.locator("tr.user-detail[data-username=nora]")
        await detail.locator("input[name=password]").fill("nora's password")
        await detail.locator("button[type=submit]").click()
        await expect(detail.locator(".result")).to_have_text("New password set for Nora Nurse.")
        await shot(page, "1-users")
        assert await page.evaluate("window.__cspViolations") == []  # this page's; the next one starts afresh

        # Groups: "Clinic", with Nora, two rights and video access to every author.
        await page.click("header.bar >> text=Groups")
        await page.wait_for_url(server.base + "/admin/groups")
        await page.click("#new-group")
        group = page.locator("#group-form")
        await group.locator("input[name=name]").fill("Clinic")
        await group.locator("input[name=description]").fill("Counseling, Interview Room 1 only")
        await group.locator("select[name=add_member]").select_option(label="Nora Nurse (nora)")
        await group.locator(".add-member .add").click()
        await expect(group.locator(".member-list .member .name")).to_have_text(["Nora Nurse (nora)"])
        await group.get_by_label("recordings.view in every room", exact=True).check()
        await group.get_by_label("rooms.view in Interview Room 1", exact=True).check()
        # Rooms cannot limit users.manage: it offers no room to tick.
        await expect(group.locator("tr[data-right='users.manage'] .rooms input")).to_have_count(0)
        await group.locator("label[data-kind=all] input").check()
        await expect(group.locator("label[data-author-id] input:disabled")).to_have_count(2)
        await expect(group.locator(".dirty")).to_have_text("Unsaved changes")
        await group.locator("button.save").click()
        await expect(group.locator(".result")).to_have_text("Clinic is created.")
        await expect(group.locator("button.save")).to_have_text("Save")
        await expect(page.locator(".group-list li[data-group=Clinic] .count")).to_have_text("1 member")
        await shot(page, "2-group")

        status, users = await api(server, "GET", "/users", boss)
        nora = next(u for u in users if u["username"] == "nora")
        status, groups = await api(server, "GET", "/groups", boss)
        clinic = next(g for g in groups if g["name"] == "Clinic")
        assert clinic == {"id": clinic["id"], "name": "Clinic", "description": "Counseling, Interview Room 1 only",
                          "builtin": "", "members": [nora["id"]],
                          "rights": [{"right": "recordings.view", "room_id": None},
                                     {"right": "rooms.view", "room_id": rooms["Interview Room 1"]}],
                          "video_access": [{"author_id": None, "author_group_id": None}]}
        assert nora["role"] == "" and nora["groups"] == [{"id": clinic["id"], "name": "Clinic"}], nora
        assert nora["display_name"] == "Nora Nurse" and not nora["disabled"]

        # The Administrators' rights are shown, read-only, with the reason.
        await page.click(".group-list li[data-group=Administrators] button")
        await expect(group.locator(".admin-note")).to_be_visible()
        await expect(group.locator("input[name=name]")).to_have_attribute("readonly", "")
        await expect(group.locator(".rights-matrix input:not(:disabled)")).to_have_count(0)
        await expect(group.locator(".rights-matrix input:checked")).to_have_count(len(RIGHTS))  # every one
        await expect(group.locator("button.delete")).to_be_hidden()
        await shot(page, "3-administrators")
        assert await page.evaluate("window.__cspViolations") == []
        assert page_errors == []
        await page.close()

        # Nora, with the password set on her row, sees Interview Room 1 and nothing else.
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        await sign_in(page, server.base, "nora's password", username="nora")
        await page.goto(server.base + "/observe")
        await expect(page.locator("section.room h2")).to_have_text(["Interview Room 1"])
        listed = await page.evaluate("fetch('/api/v1/rooms').then(r => r.json()).then(rs => rs.map(r => r.name))")
        assert listed == ["Interview Room 1"]
        await expect(page.locator("header.bar a", has_text="Groups")).to_have_count(0)
        await shot(page, "4-nora-observe")
        await page.close()

        # An operator: no links, and 403 for both pages.
        status, _ = await api(server, "POST", "/users", boss,
                              {"username": "olga", "password": "operator pw 1", "role": "operator"})
        assert status == 201
        page = await browser.new_page()
        await sign_in(page, server.base, "operator pw 1", username="olga")
        await expect(page.locator("header.bar a", has_text="Users")).to_have_count(0)
        await expect(page.locator("header.bar a", has_text="Groups")).to_have_count(0)
        for path in ("/admin/groups", "/admin/users"):
            response = await page.goto(server.base + path)
            assert response.status == 403, path
            await expect(page.locator("[role=alert]")).to_have_text(
                "You may not open this page: it needs the right "
                "\u201cUsers and groups: add, disable, rights, video access\u201d.")
        await page.close()
    finally:
        server.stop()
