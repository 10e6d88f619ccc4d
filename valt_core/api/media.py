"""Serving media bytes with HTTP Range support (players seek with it)."""

from __future__ import annotations

from pathlib import Path

from quart import Response, request, send_file

from ..storage.base import StorageBackend

# Recordings are evidence: no shared cache may keep a copy.
NO_STORE = "private, no-store"


async def send_local_file(path: Path, mimetype: str, download_name: str | None = None) -> Response:
    """A file on local disk (e.g. a built playback file), honouring Range requests."""
    response = await send_file(path, mimetype=mimetype, conditional=True,
                               as_attachment=download_name is not None, attachment_filename=download_name)
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Cache-Control"] = NO_STORE
    return response


async def send_storage_object(storage: StorageBackend, key: str, mimetype: str,
                              download_name: str | None = None) -> Response:
    """A stored object streamed from the storage backend, honouring a single byte Range."""
    size = await storage.size(key)
    start, stop, status = 0, size, 200
    wanted = request.range
    if wanted is not None and wanted.units == "bytes" and len(wanted.ranges) == 1:
        bounds = wanted.range_for_length(size)
        if bounds is None:
            return Response("", status=416, headers={"Content-Range": f"bytes */{size}"})
        start, stop, status = bounds[0], bounds[1], 206

    async def body():
        async for chunk in storage.read(key, start, stop):
            yield chunk

    response = Response(body(), status=status, mimetype=mimetype)
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Cache-Control"] = NO_STORE
    response.headers["Content-Length"] = str(stop - start)
    if status == 206:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    if download_name:
        response.headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
    return response
