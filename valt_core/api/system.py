"""Health, plugins and the OpenAPI document."""

from __future__ import annotations

from quart import current_app, jsonify

from .. import __version__
from ..context import get_context
from ..errors import ValtError
from . import api
from .guard import public, require


@api.get("/health")
@public
async def health():
    """Whether Valt, its database and its storage work; 503 when one does not."""
    ctx = get_context()
    db_state: dict = {"backend": ctx.db.engine.dialect.name}
    storage_state: dict = {"driver": ctx.storage.name}
    ok = True
    try:
        await ctx.db.check_schema()
        db_state["status"] = "ok"
    except ValtError as err:
        ok = False
        db_state.update(status="error", message=err.message)
    try:
        usage = await ctx.storage.usage()
        storage_state.update(status="ok", free_bytes=usage.free_bytes, used_bytes=usage.used_bytes)
    except ValtError as err:
        ok = False
        storage_state.update(status="error", message=err.message)
    answer = {"status": "ok" if ok else "degraded", "version": __version__,
              "database": db_state, "storage": storage_state}
    return jsonify(answer), 200 if ok else 503


@api.get("/plugins")
@require("system.view")
async def list_plugins():
    """Installed and loaded plugins: group, name, distribution, version."""
    return jsonify([p.as_dict() for p in get_context().plugins.plugins])


@api.get("/openapi.json")
@public
async def openapi():
    """The OpenAPI 3.1 description of this API."""
    from ..openapi import build_openapi

    return jsonify(build_openapi(current_app))
