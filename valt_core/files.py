"""Files only Valt's own user may read: the data directory 0700, Valt's files 0600.

The database holds camera passwords, password hashes and the audit log; recordings are what a
site protects most. Modes are set explicitly, so they hold whatever the process umask is.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path | str) -> Path:
    """Create ``path`` and any missing parents with mode 0700; existing ones are left alone."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by another task or process
        os.chmod(directory, DIR_MODE)  # mkdir's mode is narrowed by the umask, never widened
    return path


def open_private(path: Path | str, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """``os.open`` of a file that is (made) mode 0600; returns the descriptor."""
    fd = os.open(path, flags | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # also an existing file, and whatever the umask
    except BaseException:
        os.close(fd)
        raise
    return fd


def tighten(path: Path | str) -> None:
    """Make an existing file mode 0600 (files of older versions were made 0644)."""
    try:
        os.chmod(path, FILE_MODE)
    except FileNotFoundError:
        pass
