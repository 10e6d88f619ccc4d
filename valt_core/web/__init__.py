"""The web UI: server-rendered pages and plain JavaScript modules, no build step."""

from __future__ import annotations

import logging
import secrets

from quart import Blueprint, make_response, redirect, render_template, render_template_string, request, url_for
from sqlmodel import select

from .. import __version__
from ..api.guard import SESSION_COOKIE
from ..api.serialize import cameras_by_room
from ..auth.access import NOBODY, RIGHTS, Access, load_access, may_share, recording_reach
from ..context import get_context
from ..db.models import Camera, Recording, Room, User
from ..errors import DirectoryUnavailable, LoginFailed, ServiceBusy, TooManyAttempts
from ..redact import redact

web = Blueprint("web", __name__)
log = logging.getLogger(__name__)

LOGIN_CSRF_COOKIE = "valt_login_csrf"


async def signed_in_user() -> tuple[User, str] | None:
    """The user of the session cookie and the cookie's token, or ``None``."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    found = await get_context().sessions.user_for_token(token)
    return (found[0], token) if found else None


async def signed_in_access() -> tuple[User, str, Access] | None:
    """The user of the session cookie, the cookie's token and what the user may do, or ``None``."""
    signed_in = await signed_in_user()
    if signed_in is None:
        return None
    return signed_in[0], signed_in[1], await load_access(get_context().db, signed_in[0])


@web.get("/login")
async def login_page():
    """The sign-in form."""
    return await _login_form(error=None, status=200)


async def _login_form(error: str | None, status: int, username: str = ""):
    csrf = secrets.token_urlsafe(24)
    backends = get_context().auth_backends
    buttons = [(name, b.sign_in_label) for name, b in backends.items() if b.sign_in_label]
    passwords = any(b.checks_passwords for b in backends.values())
    html = await render_template("login.html", error=error, csrf=csrf, username=username, version=__version__,
                                 buttons=buttons, passwords=passwords, next=local_path(request.args.get("next")))
    resp = await make_response(html, status)
    resp.set_cookie(LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="Strict", path="/login",
                    secure=get_context().settings.server.secure_cookies)
    return resp


@web.post("/login")
async def login_submit():
    """Check the form, set the session cookie, go home."""
    ctx = get_context()
    form = await request.form
    username = form.get("username", "")
    presented = form.get("csrf_token", "")
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(presented, expected):
        return await _login_form("The form expired; please try again.", 400, username)
    try:
        issued = await ctx.sessions.login(username, form.get("password", ""), request.remote_addr or "")
    except (TooManyAttempts, ServiceBusy, DirectoryUnavailable) as err:
        resp = await _login_form(err.message, err.http_status, username)
        resp.headers.update(err.headers())
        return resp
    except LoginFailed:
        return await _login_form("Wrong user name or password.", 401, username)
    resp = redirect(local_path(form.get("next")))
    resp.set_cookie(SESSION_COOKIE, issued.token, httponly=True, samesite="Lax",
                    secure=ctx.settings.server.secure_cookies,
                    max_age=int(ctx.settings.auth.session_hours * 3600))
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


@web.post("/logout")
async def logout():
    """Revoke the session (CSRF-checked) and go to the sign-in page."""
    ctx = get_context()
    signed_in = await signed_in_user()
    if signed_in is not None:
        user, token = signed_in
        if not ctx.sessions.csrf_ok(token, (await request.form).get("csrf_token")):
            return "missing or wrong CSRF token", 403
        found = await ctx.sessions.user_for_token(token)
        if found:
            await ctx.sessions.revoke(found[1].id)
            ctx.live.signed_out(found[1].id)
            await ctx.audit.record("auth.logout", actor=user, remote_addr=request.remote_addr or "")
            backend = ctx.auth_backends.get(user.auth_backend)
            if backend is not None and backend.sign_in_label:
                # End the provider's session too, when it offers that, or the next "Sign in
                # with ..." would sign the same person in again without a question.
                leave = await _provider_sign_out(backend, user, url_for("web.login_page", _external=True))
                if leave:
                    # A page that moves on, not a redirect: the pages' CSP (form-action 'self')
                    # forbids a form's POST to end on another site, and browsers enforce that on
                    # redirects too; a navigation from a page is not a form's target.
                    html = await render_template("signed_out.html", leave=leave, label=backend.sign_in_label,
                                                 version=__version__)
                    resp = await make_response(html, 200)
                    resp.delete_cookie(SESSION_COOKIE)
                    return resp
    resp = redirect(url_for("web.login_page"))
    resp.delete_cookie(SESSION_COOKIE)
    return resp


async def _provider_sign_out(backend, user: User, return_url: str) -> str | None:
    try:
        return await backend.sign_out_url(user.username, return_url)
    except Exception as err:  # noqa: BLE001 - Valt's own sign-out is done; the provider's is a courtesy
        log.warning("sign-out at %s failed: %s", backend.name, redact(f"{type(err).__name__}: {err}"))
        return None


# A 403 page in the site's frame; one line of template is not worth a file of its own.
FORBIDDEN = """{% extends "base.html" %}{% block title %}Not allowed · Valt{% endblock %}
{% block main %}<h1>Not allowed</h1><p class="error" role="alert">{{ message }}</p>{% endblock %}"""


async def _rooms_page(template: str, room_id: int | None = None, enabled_only: bool = False,
                      permission: str | None = None, signed_in: tuple[User, str, Access] | None = None, **extra):
    # Every signed-in page lists the rooms the user may see and their cameras; strangers go to
    # the sign-in page, and a page that needs a right the user lacks answers 403 (the nav hides
    # its link).
    ctx = get_context()
    signed_in = signed_in or await signed_in_access()
    if signed_in is None:
        return redirect(url_for("web.login_page"))
    user, token, access = signed_in
    frame = {"user": user, "role": access.role, "csrf": ctx.sessions.csrf_token(token), "version": __version__,
             "can_manage_cameras": access.allows("cameras.manage"),
             "can_view_servers": access.allows("system.view"),
             "can_manage_users": access.allows("users.manage"),
             "can_review": access.allows("recordings.view")}
    if permission is not None and not access.allows(permission):
        html = await render_template_string(FORBIDDEN, message="You may not open this page: it needs the right "
                                            f"\u201c{RIGHTS[permission]}\u201d.", **frame)
        return html, 403
    visible = access.rooms("rooms.view")
    async with ctx.db.session() as s:
        query = select(Room).order_by(Room.name)
        if room_id is not None:
            query = query.where(Room.id == room_id)
        if visible is not None:
            query = query.where(Room.id.in_(visible))
        rooms = (await s.exec(query)).all()
        cameras = select(Camera).order_by(Camera.name)
        if enabled_only:
            cameras = cameras.where(Camera.enabled == True)  # noqa: E712
        by_room = cameras_by_room(list((await s.exec(cameras)).all()))
    if room_id is not None and not rooms:
        return "No such room", 404
    return await render_template(
        template, rooms=rooms, by_room=by_room, unassigned=by_room.get(None, []) if visible is None else [],
        can_record=access.allows("recordings.record"),
        can_control=access.allows("cameras.control"),
        can_mark=access.allows("markers.write"), **frame, **extra,
    )


async def _observe(room_id: int | None):
    return await _rooms_page("observe.html", room_id, enabled_only=True, single_room=room_id is not None)


@web.get("/observe")
async def observe():
    """Every room as a grid of live tiles, with recording controls."""
    return await _observe(None)


@web.get("/observe/rooms/<int:room_id>")
async def observe_room(room_id: int):
    """One room: all its cameras, larger."""
    return await _observe(room_id)


@web.get("/")
async def home():
    """Rooms and their cameras; sends strangers to the sign-in page."""
    return await _rooms_page("home.html")


@web.get("/admin/cameras")
async def admin_cameras():
    """Add, find, test, edit and remove cameras (admins); the page's script does it through the API."""
    # The API's JSON has its keys sorted, so the form takes the order in which each driver's
    # author listed the settings (host before port before password) from the page.
    field_order = {name: list(klass.Config.model_fields)
                   for name, klass in get_context().plugins.camera_drivers.items()}
    return await _rooms_page("admin_cameras.html", permission="cameras.manage", field_order=field_order)


@web.get("/admin/media-servers")
async def admin_media_servers():
    """The media servers' state and load, enrolment, and moving cameras and rooms (admins).

    The page's script does it all through the API; the page itself tells the script what this
    user may change and which NATS server a new media server joins.
    """
    ctx = get_context()
    signed_in = await signed_in_access()
    access = signed_in[2] if signed_in else NOBODY
    page = {"can_manage_servers": access.allows("servers.manage"),
            "can_move_cameras": access.allows("servers.manage") and access.allows("cameras.manage"),
            # Shown in the command a site runs on the new server's host; a password in it is masked.
            "bus_url": redact(ctx.settings.bus.url), "embedded": ctx.media.engine is not None,
            "app_seed_file": str(ctx.settings.bus.nkey_seed_file or "")}
    return await _rooms_page("admin_media_servers.html", permission="system.view", page=page, signed_in=signed_in)


@web.get("/admin/users")
async def admin_users():
    """Users: add one, disable or enable, reset a password, change the built-in group (admins).

    The page's script does it through the API; the page tells it who is signed in, since
    nobody may disable themselves or leave the Administrators.
    """
    signed_in = await signed_in_access()
    # Only users of a backend that keeps its passwords in Valt can be given a new one here.
    password_backends = sorted(n for n, b in get_context().auth_backends.items() if b.manages_passwords)
    page = {"me": signed_in[0].id if signed_in else None, "password_backends": password_backends}
    return await _rooms_page("admin_users.html", permission="users.manage", page=page, signed_in=signed_in)


@web.get("/admin/groups")
async def admin_groups():
    """Groups: members, rights with their room limits, and video access (admins), through the API."""
    signed_in = await signed_in_access()
    page = {"me": signed_in[0].id if signed_in else None}
    return await _rooms_page("admin_groups.html", permission="users.manage", page=page, signed_in=signed_in)


def _review_rights(access: Access) -> dict[str, bool]:
    # What the review pages' scripts may offer; the API checks each call again.
    return {"edit": access.allows("recordings.edit"), "delete": access.allows("recordings.delete"),
            "mark": access.allows("markers.write"), "manage_markers": access.allows("markers.manage"),
            "clip": access.allows("clips.create"), "audit": access.allows("audit.view"),
            "download": access.allows("clips.download"), "share": access.allows("recordings.share")}


@web.get("/review")
async def review():
    """Find recordings: search, filters and pages (the page's script asks the API)."""
    signed_in = await signed_in_access()
    rights = _review_rights(signed_in[2] if signed_in else NOBODY)
    return await _rooms_page("review.html", permission="recordings.view", rights=rights, signed_in=signed_in)


@web.get("/review/recordings/<int:recording_id>")
async def review_recording(recording_id: int):
    """The player of one recording: every track on one clock, markers, clips (audited as opened)."""
    ctx = get_context()
    signed_in = await signed_in_access()
    rights = _review_rights(signed_in[2] if signed_in else NOBODY)
    if signed_in is not None and signed_in[2].allows("recordings.view"):
        async with ctx.db.session() as s:
            rec = await s.get(Recording, recording_id)
        reach = None if rec is None else await recording_reach(ctx.db, signed_in[2], rec)
        if reach is None:
            return "No such recording", 404
        rights["download"] = reach == "download"
        rights["clip"] = rights["clip"] and reach == "download"
        rights["share"] = await may_share(ctx.db, signed_in[2], rec)
        await ctx.audit.record("recording.open", actor=signed_in[0], target_type="recording",
                               target_id=recording_id, remote_addr=request.remote_addr or "")
    return await _rooms_page("review_player.html", permission="recordings.view", rights=rights,
                             recording_id=recording_id, signed_in=signed_in)


# The redirect sign-in routes register themselves on this blueprint.
from . import sso  # noqa: E402,F401
from .sso import local_path  # noqa: E402
