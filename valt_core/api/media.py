"""Serving media bytes with HTTP Range support (players seek with it).

One reading of the ``Range`` header for every media answer, as RFC 9110 allows: a single
satisfiable range (``a-b``, ``a-`` or the suffix ``-n``) answers 206; a range wholly past the end
answers 416; anything else (several ranges, another unit, a malformed header) is ignored and the
whole file answers 200.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import quote

from quart import Response, request
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from ..storage.base import StorageBackend

# Recordings are evidence: no shared cache may keep a copy.
NO_STORE = "private, no-store"
CHUNK = 256 * 1024

_ONE_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The ``[start, stop)`` a ``Range`` header asks of ``size`` bytes, or ``None`` for all of it.

    Raises :class:`~werkzeug.exceptions.RequestedRangeNotSatisfiable` (416, with
    ``Content-Range: bytes */size``) only for a well-formed single range that is past the end.
    """
    if not header:
        return None
    found = _ONE_RANGE.match(header)
    if found is None:
        return None  # several ranges, another unit, or malformed: ignored (RFC 9110, 14.2)
    first, last = found.groups()
    if not first and not last:
        return None
    if not first:  # a suffix: the last n bytes
        n = int(last)
        if n == 0:
            raise RequestedRangeNotSatisfiable(length=size)
        return max(0, size - n), size
    start = int(first)
    stop = size if not last else int(last) + 1
    if last and stop <= start:
        return None  # last before first: not a valid range, so ignored
    if start >= size:
        raise RequestedRangeNotSatisfiable(length=size)
    return start, min(stop, size)


def opens_playback(header: str | None) -> bool:
    """Whether a request with this ``Range`` starts a playback (no range, or one from byte 0)."""
    found = _ONE_RANGE.match(header or "")
    return found is None or found.group(1) == "0"


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII ``filename`` and the exact name in ``filename*`` (RFC 6266)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _ranged(size: int, read, mimetype: str, download_name: str | None) -> Response:
    bounds = byte_range(request.headers.get("Range"), size)
    start, stop = bounds if bounds is not None else (0, size)
    response = Response(read(start, stop), status=206 if bounds is not None else 200, mimetype=mimetype)
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Cache-Control"] = NO_STORE
    response.headers["Content-Length"] = str(stop - start)
    if bounds is not None:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    if download_name:
        response.headers["Content-Disposition"] = content_disposition(download_name)
    return response


async def send_local_file(path: Path, mimetype: str, download_name: str | None = None) -> Response:
    """A file on local disk (e.g. a built playback file), honouring a single byte Range."""
    size = path.stat().st_size

    async def read(start: int, stop: int) -> AsyncIterator[bytes]:
        with open(path, "rb") as f:
            f.seek(start)
            left = stop - start
            while left > 0:
                chunk = await asyncio.to_thread(f.read, min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk

    return _ranged(size, read, mimetype, download_name)


async def send_storage_object(storage: StorageBackend, key: str, mimetype: str,
                              download_name: str | None = None, presigned_s: int = 0) -> Response:
    """A stored object streamed from the storage backend, honouring a single byte Range.

    With ``presigned_s``, a backend that offers signed URLs (s3) is asked for one and the answer
    is a redirect to it: the store sends the bytes. Valt's checks (and audit) are done by then.
    """
    if presigned_s > 0:
        url = await storage.presigned_url(key, presigned_s, content_type=mimetype,
                                          content_disposition=content_disposition(download_name)
                                          if download_name else None)
        if url:
            response = Response(status=302)
            response.headers["Location"] = url
            response.headers["Cache-Control"] = NO_STORE
            return response
    size = await storage.size(key)

    async def read(start: int, stop: int) -> AsyncIterator[bytes]:
        async for chunk in storage.read(key, start, stop):
            yield chunk

    return _ranged(size, read, mimetype, download_name)


def send_stream(chunks: AsyncIterator[bytes], mimetype: str, download_name: str | None = None) -> Response:
    """Bytes made while they are sent (a zip being packed): no length, no ranges."""
    response = Response(chunks, mimetype=mimetype)
    response.headers["Cache-Control"] = NO_STORE
    if download_name:
        response.headers["Content-Disposition"] = content_disposition(download_name)
    return response
