"""The local spool in front of the share: each object being written, or waiting, as two files.

``<spool_dir>/<key>.spool`` holds the object's bytes as written; ``<key>.spool.json`` its key,
order and state. The bytes stay until the share has the whole file, so reads of a key still
waiting are served from here, and a process killed mid-write leaves what it flushed.

The s3 plugin has a spool of the same shape with multipart state in it; a plugin may not import
another plugin, so this is the NAS's own, without parts (a file goes to the share whole).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from valt_core.files import make_private_dir, open_private

DATA_SUFFIX = ".spool"
META_SUFFIX = ".spool.json"

#: Written by a writer still open (or never closed: unfinished), or closed and waiting for the share.
OPEN, CLOSED = "open", "closed"


@dataclass
class SpoolEntry:
    """An object in the spool."""

    key: str
    data_path: Path
    meta_path: Path
    seq: int
    state: str = OPEN
    #: Final size (closed entries) or bytes known to be on disk (open ones, after a flush).
    size: int = 0
    dropped: bool = False
    busy: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    save_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def save(self) -> None:
        """Write the metadata file atomically (temp name, fsync, rename): blocking."""
        with self.save_lock:
            tmp = self.meta_path.with_name(f"{self.meta_path.name}.tmp-{uuid.uuid4().hex[:8]}")
            with os.fdopen(open_private(tmp), "w", encoding="utf-8") as f:
                json.dump({"key": self.key, "seq": self.seq, "state": self.state, "size": self.size}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.meta_path)

    def remove(self, root: Path) -> None:
        """Delete both files and the directories they leave empty (up to ``root``): blocking."""
        for path in (self.data_path, self.meta_path):
            path.unlink(missing_ok=True)
        parent = self.data_path.parent
        while parent != root and root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


class Spool:
    """Maps keys onto spool files under ``root`` and finds what an earlier process left."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def entry(self, key: str) -> SpoolEntry:
        """A new entry of the checked storage key ``key`` (files not made yet)."""
        base = self.root.joinpath(*key.split("/"))
        return SpoolEntry(key, base.with_name(base.name + DATA_SUFFIX), base.with_name(base.name + META_SUFFIX),
                          seq=time.time_ns())

    def create(self, entry: SpoolEntry):
        """Make the entry's files; returns the data file opened for writing (blocking)."""
        make_private_dir(entry.data_path.parent)
        entry.save()
        return os.fdopen(open_private(entry.data_path), "wb")

    def load(self) -> list[SpoolEntry]:
        """Every entry found on disk, oldest first (blocking); open ones get their file's size."""
        found = []
        if not self.root.exists():
            return found
        for meta_path in self.root.rglob("*" + META_SUFFIX):
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # torn before its first rename
            entry = self.entry(meta["key"])
            if entry.meta_path != meta_path or not entry.data_path.exists():
                continue
            entry.seq, entry.state, entry.size = meta["seq"], meta["state"], meta["size"]
            on_disk = entry.data_path.stat().st_size
            if entry.state == OPEN or on_disk < entry.size:
                entry.size = on_disk
            found.append(entry)
        for stale in self.root.rglob("*" + META_SUFFIX + ".tmp-*"):
            stale.unlink(missing_ok=True)
        return sorted(found, key=lambda e: e.seq)
