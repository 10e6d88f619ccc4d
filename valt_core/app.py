"""The Quart app factory: ``create_app(settings)`` builds everything; importing does nothing."""

from __future__ import annotations

import logging

from quart import Quart, has_request_context, jsonify, request
from werkzeug.exceptions import HTTPException

from .context import ValtContext
from .errors import ValtError
from .plugins import PluginHost
from .settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings, plugins: PluginHost | None = None) -> Quart:
    """Build the Valt app for ``settings``.

    Loads plugins (unless ``plugins`` is given) and builds every service; connecting to the
    database and checking its schema happens when serving starts.
    """
    from .api import api
    from .web import web

    app = Quart("valt_core", static_folder="web/static", template_folder="web/templates")
    ctx = ValtContext.build(settings, plugins)
    app.extensions["valt"] = ctx
    app.config.update(
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.register_blueprint(api)
    app.register_blueprint(web)
    for transport in ctx.transports.values():
        app.register_blueprint(transport.blueprint(ctx.media))

    @app.before_serving
    async def start() -> None:
        await ctx.db.check_schema()
        await ctx.storage.check()
        await ctx.media.start()

    @app.after_serving
    async def stop() -> None:
        await ctx.media.stop()
        await ctx.cameras.close()
        await ctx.db.dispose()

    @app.errorhandler(ValtError)
    async def valt_error(err: ValtError):
        if err.http_status >= 500:
            log.warning("%s: %s", type(err).__name__, err.message)
        return jsonify(err.to_json()), err.http_status

    @app.errorhandler(HTTPException)
    async def http_error(err: HTTPException):
        if has_request_context() and request.path.startswith("/api/"):
            return jsonify({"error": (err.name or "error").lower().replace(" ", "_"),
                            "message": err.description}), err.code
        return err

    @app.after_request
    async def security_headers(response):
        if not has_request_context():
            return response
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
