"""The Quart app factory: ``create_app(settings)`` builds everything; importing does nothing."""

from __future__ import annotations

import logging
import re
from typing import Any

from quart import Quart, Request, has_request_context, jsonify, request
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from werkzeug.exceptions import HTTPException

from .context import ValtContext
from .db import redact_url
from .errors import Conflict, DatabaseError, ValidationFailed, ValtError
from .plugins import PluginHost
from .settings import Settings
from .tls import hsts_header

log = logging.getLogger(__name__)

#: The pages load their scripts, styles and images from Valt itself and nothing inline; live
#: video plays from a MediaSource (a blob: URL) fed over a same-origin WebSocket.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


def page_csp(live_urls: list[str], store_origins: list[str] = ()) -> str:
    """The pages' policy, letting them also connect to media servers that serve live view directly,
    and to the store that presigned segment reads point at."""
    extra = []
    for url in sorted(set(live_urls)):
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("http", "https") or not rest or any(c in rest for c in " ;,'\""):
            continue
        origin = rest.split("/", 1)[0]
        extra += [f"{scheme}://{origin}", f"{'wss' if scheme == 'https' else 'ws'}://{origin}"]
    for origin in sorted(set(store_origins)):
        scheme, sep, rest = origin.partition("://")
        if sep and scheme in ("http", "https") and rest and not any(c in rest for c in " ;,'\"/"):
            extra.append(origin)
    if not extra:
        return PAGE_CSP
    return PAGE_CSP.replace("connect-src 'self'", "connect-src 'self' " + " ".join(extra))


#: JSON and media answers are never documents to render.
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def database_failure(err: DBAPIError, url: str) -> ValtError:
    """What a database error that escaped a route answers, worded without any secret.

    A constraint the request broke (a name taken) is 409 and a value no column holds is 400:
    both are about the request. Anything else ("database or disk is full", MariaDB gone) is
    503 ``database_unavailable``. Only the driver's own message is kept (never the SQL or its
    parameters, which may hold token hashes); the URL and its password are masked.
    """
    text = str(err.orig if err.orig is not None else err).strip().splitlines()[0][:300]
    text = redact_url(text)
    password = make_url(url).password
    if password:
        text = text.replace(str(password), "***")
    if isinstance(err, IntegrityError):
        return Conflict(f"that clashes with what is stored ({text})")
    if isinstance(err, DataError):
        return ValidationFailed(f"a value does not fit the database ({text})")
    return DatabaseError(f"the database is unavailable ({type(err.orig or err).__name__}: {text}); "
                         "try again shortly, and tell the administrator if it goes on")


#: tus bodies (a video, in chunks of the client's choosing) stream to disk: the 16 MiB bound of
#: JSON and form bodies does not apply to them; the file's own length bounds them.
_TUS_BODY = re.compile(r"^/api/v1/uploads/(?:files/\d+|\d+/files)$")


class ValtRequest(Request):
    """Quart's request, without the body size bound on the tus routes (which stream to disk)."""

    def __init__(self, method: str, scheme: str, path: str, *args: Any, **kwargs: Any) -> None:
        if method in ("PATCH", "POST") and _TUS_BODY.match(path):
            kwargs["max_content_length"] = None
        super().__init__(method, scheme, path, *args, **kwargs)


def create_app(settings: Settings, plugins: PluginHost | None = None) -> Quart:
    """Build the Valt app for ``settings``.

    Loads plugins (unless ``plugins`` is given) and builds every service; connecting to the
    database and checking its schema happens when serving starts.
    """
    from .api import api
    from .api.guard import IdConverter
    from .web import web

    app = Quart("valt_core", static_folder="web/static", template_folder="web/templates")
    app.request_class = ValtRequest
    # Before any route is added: every <int:...> in Valt is a bounded row id.
    app.url_map.converters["int"] = IdConverter
    ctx = ValtContext.build(settings, plugins)
    app.extensions["valt"] = ctx
    app.config.update(
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        TEMPLATES_AUTO_RELOAD=False,
    )
    from .flow import BodyFlow

    # tus bodies wait for the disk in bounded memory, however fast the client sends.
    app.asgi_app = BodyFlow(app.asgi_app, _TUS_BODY, limit=8 * 1024 * 1024)
    if settings.server.trusted_proxies:
        from .proxy import TrustedProxies, parse_networks

        app.asgi_app = TrustedProxies(app.asgi_app, parse_networks(settings.server.trusted_proxies))
    app.register_blueprint(api)
    app.register_blueprint(web)
    for transport in ctx.transports.values():
        blueprint = transport.blueprint(ctx.live)
        if blueprint is not None:  # an ingest transport (rtmp) has no routes
            app.register_blueprint(blueprint)

    @app.before_serving
    async def start() -> None:
        await ctx.db.check_schema()
        await ctx.storage.check()
        await ctx.bus.start()
        await ctx.media.start()
        if ctx.push is not None:
            await ctx.push.start()
        await ctx.uploads.start()
        ctx.directory_sync.start()

    @app.after_serving
    async def stop() -> None:
        await ctx.directory_sync.stop()
        await ctx.uploads.stop()
        await ctx.live.stop()
        if ctx.push is not None:
            await ctx.push.stop()
        await ctx.review.close()
        await ctx.media.stop()
        await ctx.bus.close()
        await ctx.cameras.close()
        await ctx.close()

    @app.errorhandler(ValtError)
    async def valt_error(err: ValtError):
        if err.http_status >= 500:
            log.warning("%s: %s", type(err).__name__, err.message)
        return jsonify(err.to_json()), err.http_status, err.headers()

    @app.errorhandler(DBAPIError)
    async def database_error(err: DBAPIError):
        # "database or disk is full", MariaDB gone: the request cannot be served now (503),
        # which is not a bug in the request (4xx) nor a crash to show as 500.
        answer = database_failure(err, settings.database_url)
        log.warning("%s %s: %s", request.method if has_request_context() else "-",
                    request.path if has_request_context() else "-", answer.message)
        return jsonify(answer.to_json()), answer.http_status

    @app.errorhandler(HTTPException)
    async def http_error(err: HTTPException):
        if has_request_context() and request.path.startswith("/api/"):
            response = jsonify({"error": (err.name or "error").lower().replace(" ", "_"),
                                "message": err.description})
            # Keep what the exception says in headers: Allow on a 405, Retry-After, ...
            for name, value in err.get_headers():
                if name.lower() != "content-type":
                    response.headers[name] = value
            return response, err.code
        return err

    # Only with Valt's own TLS: HSTS on a plain-HTTP site would lock browsers out of it.
    hsts = (hsts_header(settings.server.hsts_max_age_s, settings.server.hsts_include_subdomains)
            if settings.server.tls else None)

    @app.after_request
    async def security_headers(response):
        if not has_request_context():
            return response
        if hsts:
            response.headers.setdefault("Strict-Transport-Security", hsts)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
            response.headers.setdefault("Content-Security-Policy", API_CSP)
        else:
            present = ctx.media.cluster.present
            live_urls = [str(p["live_url"]) for p in present.values() if p.get("live_url")]
            store = ctx.storage.presigned_origins() if ctx.settings.storage.presigned_playback_s else []
            response.headers.setdefault("Content-Security-Policy", page_csp(live_urls, store))
        return response

    return app
