"""The ``local`` storage backend: files under one directory, written through a temp name."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path
from typing import AsyncIterator, BinaryIO

from valt_core.errors import NotFound, StorageError
from valt_core.files import make_private_dir, open_private
from valt_core.storage import StorageBackend, StorageUsage, StorageWriter, check_key
from valt_core.storage.flush import FlushThreads

from .config import LocalStorageConfig

READ_CHUNK = 256 * 1024
PARTIAL_SUFFIX = ".partial"


def partial_path(final: Path) -> Path:
    """Where an unfinished write of ``final`` keeps its bytes."""
    return final.with_name(final.name + PARTIAL_SUFFIX)


class LocalFileWriter(StorageWriter):
    """Writes to ``<key>.partial`` and renames onto ``<key>`` when closed.

    Flushed bytes of an unfinished write stay on disk under the partial name, so a recovery
    after a crash can still index them.
    """

    def __init__(self, final: Path, fsync: bool, flusher: FlushThreads) -> None:
        self.final = final
        self._flusher = flusher
        self.partial = partial_path(final)
        self.fsync = fsync
        # 0600 whatever the umask: recordings are for Valt's user only.
        self._file: BinaryIO = os.fdopen(open_private(self.partial), "wb")
        self._size = 0

    async def write(self, data: bytes) -> None:
        """Append ``data`` (buffered; a thread does the system call only on flush)."""
        try:
            self._file.write(data)
        except OSError as err:
            raise StorageError(f"cannot write {self.final.name}: {err.strerror}") from err
        self._size += len(data)

    async def flush(self) -> None:
        """Push buffered bytes to the disk (and make them durable when configured)."""
        await self._flusher.flush(self._file, self.fsync, self.final.name)

    async def close(self) -> int:
        """Flush, close and move the file into place; returns its size."""
        await self.flush()
        self._file.close()
        os.replace(self.partial, self.final)
        return self._size

    async def abort(self) -> None:
        """Close and delete the partial file."""
        self._close_quietly()
        self.partial.unlink(missing_ok=True)

    async def abandon(self, keep_bytes: int) -> None:
        """Close the partial file and cut it to its first ``keep_bytes`` (flushed) bytes.

        The partial file stays for :meth:`LocalStorage.salvage`. Cutting frees space, so it
        works on a full disk, where the failed write may have left a torn piece at the end.
        """
        def run() -> None:
            self._close_quietly()
            try:
                os.truncate(self.partial, keep_bytes)
            except FileNotFoundError:
                pass
        await asyncio.to_thread(run)

    def _close_quietly(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass  # flushing the buffer failed (disk full): the descriptor is closed all the same


class LocalStorage(StorageBackend):
    """Stores each key as a file below ``path``."""

    name = "local"
    Config = LocalStorageConfig

    @classmethod
    def default_options(cls, data_dir: Path) -> dict:
        """The embedded default keeps media beside the database: ``DATA_DIR/media``."""
        return {"path": str(data_dir / "media")}

    def __init__(self, config: LocalStorageConfig) -> None:
        super().__init__(config)
        self.root = Path(config.path).resolve()
        self._flusher = FlushThreads.shared()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    async def open_writer(self, key: str) -> StorageWriter:
        """Start writing ``key``."""
        path = self._path(key)
        try:
            make_private_dir(path.parent)
            return LocalFileWriter(path, self.config.fsync, self._flusher)
        except OSError as err:
            raise StorageError(f"cannot create {key}: {err.strerror}") from err

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield the bytes of ``key`` in ``[start, end)``, read in a thread chunk by chunk."""
        path = self._path(key)
        try:
            f = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError as err:
            raise NotFound(f"no stored object {key}") from err
        try:
            f.seek(start)
            left = None if end is None else max(0, end - start)
            while left is None or left > 0:
                chunk = await asyncio.to_thread(f.read, READ_CHUNK if left is None else min(READ_CHUNK, left))
                if not chunk:
                    break
                if left is not None:
                    left -= len(chunk)
                yield chunk
        finally:
            f.close()

    async def size(self, key: str) -> int:
        """Size of ``key`` in bytes."""
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as err:
            raise NotFound(f"no stored object {key}") from err

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        self._path(key).unlink(missing_ok=True)

    def local_path(self, key: str) -> str | None:
        """The file holding ``key``."""
        return str(self._path(key))

    async def free_bytes(self) -> int | None:
        """Free space of the file system holding ``path``."""
        try:
            make_private_dir(self.root)
            return shutil.disk_usage(self.root).free
        except OSError as err:
            raise StorageError(f"storage directory {self.root} is not usable: {err.strerror}") from err

    async def unfinished(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` with a ``.partial`` file left behind."""
        base = self._path(prefix)
        if not base.exists():
            return []
        found = []
        for path in base.rglob("*" + PARTIAL_SUFFIX):
            rel = path.relative_to(self.root).as_posix()
            found.append(rel[: -len(PARTIAL_SUFFIX)])
        return sorted(found)

    async def salvage(self, key: str) -> int | None:
        """Rename ``<key>.partial`` onto ``<key>``; its size, or ``None`` if there is none."""
        final = self._path(key)
        partial = partial_path(final)
        if not partial.exists():
            return None
        os.replace(partial, final)
        return final.stat().st_size

    async def discard_unfinished(self, key: str) -> None:
        """Delete ``<key>.partial``."""
        partial_path(self._path(key)).unlink(missing_ok=True)

    async def usage(self) -> StorageUsage:
        """Bytes under ``path`` and the file system's free and total space."""
        return await asyncio.to_thread(self._usage)

    def _usage(self) -> StorageUsage:
        try:
            make_private_dir(self.root)
            disk = shutil.disk_usage(self.root)
        except OSError as err:
            raise StorageError(f"storage directory {self.root} is not usable: {err.strerror}") from err
        used = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                try:
                    used += os.stat(os.path.join(dirpath, name)).st_size
                except FileNotFoundError:
                    continue  # removed while we walked
        return StorageUsage(used_bytes=used, free_bytes=disk.free, total_bytes=disk.total)

    async def check(self) -> None:
        """The directory exists (or can be made) and is writable."""
        def probe() -> None:
            try:
                make_private_dir(self.root)
                test = self.root / f".write-test-{uuid.uuid4().hex[:8]}"
                try:
                    test.write_bytes(b"ok")
                finally:
                    test.unlink(missing_ok=True)  # also when the write failed (disk full)
            except OSError as err:
                raise StorageError(f"storage directory {self.root} is not writable: {err.strerror}") from err

        await asyncio.to_thread(probe)
