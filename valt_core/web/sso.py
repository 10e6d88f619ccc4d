"""Redirect sign-in (single sign-on) routes, the same for every backend that offers one.

``/auth/sso/NAME/start`` sends the browser to the provider, ``/auth/sso/NAME/callback`` takes
its answer and signs the person in, ``/auth/sso/NAME/metadata`` serves what the provider's
admin needs. The backend (``oidc``, ``saml``, a vendor's) only speaks its protocol; the state,
its single use, the binding to the browser, the session cookie and the audit are done here.
"""

from __future__ import annotations

import logging
import secrets

from quart import Response, abort, redirect, request, url_for

from ..api.guard import SESSION_COOKIE
from ..auth.base import AuthBackend, SignInRefused
from ..auth.flows import digest
from ..context import get_context
from ..redact import redact
from . import _login_form, web

log = logging.getLogger(__name__)

#: The cookie that ties a flow to the browser that started it (SameSite=Lax: sent on the
#: provider's top-level redirect back, not on a request another site makes in the background).
FLOW_COOKIE = "valt_sso"
FLOW_COOKIE_PATH = "/auth/sso/"


def redirect_backend(name: str) -> AuthBackend:
    """The enabled backend ``name`` if it offers a redirect sign-in, else 404."""
    backend = get_context().auth_backends.get(name)
    if backend is None or not backend.sign_in_label:
        abort(404)
    return backend


def local_path(value: str | None) -> str:
    """``value`` if it is a path on this site (``/review``), else ``/``: the page to land on
    after signing in must never be another site (an open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value[:500]


def callback_url(name: str) -> str:
    """The absolute URL the provider sends the browser back to."""
    return url_for("web.sso_callback", name=name, _external=True)


async def _refused(message: str, status: int):
    return await _login_form(message, status)


@web.get("/auth/sso/<name>/start")
async def sso_start(name: str):
    """Send the browser to the provider of backend ``name``."""
    ctx = get_context()
    backend = redirect_backend(name)
    state = secrets.token_urlsafe(32)
    browser = secrets.token_urlsafe(32) if backend.binds_browser else None
    try:
        start = await backend.begin_sign_in(callback_url(name), state)
    except SignInRefused as err:
        return await _refused(err.message, 502)
    except Exception as err:  # noqa: BLE001 - a provider that cannot be reached is a page, not a 500
        log.warning("sign-in with %s could not start: %s", name, redact(f"{type(err).__name__}: {err}"))
        return await _refused(f"{backend.sign_in_label}: the sign-in service cannot be reached now; "
                              "try again shortly, and tell the administrator if it goes on.", 502)
    await ctx.sessions.flows.open(state, name, start.flow, local_path(request.args.get("next")), browser)
    resp = redirect(start.url, 303)
    if browser is not None:
        resp.set_cookie(FLOW_COOKIE, browser, httponly=True, samesite="Lax", path=FLOW_COOKIE_PATH,
                        max_age=600, secure=ctx.settings.server.secure_cookies)
    return resp


async def _callback_params() -> dict[str, str]:
    params = {k: v for k, v in request.args.items()}
    if request.method == "POST":
        params.update((k, v) for k, v in (await request.form).items())
    return params


@web.route("/auth/sso/<name>/callback", methods=["GET", "POST"])
async def sso_callback(name: str):
    """Check the provider's answer, sign the person in and land on the page they asked for."""
    ctx = get_context()
    backend = redirect_backend(name)
    if request.method not in backend.callback_methods:
        abort(405)
    params = await _callback_params()
    remote = request.remote_addr or ""
    flow = await ctx.sessions.flows.take(params.get("state") or params.get("RelayState") or "", name)
    if flow is None:
        return await _refused("This sign-in expired or was already used; please sign in again.", 400)
    if flow.browser_hash:
        presented = request.cookies.get(FLOW_COOKIE, "")
        if not presented or not secrets.compare_digest(digest(presented), flow.browser_hash):
            await ctx.audit.record("auth.login_failed", actor_name="", remote_addr=remote,
                                   detail={"method": name, "reason": "the answer came to another browser"})
            return await _refused("This sign-in was started in another browser; please sign in again here.", 400)
    try:
        identity = await backend.finish_sign_in(callback_url(name), params, ctx.sessions.flows.data(flow))
    except SignInRefused as err:
        await ctx.audit.record("auth.login_failed", actor_name="", remote_addr=remote,
                               detail={"method": name, "reason": err.message})
        return await _refused(f"{backend.sign_in_label}: {err.message}", 401)
    except Exception as err:  # noqa: BLE001
        log.warning("sign-in with %s failed: %s", name, redact(f"{type(err).__name__}: {err}"))
        return await _refused(f"{backend.sign_in_label}: the sign-in service could not be reached to check "
                              "your sign-in; please try again.", 502)
    try:
        issued = await ctx.sessions.sign_in(name, identity, remote)
    except SignInRefused as err:
        return await _refused(err.message, 403)
    resp = redirect(flow.next_path, 303)
    resp.set_cookie(SESSION_COOKIE, issued.token, httponly=True, samesite="Lax",
                    secure=ctx.settings.server.secure_cookies,
                    max_age=int(ctx.settings.auth.session_hours * 3600))
    resp.delete_cookie(FLOW_COOKIE, path=FLOW_COOKIE_PATH)
    return resp


@web.get("/auth/sso/<name>/metadata")
async def sso_metadata(name: str):
    """The document the provider's admin loads to trust Valt (SAML SP metadata); 404 if none."""
    backend = redirect_backend(name)
    found = await backend.metadata(callback_url(name))
    if found is None:
        abort(404)
    media_type, body = found
    return Response(body, content_type=media_type)
