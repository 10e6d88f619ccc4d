"""Health, plugins and the OpenAPI document."""

from __future__ import annotations

from quart import current_app, jsonify

from .. import __version__
from ..context import get_context
from ..errors import StorageError, ValtError
from . import api
from .guard import public, require, responds
from .schemas import PluginOut


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
    pending = ctx.storage.pending()
    if pending is not None:
        storage_state["pending"] = {"objects": pending.objects, "bytes": pending.bytes}
    outage = ctx.storage.outage()
    if outage is not None:
        # Recording goes on into the spool, so Valt still works: 200, but said plainly.
        storage_state.update(status="spooling", message=f"the store does not take writes now ({outage}); "
                                                        "recordings wait in the local spool and go there when it does")
        answer = {"status": "degraded", "version": __version__, "database": db_state, "storage": storage_state}
        return jsonify(answer), 200 if ok else 503
    try:
        usage = await ctx.storage.usage()
        storage_state.update(free_bytes=usage.free_bytes, used_bytes=usage.used_bytes)
        # Space figures alone say nothing of a disk that refuses writes: try one.
        await ctx.storage.check()
        floor_mb = ctx.settings.media.min_free_mb
        if usage.free_bytes == 0:
            raise StorageError("storage is full (0 bytes free): recordings cannot be written")
        if usage.free_bytes is not None and usage.free_bytes < floor_mb * 2**20:
            raise StorageError(f"storage is nearly full: {usage.free_bytes / 2**20:.0f} MiB free, below the "
                               f"floor of {floor_mb:g} MiB; recordings stop and new ones are refused")
        storage_state["status"] = "ok"
    except ValtError as err:
        ok = False
        storage_state.update(status="error", message=err.message)
    answer = {"status": "ok" if ok else "degraded", "version": __version__,
              "database": db_state, "storage": storage_state}
    return jsonify(answer), 200 if ok else 503


@api.get("/plugins")
@require("system.view")
@responds(200, list[PluginOut], description="The loaded plugins.")
async def list_plugins():
    """Installed and loaded plugins: group, name, distribution, version."""
    return jsonify([p.as_dict() for p in get_context().plugins.plugins])


@api.get("/openapi.json")
@public
async def openapi():
    """The OpenAPI 3.1 description of this API."""
    from ..openapi import build_openapi

    return jsonify(build_openapi(current_app))
