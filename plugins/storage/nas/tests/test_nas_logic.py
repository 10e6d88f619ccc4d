"""Pure logic of the nas plugin: its settings and how failures are told apart (no server)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from pydantic import ValidationError
from smbprotocol.exceptions import SMBConnectionClosed
from valt_storage_nas.backend import NasStorage
from valt_storage_nas.client import FULL, READ_ONLY, UNREACHABLE, ShareError, share_error
from valt_storage_nas.config import NasStorageConfig

from valt_core.errors import NotFound

SMB = dict(server="nas01", share="rec", user="valt", password="s3cret-pw", spool_dir="/tmp/spool")


def test_smb_mode_needs_its_server_share_user_and_password():
    with pytest.raises(ValidationError, match="needs server, share, user, password"):
        NasStorageConfig(spool_dir="/tmp/spool")
    with pytest.raises(ValidationError, match="needs mount_path"):
        NasStorageConfig(mode="mount", spool_dir="/tmp/spool")
    with pytest.raises(ValidationError, match="Extra inputs"):
        NasStorageConfig(**SMB, pasword="typo")
    with pytest.raises(ValidationError, match="without '.' or '..'"):
        NasStorageConfig(**SMB, path="a/../b")
    assert NasStorageConfig(**SMB, path="\\valt\\site-a\\").path == "valt/site-a"


def test_the_password_is_in_no_repr_and_the_share_is_named_without_it():
    config = NasStorageConfig(**SMB, port=1445, path="valt")
    assert "s3cret-pw" not in repr(config) and "s3cret-pw" not in str(config)
    assert config.where() == "//nas01:1445/rec/valt"
    assert "s3cret-pw" not in repr(NasStorage(config))
    assert NasStorage.default_options(Path("/d")) == {"spool_dir": "/d/nas-spool"}


@pytest.mark.parametrize("err, kind, words", [
    (OSError(errno.ENOSPC, "No space left"), FULL, "is full"),
    (OSError(errno.EROFS, "Read-only file system"), READ_ONLY, "read-only"),
    (PermissionError(errno.EACCES, "Permission denied"), READ_ONLY, "read-only"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), UNREACHABLE, "cannot reach"),
    (ValueError("Failed to connect to 'nas01:445'"), UNREACHABLE, "cannot reach"),
    (SMBConnectionClosed("closed"), UNREACHABLE, "cannot reach"),
])
def test_failures_are_told_apart(err, kind, words):
    mapped = share_error(err, "copying rec/1.mp4", "//nas01/rec")
    assert isinstance(mapped, ShareError) and mapped.kind == kind and words in str(mapped)
    assert "//nas01/rec" in str(mapped) and "copying rec/1.mp4" in str(mapped)


def test_a_missing_file_is_not_found():
    assert isinstance(share_error(FileNotFoundError(errno.ENOENT, "gone"), "reading x", "//n/s"), NotFound)
