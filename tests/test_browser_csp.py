"""Every page runs under its Content-Security-Policy in Chromium: nothing the page needs is blocked."""

from __future__ import annotations

import asyncio

from .test_browser import browser, sign_in, wait_until  # noqa: F401 - fixture
from .test_cli import Server

# Reported by the browser for anything the policy blocks (a script, a style, a socket, media).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


async def test_pages_run_under_their_content_security_policy(tmp_path, browser):  # noqa: F811
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD="csp demo pw")
    try:
        page = await browser.new_page(viewport={"width": 1280, "height": 860})
        await page.add_init_script(RECORD_VIOLATIONS)
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text))
        await sign_in(page, server.base, "csp demo pw")
        seen = {}
        for path in ["/", "/observe", "/admin/cameras"]:
            response = await page.goto(server.base + path)
            assert "script-src 'self'" in response.headers["content-security-policy"]
            if path == "/observe":
                # Live video: a WebSocket and a blob: Media Source, both allowed by the policy.
                await wait_until(page, "[...document.querySelectorAll('.tile video')].every(v => v.currentTime > 0.5)",
                                 timeout=20000)
            else:
                await asyncio.sleep(1)
            seen[path] = await page.evaluate("window.__cspViolations")
        assert seen == {"/": [], "/observe": [], "/admin/cameras": []}
        assert not [m for m in console if "Content Security Policy" in m], console
    finally:
        server.stop()
