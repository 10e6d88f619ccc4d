"""The s3 plugin's spool entries: the core's, plus the state of a multipart upload.

The spool itself (files, workers, back-off) is the core's :mod:`valt_core.storage.spool`; an
entry here also remembers the multipart upload id, the parts the store has, and a legal hold
asked for before the object reached the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from valt_core.storage.spool import SpoolEntry


@dataclass
class Part:
    """One part the store has of a multipart upload."""

    number: int
    etag: str
    sha256: str
    size: int


@dataclass
class S3SpoolEntry(SpoolEntry):
    """An object in the spool and the state of its multipart upload."""

    upload_id: str | None = None
    parts: list[Part] = field(default_factory=list)
    #: A legal hold asked for before the object reached the store, applied once it has.
    hold: bool = False

    @property
    def sent(self) -> int:
        """Bytes of the object the store has (as parts of the multipart upload)."""
        return sum(p.size for p in self.parts)

    def restart_upload(self) -> None:
        """Forget the multipart upload: it is started again from the first byte."""
        self.upload_id = None
        self.parts = []

    def truncated(self, size: int) -> None:
        """Parts past the spool file's new end cannot be kept: the upload starts again."""
        if self.sent > size:
            self.restart_upload()

    def to_json(self) -> dict[str, Any]:
        """The core's fields plus the upload id, the parts and the hold."""
        return {**super().to_json(), "upload_id": self.upload_id, "hold": self.hold,
                "parts": [[p.number, p.etag, p.sha256, p.size] for p in self.parts]}

    def restore(self, meta: dict[str, Any]) -> None:
        """Take the upload's state back from a loaded ``.spool.json``."""
        self.upload_id, self.hold = meta.get("upload_id"), meta.get("hold", False)
        self.parts = [Part(*p) for p in meta.get("parts", [])]
