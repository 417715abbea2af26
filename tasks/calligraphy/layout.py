"""Compose single glyphs into a calligraphy work (an RGB image).

Glyphs are float arrays in [0, 1] with ink = 1 (uint8 0..255 also accepted),
all of the same size. Layouts:

* ``vertical`` (traditional): columns written top to bottom, columns read
  right to left, so the first character sits at the top right;
* ``horizontal``: rows written left to right, rows top to bottom.

A pixel is ``paper + (ink - paper) * alpha`` rounded to uint8, where alpha is
the glyph value; :func:`paint_cell` is the one place this is done, so that the
writing animation in :mod:`tasks.calligraphy.video` ends on exactly the image
that :func:`compose_work` makes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["PAPER", "INK", "LAYOUTS", "WorkLayout", "plan_layout", "blank_canvas", "paint_cell", "compose_work"]

PAPER = (242, 233, 212)  # warm rice-paper tone
INK = (24, 22, 20)  # near-black ink
LAYOUTS = ("vertical", "horizontal")

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class WorkLayout:
    """Canvas size and per-character cell boxes (x0, y0, x1, y1), reading order."""

    width: int
    height: int
    boxes: list[Box]


def _as_alpha(glyph: np.ndarray) -> np.ndarray:
    g = np.asarray(glyph)
    if g.ndim == 3 and g.shape[0] == 1:
        g = g[0]
    if g.ndim != 2:
        raise ValueError(f"glyph must be (H, W), got shape {g.shape}")
    if g.dtype == np.uint8:
        return g.astype(np.float32) / 255.0
    return np.clip(g.astype(np.float32), 0.0, 1.0)


def plan_layout(
    n: int,
    cell: tuple[int, int],
    layout: str = "vertical",
    chars_per_line: int | None = None,
    gap: int | None = None,
    line_gap: int | None = None,
    margin: int | None = None,
) -> WorkLayout:
    """Place ``n`` cells of size ``cell`` = (h, w).

    ``chars_per_line``: characters per column (vertical) or per row
    (horizontal); default ``ceil(sqrt(n))``. ``gap``: space between characters
    in a line (default h // 8); ``line_gap``: between lines (default 2 * gap);
    ``margin``: around the work (default h // 2).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use one of {LAYOUTS}")
    if n < 1:
        raise ValueError("need at least one character")
    h, w = int(cell[0]), int(cell[1])
    per = int(chars_per_line) if chars_per_line else max(1, math.ceil(math.sqrt(n)))
    if per < 1:
        raise ValueError("chars_per_line must be >= 1")
    gap = max(0, h // 8) if gap is None else int(gap)
    line_gap = 2 * gap if line_gap is None else int(line_gap)
    margin = h // 2 if margin is None else int(margin)
    lines = math.ceil(n / per)
    in_line = min(per, n)
    boxes: list[Box] = []
    if layout == "vertical":
        width = 2 * margin + lines * w + (lines - 1) * line_gap
        height = 2 * margin + in_line * h + (in_line - 1) * gap
        for k in range(n):
            col, row = divmod(k, per)
            x1 = width - margin - col * (w + line_gap)
            y0 = margin + row * (h + gap)
            boxes.append((x1 - w, y0, x1, y0 + h))
    else:
        width = 2 * margin + in_line * w + (in_line - 1) * gap
        height = 2 * margin + lines * h + (lines - 1) * line_gap
        for k in range(n):
            row, col = divmod(k, per)
            x0 = margin + col * (w + gap)
            y0 = margin + row * (h + line_gap)
            boxes.append((x0, y0, x0 + w, y0 + h))
    return WorkLayout(width, height, boxes)


def paint_cell(canvas: np.ndarray, box: Box, alpha: np.ndarray, paper=PAPER, ink=INK) -> None:
    """Overwrite one cell of ``canvas`` (H, W, 3 uint8) with ink at ``alpha``."""
    x0, y0, x1, y1 = box
    a = _as_alpha(alpha)[..., None]
    p = np.asarray(paper, np.float32)
    q = np.asarray(ink, np.float32)
    canvas[y0:y1, x0:x1] = np.rint(p + (q - p) * a).astype(np.uint8)


def blank_canvas(lay: WorkLayout, paper=PAPER) -> np.ndarray:
    c = np.empty((lay.height, lay.width, 3), np.uint8)
    c[...] = np.asarray(paper, np.uint8)
    return c


def glyph_alphas_and_layout(glyph_images, layout, chars_per_line, gap, line_gap, margin):
    """Glyph images → (ink alphas, the planned layout); the checks `compose_work` and the writing video share."""
    alphas = [_as_alpha(g) for g in glyph_images]
    if not alphas:
        raise ValueError("no glyphs to compose")
    shape = alphas[0].shape
    if any(a.shape != shape for a in alphas):
        raise ValueError(f"all glyphs must have the same size; got {sorted({a.shape for a in alphas})}")
    return alphas, plan_layout(len(alphas), shape, layout, chars_per_line, gap, line_gap, margin)


def compose_work(
    glyph_images: Sequence[np.ndarray],
    layout: str = "vertical",
    chars_per_line: int | None = None,
    gap: int | None = None,
    line_gap: int | None = None,
    margin: int | None = None,
    paper=PAPER,
    ink=INK,
) -> tuple[np.ndarray, list[Box]]:
    """Lay glyphs out as a work.

    Returns ``(image, boxes)``: an (H, W, 3) uint8 RGB image, dark ink on
    paper, and the (x0, y0, x1, y1) cell of each glyph in reading order
    (the order of ``glyph_images``). ``columns`` is not a separate argument:
    with the vertical layout ``chars_per_line`` is the column length.
    """
    alphas, lay = glyph_alphas_and_layout(glyph_images, layout, chars_per_line, gap, line_gap, margin)
    canvas = blank_canvas(lay, paper)
    for a, box in zip(alphas, lay.boxes):
        paint_cell(canvas, box, a, paper, ink)
    return canvas, list(lay.boxes)
