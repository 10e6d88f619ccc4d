"""Talking to the share: SMB through smbclient, or a mounted path, behind one blocking interface.

No Valt framework here beyond the error classes. Every method blocks; the backend runs them in
its own threads under a timeout. Failures become a :class:`ShareError` of one of four kinds a
person can act on (unreachable, wrong credentials, read-only, full) or a plain refusal, worded
from the SMB status or the errno only: never from a request, never with the password.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO

from smbprotocol import exceptions as smbexc
from smbprotocol.header import NtStatus

from valt_core.errors import NotFound, StorageError
from valt_core.files import make_private_dir, open_private

from .config import NasStorageConfig

COPY_CHUNK = 1024 * 1024
PARTIAL_SUFFIX = ".partial"

UNREACHABLE, CREDENTIALS, READ_ONLY, FULL = "unreachable", "credentials", "read-only", "full"


class ShareError(StorageError):
    """The share failed; ``kind`` says how (one of the four above, or ``None`` for another refusal)."""

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind


def share_error(err: BaseException, doing: str, where: str) -> StorageError:
    """Our error for a failure of the SMB client or the file system while ``doing``."""
    if isinstance(err, StorageError):
        return err
    if isinstance(err, (smbexc.LogonFailure, smbexc.WrongPassword, smbexc.PasswordExpired)):
        return ShareError(f"nas: wrong credentials: {where} refused the user or password "
                          f"({type(err).__name__}) while {doing}", CREDENTIALS)
    if isinstance(err, smbexc.DiskFull) or getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return ShareError(f"nas: the share {where} is full (no space left) while {doing}", FULL)
    status = getattr(err, "ntstatus", None) or getattr(err, "status", None)
    if status in (NtStatus.STATUS_DISK_FULL,):
        return ShareError(f"nas: the share {where} is full (no space left) while {doing}", FULL)
    if isinstance(err, smbexc.AccessDenied) or status == NtStatus.STATUS_ACCESS_DENIED \
            or getattr(err, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ShareError(f"nas: the share {where} is read-only for Valt (access denied while {doing}): "
                          "give the user write access to the folder", READ_ONLY)
    if isinstance(err, FileNotFoundError) or getattr(err, "errno", None) == errno.ENOENT:
        return NotFound(f"no stored object: {doing}")
    if isinstance(err, (smbexc.SMBConnectionClosed, ConnectionError, TimeoutError, ValueError,
                        smbexc.SMBException, OSError)):
        # smbclient says "Failed to connect" with a ValueError; a dead session with SMB errors.
        return ShareError(f"nas: cannot reach the share {where} ({type(err).__name__}) while {doing}",
                          UNREACHABLE)
    return StorageError(f"nas: {type(err).__name__} while {doing}")


class Share(ABC):
    """The blocking operations the backend needs of the share; keys are checked storage keys.

    Two kinds implement it: an SMB share and a mounted path."""

    def __init__(self, config: NasStorageConfig) -> None:
        self.config = config

    @abstractmethod
    def put(self, key: str, source: Path, size: int) -> None:
        """Copy ``size`` bytes of ``source`` to ``key``: to ``key.partial`` first, then renamed."""

    @abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """``key`` opened for reading (a file object with ``seek``, ``read`` and ``close``)."""

    @abstractmethod
    def size(self, key: str) -> int:
        """Size of ``key`` in bytes."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` (absent is fine)."""

    @abstractmethod
    def space(self) -> tuple[int | None, int | None]:
        """Free and total bytes of the share, ``None`` where it cannot tell."""

    @abstractmethod
    def used(self) -> int:
        """Bytes of every file below the folder."""

    @abstractmethod
    def probe(self) -> None:
        """Write and remove a small file: the share answers, lets Valt in and takes writes."""

    def close(self) -> None:  # noqa: B027 - optional: a mounted path holds no connection
        """Drop connections."""


class MountedShare(Share):
    """A share the operating system mounted at ``mount_path``."""

    def __init__(self, config: NasStorageConfig) -> None:
        super().__init__(config)
        self.mount = Path(config.mount_path).resolve()
        self.root = self.mount.joinpath(*config.path.split("/")) if config.path else self.mount

    def _mounted(self) -> None:
        # An unmounted mount point is a local directory: writing there would fill the local disk.
        if not self.config.allow_unmounted and not os.path.ismount(self.mount):
            raise ShareError(f"nas: {self.mount} is not a mount point (the NAS is not mounted); "
                             "set allow_unmounted only if that is intended", UNREACHABLE)

    def _file(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def put(self, key: str, source: Path, size: int) -> None:
        self._mounted()
        final = self._file(key)
        partial = final.with_name(final.name + PARTIAL_SUFFIX)
        make_private_dir(final.parent)
        try:
            with open(source, "rb") as src, os.fdopen(open_private(partial), "wb") as dst:
                left = size
                while left > 0:
                    chunk = src.read(min(COPY_CHUNK, left))
                    if not chunk:
                        raise StorageError(f"nas: the spool of {key} is shorter than its size")
                    dst.write(chunk)
                    left -= len(chunk)
                dst.flush()
                os.fsync(dst.fileno())
        except BaseException:
            partial.unlink(missing_ok=True)  # a torn copy must not keep filling the share
            raise
        os.replace(partial, final)

    def open_read(self, key: str) -> BinaryIO:
        self._mounted()
        return open(self._file(key), "rb")

    def size(self, key: str) -> int:
        self._mounted()
        return self._file(key).stat().st_size

    def delete(self, key: str) -> None:
        self._mounted()
        self._file(key).unlink(missing_ok=True)

    def space(self) -> tuple[int | None, int | None]:
        self._mounted()
        disk = shutil.disk_usage(self.mount)
        return disk.free, disk.total

    def used(self) -> int:
        self._mounted()
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                try:
                    total += os.stat(os.path.join(dirpath, name)).st_size
                except FileNotFoundError:
                    continue
        return total

    def probe(self) -> None:
        self._mounted()
        make_private_dir(self.root)
        test = self.root / f".valt-write-test-{uuid.uuid4().hex[:8]}"
        try:
            test.write_bytes(b"ok")
        finally:
            test.unlink(missing_ok=True)


class SmbShare(Share):
    """A share reached over SMB 3 with smbclient; signing required, encryption on request.

    The connection cache is this object's own (not smbclient's global one), so two backends
    never share a session, and :meth:`close` drops exactly ours.
    """

    def __init__(self, config: NasStorageConfig) -> None:
        super().__init__(config)
        import smbclient

        self._smb = smbclient
        self._cache: dict = {}
        self._registered = False
        #: Folders known to exist: a segment's four parents are made once, not before every copy.
        self._folders: set[str] = set()
        self.unc = f"\\\\{config.server}\\{config.share}" + (
            "\\" + config.path.replace("/", "\\") if config.path else "")

    def _session(self) -> None:
        if self._registered:
            return
        cfg = self.config
        user = f"{cfg.domain}\\{cfg.user}" if cfg.domain else cfg.user
        self._smb.register_session(cfg.server, username=user, password=cfg.password.get_secret_value(),
                                   port=cfg.port, encrypt=cfg.encrypt or None, require_signing=True,
                                   connection_timeout=max(1, int(cfg.timeout_s)), connection_cache=self._cache)
        self._registered = True

    def _kw(self) -> dict:
        self._session()
        return {"port": self.config.port, "connection_cache": self._cache}

    def _path(self, key: str = "") -> str:
        return self.unc + ("\\" + key.replace("/", "\\") if key else "")

    def _makedirs(self, key: str) -> None:
        parts = key.split("/")[:-1]
        if self.config.path:
            parts = self.config.path.split("/") + parts
            base = f"\\\\{self.config.server}\\{self.config.share}"
        else:
            base = self.unc
        for i in range(1, len(parts) + 1):
            folder = base + "\\" + "\\".join(parts[:i])
            if folder in self._folders:
                continue
            try:
                self._smb.mkdir(folder, **self._kw())
            except OSError as err:
                if getattr(err, "errno", None) != errno.EEXIST and not isinstance(err, FileExistsError):
                    raise
            self._folders.add(folder)

    def put(self, key: str, source: Path, size: int) -> None:
        kw = self._kw()
        final, partial = self._path(key), self._path(key) + PARTIAL_SUFFIX
        self._makedirs(key)
        try:
            with open(source, "rb") as src, self._smb.open_file(partial, "wb", **kw) as dst:
                left = size
                while left > 0:
                    chunk = src.read(min(COPY_CHUNK, left))
                    if not chunk:
                        raise StorageError(f"nas: the spool of {key} is shorter than its size")
                    dst.write(chunk)
                    left -= len(chunk)
                dst.flush()
                # The buffered file's flush only writes; the raw file's sends SMB2 FLUSH, which
                # makes the server commit the file to its disk (Samba fsyncs, "strict sync"):
                # the spool drops its copy after this, so "on the share" must mean durable.
                dst.raw.flush()
        except BaseException:
            # A folder removed meanwhile (a deleted recording) is made again on the retry.
            self._folders.clear()
            # A torn copy (disk full) must not keep filling the share; the spool still has it all.
            try:
                self._smb.remove(partial, **kw)
            except Exception:  # noqa: BLE001 - the server may be gone: the next copy replaces it
                pass
            raise
        self._smb.replace(partial, final, **kw)
        got = self._smb.stat(final, **kw).st_size
        if got != size:
            raise StorageError(f"nas: the share holds {got} bytes of {key}, not {size}: copying it again")

    def open_read(self, key: str) -> BinaryIO:
        return self._smb.open_file(self._path(key), "rb", **self._kw())

    def size(self, key: str) -> int:
        return self._smb.stat(self._path(key), **self._kw()).st_size

    def delete(self, key: str) -> None:
        try:
            self._smb.remove(self._path(key), **self._kw())
        except FileNotFoundError:
            pass
        except OSError as err:
            if getattr(err, "errno", None) != errno.ENOENT:
                raise

    def space(self) -> tuple[int | None, int | None]:
        top = f"\\\\{self.config.server}\\{self.config.share}"
        answer = self._smb.stat_volume(top, **self._kw())
        return answer.caller_available_size, answer.total_size

    def used(self) -> int:
        # The listing carries each file's size (smb_info): one request per folder, not per file.
        total, folders = 0, [self.unc]
        while folders:
            folder = folders.pop()
            try:
                entries = list(self._smb.scandir(folder, **self._kw()))
            except FileNotFoundError:
                continue  # not made yet (nothing written), or removed while we walked
            for entry in entries:
                if entry.is_dir():
                    folders.append(folder + "\\" + entry.name)
                else:
                    total += entry.smb_info.end_of_file
        return total

    def probe(self) -> None:
        kw = self._kw()
        self._makedirs(".probe")  # makes the configured folder, if any
        test = self._path(f".valt-write-test-{uuid.uuid4().hex[:8]}")
        try:
            with self._smb.open_file(test, "wb", **kw) as f:
                f.write(b"ok")
        finally:
            try:
                self._smb.remove(test, **kw)
            except OSError:
                pass  # never made (read-only, full): nothing to remove

    def close(self) -> None:
        self._folders.clear()
        cache, self._cache, self._registered = self._cache, {}, False
        try:
            self._smb.reset_connection_cache(connection_cache=cache)
        except Exception:  # noqa: BLE001 - a dead connection is gone either way
            pass

    def forget(self) -> None:
        """After a call timed out: a new session next time (the old one is closed in the background)."""
        self.close()
