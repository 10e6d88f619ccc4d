"""The web UI in a real browser (Debian's Chromium driven by Playwright), as a person signs in.

Screenshots of each step are kept in ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from playwright.async_api import async_playwright

from .conftest import REPO
from .test_cli import Server

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


async def wait_until(page, expression: str, timeout: float = 10000) -> None:
    """Wait until the JavaScript ``expression`` is true in ``page`` (``timeout`` in ms).

    Polled with ``page.evaluate``, not ``wait_for_function``: the latter evaluates the string
    inside the page, which the pages' Content-Security-Policy (no ``unsafe-eval``) forbids.
    """
    deadline = time.monotonic() + timeout / 1000
    while not await page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout / 1000:g} s waiting for {expression}")
        await asyncio.sleep(0.1)


async def sign_in(page, base: str, password: str, username: str = "admin") -> None:
    """Sign in through the login form, as a person does, and land on the home page."""
    await page.goto(base + "/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(base + "/")


@pytest.fixture
async def browser():
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def test_sign_in_see_rooms_sign_out_in_chromium(tmp_path, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD="browser demo pw")
    try:
        page = await browser.new_page(viewport={"width": 1100, "height": 700})
        await page.goto(server.base + "/")
        assert page.url.endswith("/login")
        await page.fill("input[name=username]", "admin")
        await page.fill("input[name=password]", "not the password")
        await page.click("button[type=submit]")
        assert "Wrong user name or password" in await page.inner_text("[role=alert]")
        await page.screenshot(path=str(ARTIFACTS / "login-refused.png"))

        await page.fill("input[name=password]", "browser demo pw")
        await page.click("button[type=submit]")
        await page.wait_for_url(server.base + "/")
        rooms = await page.locator("section.room h2").all_inner_texts()
        assert rooms == ["Interview Room 1", "Interview Room 2"]
        cameras = await page.locator("li.camera .name").all_inner_texts()
        assert sorted(cameras) == ["Room 1 table", "Room 1 wide", "Room 2 table", "Room 2 wide"]
        await page.screenshot(path=str(ARTIFACTS / "home.png"))

        await page.click("text=Sign out")
        await page.wait_for_url(re.compile(r".*/login$"))
        await page.goto(server.base + "/")
        assert page.url.endswith("/login")
    finally:
        server.stop()
