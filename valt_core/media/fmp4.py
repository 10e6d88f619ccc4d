"""Just enough ISO-BMFF (MP4) box reading to salvage fragmented MP4 after a crash."""

from __future__ import annotations

import struct
from typing import Iterator


def iter_boxes(data: bytes | memoryview) -> Iterator[tuple[bytes, int, int]]:
    """Yield ``(type, offset, size)`` of each complete top-level box; stops at a torn one."""
    pos, end = 0, len(data)
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:  # box runs to the end of the file: only complete if the file is
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos, size
        pos += size


def playable_length(data: bytes | memoryview) -> tuple[int, int]:
    """Length of the longest playable prefix of a fragmented MP4 and its fragment count.

    Playable means: the header boxes (``ftyp``, ``moov``) and then whole ``moof`` + ``mdat``
    pairs. A fragment torn by a crash, and anything after it, is left out.
    """
    good = 0
    fragments = 0
    have_moov = False
    pending_moof = False
    for kind, offset, size in iter_boxes(data):
        if kind == b"moov":
            have_moov = True
            good = offset + size
        elif kind == b"moof":
            pending_moof = True
        elif kind == b"mdat" and pending_moof:
            pending_moof = False
            fragments += 1
            good = offset + size
        elif kind in (b"ftyp", b"free", b"styp", b"sidx") and not pending_moof:
            if not have_moov:
                good = offset + size
        elif kind == b"mfra" and not pending_moof:
            good = offset + size
    if not have_moov:
        return 0, 0
    return good, fragments
