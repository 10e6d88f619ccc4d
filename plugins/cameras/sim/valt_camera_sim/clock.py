"""The burned-in wall clock: drawing it into a picture, and reading it back from a decoded one.

Reading it back lets tests and benchmarks measure what a viewer sees (the picture's time
against the wall clock) without trusting any timestamp Valt itself wrote.
"""

from __future__ import annotations

import numpy as np

# 5x7 glyphs, one string per row, '#' = lit.
_GLYPHS = {
    "0": [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
    "1": ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
    "2": [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
    "3": ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."],
    "4": ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
    "5": ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
    "6": ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."],
    "7": ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
    "8": [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],
    "9": [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."],
    ":": [".....", "..#..", "..#..", ".....", "..#..", "..#..", "....."],
    ".": [".....", ".....", ".....", ".....", ".....", ".##..", ".##.."],
}
GLYPHS = {ch: np.array([[c == "#" for c in row] for row in rows], dtype=bool) for ch, rows in _GLYPHS.items()}
TEXT_LEN = len("HH:MM:SS.mmm")
CELL_W, CELL_H = 6, 7  # glyph plus one column of spacing
MARGIN = 8


def layout(width: int, height: int) -> tuple[int, int, int]:
    """(scale, x, y) of the clock text for a picture size: top-left, large enough to survive
    compression."""
    scale = max(2, min(height // 50, int(width * 0.6) // (TEXT_LEN * CELL_W)))
    return scale, MARGIN + scale, MARGIN + scale


def format_clock(epoch_s: float, utc_offset_s: int = 0) -> str:
    """``HH:MM:SS.mmm`` of ``epoch_s`` shifted by ``utc_offset_s``."""
    # Round once, on whole milliseconds: rounding the fraction alone turned 12.9996 s into
    # "12.000" (a second early) instead of "13.000".
    total_ms = round((epoch_s + utc_offset_s) * 1000)
    ms = total_ms % 1000
    secs = total_ms // 1000 % 86400
    return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}.{ms:03d}"


def draw_clock(y_plane: np.ndarray, text: str) -> None:
    """Draw ``text`` white on a black box into the luma plane, in place."""
    h, w = y_plane.shape
    scale, x0, y0 = layout(w, h)
    box_w = (len(text) * CELL_W + 1) * scale
    box_h = (CELL_H + 2) * scale
    y_plane[y0 - scale: y0 - scale + box_h, x0 - scale: x0 - scale + box_w] = 16
    for i, ch in enumerate(text):
        glyph = np.kron(GLYPHS[ch], np.ones((scale, scale), dtype=bool))
        x = x0 + i * CELL_W * scale
        region = y_plane[y0: y0 + CELL_H * scale, x: x + 5 * scale]
        region[glyph] = 235


def read_clock(y_plane: np.ndarray, length: int = TEXT_LEN) -> str | None:
    """Read the clock text back from a decoded luma plane; ``None`` if it does not match glyphs."""
    h, w = y_plane.shape
    scale, x0, y0 = layout(w, h)
    centers_y = y0 + np.arange(CELL_H) * scale + scale // 2
    out = []
    for i in range(length):
        x = x0 + i * CELL_W * scale
        centers_x = x + np.arange(5) * scale + scale // 2
        if centers_x[-1] >= w or centers_y[-1] >= h:
            return None
        cell = y_plane[np.ix_(centers_y, centers_x)] > 128
        best, dist = min(((ch, int((g != cell).sum())) for ch, g in GLYPHS.items()), key=lambda t: t[1])
        if dist > 3:
            return None
        out.append(best)
    return "".join(out)


def clock_seconds(text: str) -> float:
    """Seconds since midnight of a clock text ``HH:MM:SS.mmm``."""
    hh, mm, rest = text.split(":")
    return int(hh) * 3600 + int(mm) * 60 + float(rest)
