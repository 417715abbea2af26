"""Installable fonts from generated glyphs: outlines (tasks.calligraphy.vector) → a TrueType (.ttf) or CFF (.otf) font.

    data = build_font(outlines, chars, "My Hand", flavor="ttf")      # bytes of the font file
    write_font(outlines, chars, "out/MyHand.ttf", family="My Hand")  # atomic: a temp file, then renamed into place

Metrics follow the CJK fonts the model learned from: 1000 units per em, every ideograph 1000 units wide (full-width),
the ideographic em box from descender −120 to ascender 880 (the Noto CJK / Source Han convention), hhea and OS/2
vertical metrics set to the same box, no line gap. A generated glyph's S×S raster cell maps onto that em box, so its
ink (centred in the cell by the data's normalisation) is centred in the em box as in the real fonts. Outline
direction: outer contours clockwise and holes counter-clockwise for TrueType (the reverse for CFF), found from each
contour's nesting inside its vtracer path. Cubic curves become quadratic for .ttf through fontTools' cu2qu.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np

from .vector import Contour, Outline, flatten

UPM = 1000
ASCENDER, DESCENDER = 880, -120
ADVANCE = 1000
FONT_EXTENSIONS = (".ttf", ".otf")

__all__ = ["build_font", "write_font", "glyph_name", "UPM", "ASCENDER", "DESCENDER", "FONT_EXTENSIONS"]


def glyph_name(char: str) -> str:
    return f"uni{ord(char):04X}" if ord(char) <= 0xFFFF else f"u{ord(char):05X}"


def _signed_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _inside(pt, poly: np.ndarray) -> bool:
    x, y = pt
    xs, ys = poly[:, 0], poly[:, 1]
    xj, yj = np.roll(xs, 1), np.roll(ys, 1)
    cross = ((ys > y) != (yj > y)) & (x < (xj - xs) * (y - ys) / np.where(yj - ys == 0, 1e-12, yj - ys) + xs)
    return bool(cross.sum() % 2)


def _reverse(c: Contour) -> Contour:
    """The same closed contour traversed the other way."""
    nodes = [c.start] + [s[-1] for s in c.segments]
    segs = list(c.segments)
    if nodes[-1] != nodes[0]:  # close explicitly so the reversal starts where the contour ends
        segs.append(("L", nodes[0]))
        nodes.append(nodes[0])
    out = Contour(nodes[-1])
    for i in range(len(segs) - 1, -1, -1):
        s, prev = segs[i], nodes[i]
        out.segments.append(("L", prev) if s[0] == "L" else ("C", s[2], s[1], prev))
    return out


def _to_font(p, size: int):
    """Glyph pixels (y down, [0, S]) → font units (y up): the S×S cell onto the em box."""
    k = UPM / size
    return (round(p[0] * k), round(ASCENDER - p[1] * k))


def _draw(pen, outline: Outline, clockwise_outer: bool) -> None:
    for path in outline.paths:
        polys = [flatten(c, 1.0, tol=0.2) for c in path]
        for i, c in enumerate(path):
            if len(polys[i]) < 3:
                continue
            depth = sum(_inside(polys[i][0], polys[j]) for j in range(len(path)) if j != i and len(polys[j]) >= 3)
            # in glyph pixels y points down: a positive signed area there is clockwise once y is flipped up
            cw_in_font = _signed_area(polys[i]) > 0
            want_cw = clockwise_outer if depth % 2 == 0 else not clockwise_outer
            cc = c if cw_in_font == want_cw else _reverse(c)
            pen.moveTo(_to_font(cc.start, outline.size))
            for s in cc.segments:
                if s[0] == "L":
                    pen.lineTo(_to_font(s[1], outline.size))
                else:
                    pen.curveTo(*(_to_font(q, outline.size) for q in s[1:]))
            pen.closePath()


def _ps_name(family: str) -> str:
    name = re.sub(r"[^A-Za-z0-9-]", "", family.replace(" ", "")) or "Calligraphy"
    return name[:60]


def build_font(outlines: list[Outline], chars: list[str], family: str, flavor: str = "ttf",
               description: str = "", version: str = "1.000") -> bytes:
    """Font file bytes: `.notdef`, space (U+0020, half width), U+3000 (ideographic space) and one glyph per char."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.cu2quPen import Cu2QuPen
    from fontTools.pens.t2CharStringPen import T2CharStringPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    if flavor not in ("ttf", "otf"):
        raise ValueError(f"font flavor must be 'ttf' or 'otf', got {flavor!r}")
    if len(outlines) != len(chars) or not chars:
        raise ValueError("need one outline per character and at least one character")
    if len(set(chars)) != len(chars):
        raise ValueError("duplicate characters")
    names = [".notdef", "space", "uni3000"] + [glyph_name(c) for c in chars]
    cmap = {0x20: "space", 0x3000: "uni3000", **{ord(c): glyph_name(c) for c in chars}}
    fb = FontBuilder(UPM, isTTF=flavor == "ttf")
    fb.setupGlyphOrder(names)
    fb.setupCharacterMap(cmap)

    def notdef(pen):
        for (x0, y0, x1, y1), cw in (((100, DESCENDER + 60, 900, ASCENDER - 60), True),
                                      ((160, DESCENDER + 120, 840, ASCENDER - 120), False)):
            pts = [(x0, y0), (x0, y1), (x1, y1), (x1, y0)]
            if cw != (flavor == "ttf"):
                pts = pts[::-1]
            pen.moveTo(pts[0])
            for q in pts[1:]:
                pen.lineTo(q)
            pen.closePath()

    metrics = {".notdef": (ADVANCE, 100), "space": (ADVANCE // 2, 0), "uni3000": (ADVANCE, 0)}
    if flavor == "ttf":
        glyphs = {}
        for n in names[:3]:
            pen = TTGlyphPen(None)
            if n == ".notdef":
                notdef(pen)
            glyphs[n] = pen.glyph()
        for c, o in zip(chars, outlines):
            pen = TTGlyphPen(None)
            _draw(Cu2QuPen(pen, max_err=1.0, reverse_direction=False), o, clockwise_outer=True)
            glyphs[glyph_name(c)] = pen.glyph()
        fb.setupGlyf(glyphs)
        for c in chars:
            g = glyphs[glyph_name(c)]
            metrics[glyph_name(c)] = (ADVANCE, getattr(g, "xMin", 0) if g.numberOfContours else 0)
    else:
        charstrings = {}
        for n in names[:3]:
            pen = T2CharStringPen(metrics[n][0], None)
            if n == ".notdef":
                notdef(pen)
            charstrings[n] = pen.getCharString()
        for c, o in zip(chars, outlines):
            pen = T2CharStringPen(ADVANCE, None)
            _draw(pen, o, clockwise_outer=False)
            charstrings[glyph_name(c)] = pen.getCharString()
        ps = _ps_name(family)
        fb.setupCFF(ps, {"FullName": family}, charstrings, {})
        bounds = {n: charstrings[n].calcBounds(None) for n in names}
        for c in chars:
            b = bounds[glyph_name(c)]
            metrics[glyph_name(c)] = (ADVANCE, b[0] if b else 0)
    fb.setupHorizontalMetrics(metrics)
    fb.setupHorizontalHeader(ascent=ASCENDER, descent=DESCENDER, lineGap=0)
    ps = _ps_name(family)
    fb.setupNameTable({"familyName": family, "styleName": "Regular", "uniqueFontIdentifier": f"gensuite:{ps}:{version}",
                       "fullName": f"{family} Regular", "psName": f"{ps}-Regular", "version": f"Version {version}",
                       "description": description or "Generated by gensuite calligraphy-font",
                       "manufacturer": "gensuite"})
    fb.setupOS2(sTypoAscender=ASCENDER, sTypoDescender=DESCENDER, sTypoLineGap=0, usWinAscent=ASCENDER,
                usWinDescent=-DESCENDER, sxHeight=500, sCapHeight=700, achVendID="GENS", fsType=0,
                ulUnicodeRange2=1 << (59 - 32),  # bit 59: CJK Unified Ideographs
                ulCodePageRange1=(1 << 18) | (1 << 20))  # GB 2312 and Big5 code pages
    fb.setupPost()
    buf = io.BytesIO()
    fb.save(buf)
    return buf.getvalue()


def write_font(outlines: list[Outline], chars: list[str], out: str | os.PathLike, family: str | None = None,
               description: str = "") -> str:
    """Write the font atomically; the flavor comes from the extension (.ttf or .otf)."""
    from gen.io import atomic_write_bytes

    out = Path(out)
    ext = out.suffix.lower()
    if ext not in FONT_EXTENSIONS:
        raise ValueError(f"unsupported font extension {out.suffix!r} for {out.name}; accepted: {', '.join(FONT_EXTENSIONS)}")
    data = build_font(outlines, chars, family or out.stem, flavor=ext[1:], description=description)
    atomic_write_bytes(out, data, suffix=f".tmp{ext}")
    return str(out)
