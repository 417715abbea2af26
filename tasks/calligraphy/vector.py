"""Vector glyphs: trace generated rasters to outlines (vtracer, MIT licence), render them crisply at any size, write
SVG works, and hand the outlines to the font writer (tasks.calligraphy.font).

    outline = trace_glyph(glyph)                  # glyph (S, S) in [0, 1], ink = 1 → Outline in glyph pixel units
    cell = rasterize(outline, 256)                # (256, 256) float in [0, 1], antialiased, no upsampling blur
    svg = work_svg([outline, ...], layout="vertical", cell=256)

Tracing: the glyph is upsampled `upsample`× (bicubic), thresholded at 0.5 and traced by vtracer in binary spline mode
(cubic Béziers). vtracer writes one <path> per ink component, each with its holes as further subpaths; we keep that
grouping (`Outline.paths`: a list of paths, each a list of closed contours, each a list of segments) and fill each path
with the even-odd rule, then take the union of the paths (what the SVG `fill-rule="evenodd"` per path draws). Points
are (x, y) in glyph pixels, y down, in [0, S].
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

import numpy as np

Point = tuple[float, float]
# a segment: ("L", p) or ("C", c1, c2, p); a contour starts at `start` and is closed
_NUM = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(rf"[MLCZ]|{_NUM}")
_PATH = re.compile(r'<path d="([^"]*)"[^>]*?(?:transform="translate\(([^,]+),([^)]+)\)")?\s*/>')

__all__ = ["Contour", "Outline", "trace_glyph", "rasterize", "flatten", "outline_svg_path", "work_svg"]


@dataclass
class Contour:
    start: Point
    segments: list = field(default_factory=list)


@dataclass
class Outline:
    """Paths (each: closed contours, filled even-odd) of one glyph; `size` is the glyph raster side it was traced from."""
    size: int
    paths: list[list[Contour]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(self.paths)


def _parse_svg(svg: str, scale: float) -> list[list[Contour]]:
    paths = []
    for m in _PATH.finditer(svg):
        tx, ty = (float(m.group(2)), float(m.group(3))) if m.group(2) else (0.0, 0.0)
        toks = _TOKEN.findall(m.group(1))
        contours, cur, i = [], None, 0

        def pt(j):
            return ((float(toks[j]) + tx) * scale, (float(toks[j + 1]) + ty) * scale)
        while i < len(toks):
            t = toks[i]
            if t == "M":
                cur = Contour(pt(i + 1))
                contours.append(cur)
                i += 3
            elif t == "L":
                cur.segments.append(("L", pt(i + 1)))
                i += 3
            elif t == "C":
                cur.segments.append(("C", pt(i + 1), pt(i + 3), pt(i + 5)))
                i += 7
            elif t == "Z":
                i += 1
            else:  # implicit repeat of the previous command is not written by vtracer
                raise ValueError(f"unexpected token {t!r} in vtracer output")
        contours = [c for c in contours if c.segments]
        if contours:
            paths.append(contours)
    return paths


def trace_glyph(glyph: np.ndarray, upsample: int = 8, threshold: float = 0.5, speckle: int = 4) -> Outline:
    """(S, S) float in [0, 1] (ink = 1) or uint8 → its Outline, traced at `upsample` × S by vtracer."""
    import vtracer
    from PIL import Image

    g = np.asarray(glyph)
    if g.ndim != 2:
        raise ValueError(f"glyph must be (H, W), got {g.shape}")
    if g.dtype == np.uint8:
        g = g.astype(np.float32) / 255.0
    s = g.shape[0]
    big = Image.fromarray(np.clip(g * 255, 0, 255).astype(np.uint8)).resize((s * upsample, s * upsample),
                                                                           Image.Resampling.BICUBIC)
    ink = np.asarray(big) >= threshold * 255
    if not ink.any():
        return Outline(s, [])
    im = Image.fromarray(np.where(ink, 0, 255).astype(np.uint8)).convert("RGB")  # black ink on white
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    svg = vtracer.convert_raw_image_to_svg(buf.getvalue(), img_format="png", colormode="binary", mode="spline",
                                           filter_speckle=speckle, corner_threshold=60, length_threshold=4.0,
                                           splice_threshold=45, path_precision=3)
    return Outline(s, _parse_svg(svg, 1.0 / upsample))


def _bezier(p0, c1, c2, p3, n):
    t = np.linspace(0, 1, n + 1)[1:, None]
    p0, c1, c2, p3 = (np.asarray(p, np.float64) for p in (p0, c1, c2, p3))
    return ((1 - t) ** 3) * p0 + 3 * ((1 - t) ** 2) * t * c1 + 3 * (1 - t) * t * t * c2 + t ** 3 * p3


def flatten(contour: Contour, scale: float = 1.0, tol: float = 0.25) -> np.ndarray:
    """Polygon (N, 2) of a contour at `scale` (output pixels per glyph pixel), chords within ≈ `tol` output pixels."""
    pts = [np.asarray(contour.start, np.float64)[None]]
    cur = contour.start
    for seg in contour.segments:
        if seg[0] == "L":
            pts.append(np.asarray(seg[1], np.float64)[None])
            cur = seg[1]
        else:
            _, c1, c2, p = seg
            span = (np.hypot(c1[0] - cur[0], c1[1] - cur[1]) + np.hypot(c2[0] - c1[0], c2[1] - c1[1])
                    + np.hypot(p[0] - c2[0], p[1] - c2[1])) * scale
            n = int(min(64, max(2, np.ceil(np.sqrt(span / max(tol, 1e-3))))))
            pts.append(_bezier(cur, c1, c2, p, n))
            cur = p
    return np.concatenate(pts) * scale


def rasterize(outline: Outline, size: int, supersample: int = 4) -> np.ndarray:
    """The outline filled at `size` × `size` px: (size, size) float32 in [0, 1], ink = 1 (antialiased by supersampling)."""
    from PIL import Image, ImageDraw

    big = size * supersample
    scale = big / outline.size
    total = np.zeros((big, big), bool)
    for path in outline.paths:
        acc = np.zeros((big, big), bool)
        for c in path:
            poly = flatten(c, scale, tol=0.3)
            if len(poly) < 3:
                continue
            im = Image.new("1", (big, big), 0)
            ImageDraw.Draw(im).polygon([tuple(p) for p in poly], fill=1)
            acc ^= np.asarray(im, bool)
        total |= acc
    out = total.reshape(size, supersample, size, supersample).mean(axis=(1, 3))
    return out.astype(np.float32)


def outline_svg_path(outline: Outline, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> list[str]:
    """SVG path data, one string per path, with points mapped to (x·scale + dx, y·scale + dy)."""
    f = lambda p: f"{p[0] * scale + dx:.2f} {p[1] * scale + dy:.2f}"
    out = []
    for path in outline.paths:
        parts = []
        for c in path:
            parts.append(f"M{f(c.start)}")
            for seg in c.segments:
                parts.append(f"L{f(seg[1])}" if seg[0] == "L" else f"C{f(seg[1])} {f(seg[2])} {f(seg[3])}")
            parts.append("Z")
        out.append(" ".join(parts))
    return out


def work_svg(outlines: list[Outline], layout: str = "vertical", cell: int = 256, chars_per_line: int | None = None,
             chars: str = "") -> str:
    """An SVG work: paper background, each glyph's outline scaled into its cell of `plan_layout` (same placement as the
    PNG work), ink paths filled even-odd."""
    from .layout import INK, PAPER, plan_layout

    lay = plan_layout(len(outlines), (cell, cell), layout, chars_per_line)
    hexc = lambda c: "#%02x%02x%02x" % tuple(c)
    body = [f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{lay.width}" height="{lay.height}" '
            f'viewBox="0 0 {lay.width} {lay.height}">',
            f'<rect width="{lay.width}" height="{lay.height}" fill="{hexc(PAPER)}"/>']
    for k, (o, (x0, y0, _, _)) in enumerate(zip(outlines, lay.boxes)):
        title = f"<title>{chars[k]}</title>" if k < len(chars) else ""
        paths = "".join(f'<path d="{d}"/>' for d in outline_svg_path(o, cell / o.size, x0, y0))
        body.append(f'<g fill="{hexc(INK)}" fill-rule="evenodd">{title}{paths}</g>')
    body.append("</svg>")
    return "\n".join(body) + "\n"
