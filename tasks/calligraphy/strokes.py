"""Map hanzi-writer stroke medians onto our rendered glyphs.

hanzi-writer-data (from Make Me a Hanzi) gives, per character and in stroke
order, an SVG outline path and a median (centre line) per stroke, in a 1024
box with the y axis pointing up; hanzi-writer draws them with
``y' = 900 - y``. Our glyphs come from other fonts, centred and scaled by
their ink bounding box (see :func:`tasks.calligraphy.data.render_glyph`), so
the medians are placed by fitting the bounding box of the *outline* (the
stroke shapes, sampled along their curves) onto the glyph's ink bounding box,
with independent x and y scales.

Pixel coordinates: ``(x, y)`` = (column, row), y down, the centre of pixel
``img[r, c]`` is at ``(c, r)``; a pixel covers ``[c - 0.5, c + 0.5]``.
"""

from __future__ import annotations

import re

import numpy as np

from .data import load_strokes

__all__ = ["HW_Y_FLIP", "parse_svg_path", "outline_points", "ink_bbox", "medians_to_pixels", "fit_medians"]

HW_Y_FLIP = 900.0  # hanzi-writer: y_screen = 900 - y

_TOKEN = re.compile(r"[MLQCZmlqcz]|-?\d*\.?\d+(?:[eE][-+]?\d+)?")


def parse_svg_path(d: str, samples_per_curve: int = 8) -> np.ndarray:
    """Points along an SVG path of absolute M/L/Q/C/Z commands (as in
    hanzi-writer-data), curves sampled; returns (N, 2) in the path's own
    coordinates (y up)."""
    toks = _TOKEN.findall(d)
    pts: list[tuple[float, float]] = []
    cur = np.zeros(2)
    start = np.zeros(2)
    i, cmd = 0, None
    t = np.linspace(0.0, 1.0, samples_per_curve + 1)[1:, None]

    def num(k: int) -> np.ndarray:
        return np.array([float(toks[k]), float(toks[k + 1])])

    while i < len(toks):
        tok = toks[i]
        if tok.isalpha():
            cmd = tok
            i += 1
            if cmd in "Zz":
                cur = start.copy()
                pts.append(tuple(cur))
            continue
        if cmd is None or cmd.islower():
            raise ValueError(f"unsupported SVG path command {cmd!r} in {d[:40]!r}")
        if cmd == "M":
            cur = num(i)
            start = cur.copy()
            pts.append(tuple(cur))
            i += 2
            cmd = "L"  # implicit lineto after moveto
        elif cmd == "L":
            cur = num(i)
            pts.append(tuple(cur))
            i += 2
        elif cmd == "Q":
            c1, end = num(i), num(i + 2)
            curve = (1 - t) ** 2 * cur + 2 * (1 - t) * t * c1 + t**2 * end
            pts.extend(map(tuple, curve))
            cur = end
            i += 4
        elif cmd == "C":
            c1, c2, end = num(i), num(i + 2), num(i + 4)
            curve = (1 - t) ** 3 * cur + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t**2 * c2 + t**3 * end
            pts.extend(map(tuple, curve))
            cur = end
            i += 6
        else:
            raise ValueError(f"unsupported SVG path command {cmd!r}")
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def outline_points(strokes: list[str]) -> np.ndarray:
    """All sampled outline points of a character, (N, 2), y up."""
    parts = [parse_svg_path(s) for s in strokes]
    parts = [p for p in parts if len(p)]
    return np.concatenate(parts) if parts else np.zeros((0, 2))


def ink_bbox(glyph: np.ndarray, threshold: float = 0.5) -> tuple[float, float, float, float] | None:
    """Ink bounding box (x0, y0, x1, y1) in pixel-edge coordinates (see module
    doc), of pixels whose value exceeds ``threshold`` (0-1 scale; uint8 images
    are divided by 255). None for an empty glyph."""
    g = np.asarray(glyph)
    if g.dtype == np.uint8:
        g = g.astype(np.float32) / 255.0
    m = g > threshold
    if not m.any():
        m = g > 0
        if not m.any():
            return None
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    return (cols[0] - 0.5, rows[0] - 0.5, cols[-1] + 0.5, rows[-1] + 0.5)


def fit_medians(strokes: list[str], medians: list, box: tuple[float, float, float, float]) -> list[np.ndarray]:
    """Map medians (1024 box, y up) so that the outline's bounding box lands on
    ``box`` = (x0, y0, x1, y1) in pixel coordinates (y down)."""
    pts = outline_points(strokes)
    allm = np.concatenate([np.asarray(m, np.float64).reshape(-1, 2) for m in medians]) if medians else np.zeros((0, 2))
    if len(pts) == 0:
        pts = allm
    if len(pts) == 0:
        return []
    # screen coords of the source (y down): (x, 900 - y)
    sx0, sx1 = pts[:, 0].min(), pts[:, 0].max()
    sy0, sy1 = HW_Y_FLIP - pts[:, 1].max(), HW_Y_FLIP - pts[:, 1].min()
    x0, y0, x1, y1 = box
    sw, sh = sx1 - sx0, sy1 - sy0
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    out = []
    for m in medians:
        m = np.asarray(m, np.float64).reshape(-1, 2)
        x = (m[:, 0] - sx0) / sw * (x1 - x0) + x0 if sw > 1e-9 else np.full(len(m), cx)
        y = ((HW_Y_FLIP - m[:, 1]) - sy0) / sh * (y1 - y0) + y0 if sh > 1e-9 else np.full(len(m), cy)
        p = np.stack([x, y], axis=1)
        p[:, 0] = np.clip(p[:, 0], x0, x1)  # medians lie within the outline; clip rounding
        p[:, 1] = np.clip(p[:, 1], y0, y1)
        out.append(p.astype(np.float32))
    return out


def medians_to_pixels(char: str, glyph_image: np.ndarray, threshold: float = 0.5) -> list[np.ndarray]:
    """Stroke medians of ``char`` in pixel coords of ``glyph_image``.

    Returns one (K_i, 2) float32 array of (x, y) per stroke, in stroke order,
    inside the glyph's ink bounding box. Raises ``KeyError`` when there is no
    stroke data for ``char`` and ``ValueError`` for an empty glyph.
    """
    data = load_strokes(char)
    box = ink_bbox(glyph_image, threshold)
    if box is None:
        raise ValueError(f"glyph of {char!r} has no ink")
    return fit_medians(data["strokes"], data["medians"], box)
