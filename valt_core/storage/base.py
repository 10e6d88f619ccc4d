"""The storage contract: where recordings and clips live (``valt.storage``).

Keys are relative, slash-separated paths such as ``recordings/12/cam-3/000001.mp4``; a backend
maps them onto files, a share or object keys. Writes stream, reads take byte ranges.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, ClassVar

from pydantic import BaseModel

from ..errors import ValidationFailed


@dataclass(frozen=True)
class StorageUsage:
    """Space figures of a backend, in bytes (``None`` when the backend cannot tell)."""

    used_bytes: int
    free_bytes: int | None
    total_bytes: int | None


@dataclass(frozen=True)
class PendingUploads:
    """What a backend that writes through a local spool has not handed to its store yet."""

    objects: int
    bytes: int


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise :class:`ValidationFailed`."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key:
        raise ValidationFailed(f"bad storage key {key!r}")
    return key


class StorageWriter(ABC):
    """A streaming write to one key; the object appears whole only after :meth:`close`."""

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Append ``data``."""

    @abstractmethod
    async def flush(self) -> None:
        """Make what was written so far durable (a crash keeps it)."""

    @abstractmethod
    async def close(self) -> int:
        """Finish the object and return its size in bytes."""

    @abstractmethod
    async def abort(self) -> None:
        """Drop the object being written."""

    async def abandon(self, keep_bytes: int) -> None:  # noqa: B027 - optional: the default keeps everything
        """End a write that failed, keeping its flushed bytes for :meth:`StorageBackend.salvage`.

        ``keep_bytes`` is how much was written and flushed before the failure: a backend that
        can, cuts the unfinished object to that length (a failed write may have left a torn
        piece after it). Nothing is deleted: media already flushed must outlive a later failure.
        The default leaves the unfinished object as it is; salvage cuts torn fragments anyway.
        """


class StorageBackend(ABC):
    """Base class of every storage backend."""

    name: ClassVar[str]
    """Short name used in settings (``local``, ``nas``, ``s3``)."""
    Config: ClassVar[type[BaseModel]]
    """Pydantic model of the backend's options (``[storage.options]``)."""

    def __init__(self, config: BaseModel) -> None:
        self.config = config

    @classmethod
    def default_options(cls, data_dir: Path) -> dict[str, Any]:
        """Options filled in when the site does not set them, below Valt's data directory
        (``local``'s ``path``: ``DATA_DIR/media``; a spool directory). None by default."""
        return {}

    async def aclose(self) -> None:  # noqa: B027 - optional: most backends hold nothing to close
        """Release what the backend holds (clients, worker tasks) when Valt stops."""

    async def set_legal_hold(self, key: str, on: bool) -> bool:
        """Hold (``on``) or release ``key`` in the store itself, so that not even a direct
        delete removes it (S3 Object Lock). ``True`` when the store did; ``False`` (the default)
        when it cannot, and Valt's own refusal to delete a held recording is the protection."""
        return False

    async def presigned_url(self, key: str, expires_s: int, content_type: str | None = None,
                            content_disposition: str | None = None) -> str | None:
        """A URL that reads ``key`` straight from the store for ``expires_s`` seconds, answered
        with these ``Content-Type`` and ``Content-Disposition`` headers when given; ``None``
        (the default) when the store has no such URLs, or not for this key now."""
        return None

    def presigned_origins(self) -> list[str]:
        """The origins (``scheme://host[:port]``) :meth:`presigned_url` URLs point at, so the
        pages' Content-Security-Policy can let the review player fetch from them; none by default."""
        return []

    def pending(self) -> PendingUploads | None:
        """For a backend writing through a spool: what waits for the store; ``None`` (the
        default) for one that writes its store directly."""
        return None

    def outage(self) -> str | None:
        """Why the store cannot be reached now while writes go on into a spool (said in the
        health answer), or ``None`` (the default) when it can, or the backend has no spool."""
        return None

    @abstractmethod
    async def open_writer(self, key: str) -> StorageWriter:
        """Start writing ``key`` (replacing any object of that key when closed)."""

    @abstractmethod
    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield the bytes of ``key`` from ``start`` up to, not including, ``end``."""

    @abstractmethod
    async def size(self, key: str) -> int:
        """Size of ``key`` in bytes; :class:`~valt_core.errors.NotFound` if absent."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key``; removing an absent key is not an error."""

    @abstractmethod
    async def usage(self) -> StorageUsage:
        """Bytes used by Valt's objects and, where known, free and total space."""

    def local_path(self, key: str) -> str | None:
        """A file-system path where ``key`` can be read directly, or ``None``.

        Backends on a local or mounted file system return one, so long reads (clips,
        playback) skip copying through Python; others keep the default.
        """
        return None

    async def free_bytes(self) -> int | None:
        """Free space in bytes, cheaply (checked every few seconds while recording)."""
        return (await self.usage()).free_bytes

    @abstractmethod
    async def unfinished(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` whose writes were never closed (e.g. the server was killed)."""

    @abstractmethod
    async def salvage(self, key: str) -> int | None:
        """Make the flushed bytes of an unfinished write of ``key`` the object ``key``.

        Returns the object's size, or ``None`` when nothing of ``key`` was left unfinished.
        """

    @abstractmethod
    async def discard_unfinished(self, key: str) -> None:
        """Drop what an unfinished write of ``key`` left behind."""

    async def check(self) -> None:
        """Raise :class:`~valt_core.errors.StorageError` if the backend is not usable now."""
        await self.usage()
