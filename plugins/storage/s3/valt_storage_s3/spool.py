"""The local spool: each object being written, or waiting for the store, as two files.

``<spool_dir>/<key>.spool`` holds the object's bytes as written; ``<key>.spool.json`` says how
far its upload has got (state, multipart upload id, the parts the store has). The bytes stay
until the store has the whole object, so reads of a key still waiting are served from here.
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

#: States of an entry: written by a writer still open (or never closed: unfinished), or closed
#: by its writer (or salvaged) and waiting to be completed in the store.
OPEN, CLOSED = "open", "closed"


@dataclass
class Part:
    """One part the store has of a multipart upload."""

    number: int
    etag: str
    sha256: str
    size: int


@dataclass
class SpoolEntry:
    """An object in the spool and the state of its upload."""

    key: str
    data_path: Path
    meta_path: Path
    seq: int
    state: str = OPEN
    #: Final size (closed entries) or bytes known to be on disk (open ones, after a flush).
    size: int = 0
    upload_id: str | None = None
    parts: list[Part] = field(default_factory=list)
    #: A legal hold asked for before the object reached the store, applied once it has.
    hold: bool = False
    #: Set by a writer's abandon(): bytes past ``size`` are not to be uploaded.
    abandoned: bool = False
    dropped: bool = False
    busy: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    #: A writer's close and an upload worker may save at the same moment: one at a time.
    save_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def sent(self) -> int:
        """Bytes of the object the store has (as parts of the multipart upload)."""
        return sum(p.size for p in self.parts)

    def restart_upload(self) -> None:
        """Forget the multipart upload: it is started again from the first byte."""
        self.upload_id = None
        self.parts = []

    def to_json(self) -> dict:
        """The entry as its ``.spool.json`` holds it."""
        return {"key": self.key, "seq": self.seq, "state": self.state, "size": self.size,
                "upload_id": self.upload_id, "hold": self.hold,
                "parts": [[p.number, p.etag, p.sha256, p.size] for p in self.parts]}

    def save(self) -> None:
        """Write the metadata file atomically (temp name, fsync, rename): blocking, call in a thread."""
        with self.save_lock:
            tmp = self.meta_path.with_name(f"{self.meta_path.name}.tmp-{uuid.uuid4().hex[:8]}")
            with os.fdopen(open_private(tmp), "w", encoding="utf-8") as f:
                json.dump(self.to_json(), f)
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
                break  # not empty (another object), or gone
            parent = parent.parent


class Spool:
    """Maps keys onto spool files under ``root`` and finds what an earlier process left."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def entry(self, key: str) -> SpoolEntry:
        """A new entry of ``key`` (files not made yet): ``key`` is a checked storage key."""
        base = self.root.joinpath(*key.split("/"))
        return SpoolEntry(key, base.with_name(base.name + DATA_SUFFIX), base.with_name(base.name + META_SUFFIX),
                          seq=time.time_ns())

    def create(self, entry: SpoolEntry):
        """Make the entry's files; returns the data file opened for appending (blocking)."""
        make_private_dir(entry.data_path.parent)
        entry.save()
        return os.fdopen(open_private(entry.data_path), "wb")

    def load(self) -> list[SpoolEntry]:
        """Every entry found on disk, oldest first (blocking). Open ones get their file's size."""
        found = []
        if not self.root.exists():
            return found
        for meta_path in self.root.rglob("*" + META_SUFFIX):
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # torn by a crash before its first rename: its data file has no state
            entry = self.entry(meta["key"])
            if entry.meta_path != meta_path or not entry.data_path.exists():
                continue
            entry.seq, entry.state, entry.size = meta["seq"], meta["state"], meta["size"]
            entry.upload_id, entry.hold = meta["upload_id"], meta.get("hold", False)
            entry.parts = [Part(*p) for p in meta["parts"]]
            on_disk = entry.data_path.stat().st_size
            if entry.state == OPEN or on_disk < entry.size:
                entry.size = on_disk
            if entry.sent > entry.size:
                entry.restart_upload()  # parts past what the disk kept: start from what is here
            found.append(entry)
        for stale in self.root.rglob("*" + META_SUFFIX + ".tmp-*"):
            stale.unlink(missing_ok=True)
        return sorted(found, key=lambda e: e.seq)


def read_range(path: Path, start: int, length: int) -> bytes:
    """``length`` bytes of ``path`` from ``start`` (blocking)."""
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(length)
