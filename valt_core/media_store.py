"""The recordings as the app server reads them: its own store, or the media server that holds them.

With shared storage (one machine, a NAS or a bucket every server uses) the app server reads each
segment from the store itself. A media server with storage of its own (its local disk) is asked
over the bus instead: :class:`~valt_core.bus.messages.ReadObject` in chunks, so playback, clips
and ``valt verify`` work the same either way, and no segment is held in memory whole. Which
server to ask is in the segment's key (:func:`~valt_core.media.recorder.segment_key` puts the
name of every server but ``local`` in it); nothing is configured. Everything that writes
(clips, playback files) goes to the app server's own store.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, AsyncIterator

from .bus.messages import READ_CHUNK_MAX, DeleteObject, ObjectStat, ReadObject, StatObject
from .errors import Conflict, NotFound
from .storage.base import StorageBackend

if TYPE_CHECKING:
    from .media_control import MediaControl

_SERVER_IN_KEY = re.compile(r"recordings/\d+/track-\d+/\d+-([A-Za-z0-9_]+)\.(?:mp4|mov)")


def segment_server(key: str) -> str:
    """The media server that wrote the segment ``key`` (``local`` when its key names none)."""
    m = _SERVER_IN_KEY.fullmatch(key)
    return m.group(1) if m else "local"


class RecordingStore:
    """The app server's storage backend, reading segments it lacks from the media server that wrote them.

    It offers what :class:`~valt_core.storage.base.StorageBackend` offers; everything but reading
    (``read``, ``size``, ``local_path``) is the app server's own store; :meth:`delete_everywhere`
    also deletes on the media server that wrote a segment.
    """

    def __init__(self, own: StorageBackend, control: "MediaControl") -> None:
        self.own = own
        self.control = control

    def __getattr__(self, name: str) -> Any:
        # Writing, deleting, usage, salvage: the app server's own store.
        return getattr(self.own, name)

    def _remote(self, key: str) -> str | None:
        """The media server to ask for ``key``, or ``None`` when it is this process's own."""
        server = segment_server(key)
        engine = self.control.engine
        return None if server == "local" or (engine is not None and server == engine.name) else server

    async def set_legal_hold(self, key: str, on: bool) -> bool:
        """Hold or release ``key`` in the own store; a segment kept on another media server's
        own disk is held by Valt's refusal to delete it (``False``)."""
        if self._remote(key) is not None:
            return False
        return await self.own.set_legal_hold(key, on)

    async def presigned_url(self, key: str, expires_s: int, content_type: str | None = None,
                            content_disposition: str | None = None) -> str | None:
        """A signed URL of ``key`` in the own store; ``None`` for a segment on another media
        server's own disk (read through the bus instead)."""
        if self._remote(key) is not None:
            try:
                await self.own.size(key)  # a store shared with that server has it too
            except NotFound:
                return None
        return await self.own.presigned_url(key, expires_s, content_type, content_disposition)

    def local_path(self, key: str) -> str | None:
        """A path of the own store holding ``key``, only when the file is there."""
        path = self.own.local_path(key)
        if path is None or self._remote(key) is None or os.path.exists(path):
            return path
        return None

    async def size(self, key: str) -> int:
        """Size of ``key``: from the own store, else from the media server that wrote it."""
        try:
            return await self.own.size(key)
        except NotFound:
            server = self._remote(key)
            if server is None:
                raise
        answer = await self.control.command(StatObject(key=key), server)
        assert isinstance(answer, ObjectStat)
        return answer.size

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes of ``key`` in ``[start, end)``: from the own store, else in chunks over the bus."""
        server = self._remote(key)
        if server is None or await self._own_has(key):
            async for chunk in self.own.read(key, start, end):
                yield chunk
            return
        offset = start
        while end is None or offset < end:
            length = READ_CHUNK_MAX if end is None else min(READ_CHUNK_MAX, end - offset)
            try:
                chunk = await self.control.command(ReadObject(key=key, offset=offset, length=length), server)
            except Conflict as err:
                raise Conflict(f"segment {key} is on media server {server}, which does not answer: "
                               f"{err.message}") from err
            assert isinstance(chunk, bytes)
            if not chunk:
                return
            yield chunk
            offset += len(chunk)
            if len(chunk) < length:
                return

    async def delete_everywhere(self, key: str) -> None:
        """Delete ``key`` from the own store and, for a segment another media server wrote, from its store.

        For deleting a recording. (``delete`` stays the own store's: salvage deletes a dead
        server's unfinished object in the shared store, and must not ask the dead server.)
        Absent is no error (a deletion may be repeated). The media server must answer: a
        segment left on a server that is down is not reported as deleted.
        """
        try:
            await self.own.delete(key)
        except (NotFound, FileNotFoundError):
            pass
        server = self._remote(key)
        if server is not None:
            try:
                await self.control.command(DeleteObject(key=key), server)
            except Conflict as err:
                raise Conflict(f"segment {key} is on media server {server}, which does not answer: "
                               f"{err.message}") from err

    async def _own_has(self, key: str) -> bool:
        try:
            await self.own.size(key)
        except NotFound:
            return False
        return True
