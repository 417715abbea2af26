"""Glyph data for the text-to-calligraphy task.

Sources (installed by ``data/calligraphy/setup.sh``):

* characters and stroke data: the npm package ``hanzi-writer-data@2.0.1``
  unpacked in ``data/cache/hanzi-writer-data/`` (one ``<char>.json`` per
  character, with ``strokes`` (SVG outline paths) and ``medians`` (stroke
  centre lines), both in a 1024 box whose y axis points *up*; hanzi-writer
  draws them with the transform ``y' = 900 - y``);
* style glyphs: the fonts in :mod:`tasks.calligraphy.styles`;
* content glyphs: Noto Sans CJK SC (``styles.CONTENT_STYLE``).

Image convention: a glyph is a float32 array (size, size) in [0, 1] with
**ink = 1 on a 0 background**, centred by its ink bounding box and scaled so
the larger side of that box spans ``size - 2 * margin`` pixels. The dataset
stores the same as uint8 (0..255); :class:`GlyphDataset` hands out tensors in
[-1, 1] (ink = +1, background = -1).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gen.io import atomic_path

from .styles import CONTENT_STYLE, STYLE_NAMES, Style, available_styles, get_style

REPO_ROOT = Path(__file__).resolve().parents[2]
HANZI_WRITER_DIR = REPO_ROOT / "data" / "cache" / "hanzi-writer-data"
DEFAULT_CACHE_DIR = REPO_ROOT / "data" / "cache" / "calligraphy"

# Bump when rendering/validation changes so stale caches are not reused.
DATASET_VERSION = 3

# build_dataset: characters per work item, and the job size (glyphs) from
# which a process pool is used.
RENDER_CHUNK = 1000
PARALLEL_MIN_GLYPHS = 4000

# Glyph status codes (stored in the dataset next to the validity mask).
OK, NO_CMAP, BLANK, NOTDEF, BOX, JA_FORM = 0, 1, 2, 3, 4, 5
STATUS_NAMES = {OK: "ok", NO_CMAP: "no_cmap", BLANK: "blank", NOTDEF: "notdef", BOX: "box", JA_FORM: "not_jis"}

# Code points that no CJK font maps: rendering one shows the font's .notdef.
NOTDEF_PROBES = ("\ue000", "\U0010fffd")

__all__ = [
    "HANZI_WRITER_DIR",
    "DEFAULT_CACHE_DIR",
    "STATUS_NAMES",
    "hanzi_writer_dir",
    "load_characters",
    "common_characters",
    "is_jis_kanji",
    "has_strokes",
    "load_strokes",
    "default_margin",
    "render_glyph",
    "glyph_status",
    "is_valid_glyph",
    "GlyphData",
    "build_dataset",
    "split_characters",
    "GlyphDataset",
]


# --------------------------------------------------------------------------
# hanzi-writer-data
# --------------------------------------------------------------------------


def hanzi_writer_dir() -> Path:
    """Directory of the unpacked hanzi-writer-data package.

    ``CALLIGRAPHY_HANZI_WRITER_DIR`` overrides the default location.
    """
    return Path(os.environ.get("CALLIGRAPHY_HANZI_WRITER_DIR", HANZI_WRITER_DIR))


@functools.lru_cache(maxsize=4)
def _characters_in(directory: str) -> tuple[str, ...]:
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(
            f"hanzi-writer-data not found at {d}; run `bash data/calligraphy/setup.sh`"
        )
    chars = []
    for entry in os.scandir(d):
        name = entry.name
        if name.endswith(".json") and len(name) == 6:  # "<one char>.json"
            chars.append(name[0])
    return tuple(sorted(chars))


def is_jis_kanji(char: str) -> bool:
    """Whether a character is a kanji of JIS X 0208 (rows 16-84): the code points a Japanese font ("ja" forms) is
    used for. Outside them a Japanese font draws a Chinese code point in a form of its own making, or none."""
    try:
        b = char.encode("euc_jp")
    except UnicodeEncodeError:
        return False
    return len(b) == 2 and b[0] >= 0xB0


def _encodes(char: str, codec: str) -> bytes | None:
    try:
        return char.encode(codec)
    except UnicodeEncodeError:
        return None


def common_characters() -> list[str]:
    """The common-character universe (sorted): hanzi-writer characters in GB 2312 level 1 (3,755 frequent simplified)
    or Big5 level 1 (5,401 frequent traditional): 6,426 characters, shared by simplified and traditional fonts."""
    out = []
    for c in load_characters():
        gb, b5 = _encodes(c, "gb2312"), _encodes(c, "big5")
        if (gb is not None and len(gb) == 2 and 0xB0 <= gb[0] < 0xD8) or (
                b5 is not None and len(b5) == 2 and 0xA440 <= int.from_bytes(b5, "big") < 0xC67F):
            out.append(c)
    return out


def load_characters() -> list[str]:
    """All characters that have hanzi-writer stroke data, sorted by code point."""
    return list(_characters_in(str(hanzi_writer_dir())))


def has_strokes(char: str) -> bool:
    return len(char) == 1 and (hanzi_writer_dir() / f"{char}.json").is_file()


@functools.lru_cache(maxsize=4096)
def _load_strokes_cached(directory: str, char: str) -> dict:
    with open(Path(directory) / f"{char}.json", encoding="utf-8") as f:
        raw = json.load(f)
    return {"strokes": list(raw["strokes"]), "medians": raw["medians"]}


def load_strokes(char: str) -> dict:
    """Stroke data of one character.

    Returns ``{"strokes": [svg path str, ...], "medians": [[[x, y], ...], ...]}``
    in hanzi-writer's 1024 box (y up; draw with ``y' = 900 - y``), in stroke
    order. Raises ``KeyError`` for a character without data.
    """
    if not has_strokes(char):
        raise KeyError(f"no hanzi-writer stroke data for {char!r}")
    d = _load_strokes_cached(str(hanzi_writer_dir()), char)
    return {"strokes": list(d["strokes"]), "medians": [[list(p) for p in m] for m in d["medians"]]}


# --------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------


def default_margin(size: int) -> int:
    """Default margin: size / 16 (4 px at 64 px)."""
    return max(1, int(round(size / 16)))


def _render_px(size: int) -> int:
    """Font size (px) of the supersampled render that is then downscaled (2x;
    at least 128 px so that validation sees enough detail)."""
    return max(128, 2 * size)


@functools.lru_cache(maxsize=64)
def _font(font_path: str, index: int, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path, px, index=index)


@functools.lru_cache(maxsize=32)
def _cmap(font_path: str, index: int) -> frozenset:
    from fontTools.ttLib import TTFont

    font = TTFont(font_path, fontNumber=index, lazy=True)
    try:
        return frozenset(font.getBestCmap() or {})
    finally:
        font.close()


def _resolve_font(font) -> tuple[str, int]:
    """(path, face index) from a path, a (path, index) pair, a Style or a style name."""
    if isinstance(font, Style):
        return font.font_path, font.face_index
    if isinstance(font, tuple):
        return str(font[0]), int(font[1])
    font = str(font)
    if font in STYLE_NAMES or font == CONTENT_STYLE.name:
        s = get_style(font)
        return s.font_path, s.face_index
    return font, 0


def _render_raw(char: str, font_path: str, index: int, px: int) -> np.ndarray:
    """High-resolution uint8 render of one character, cropped to its ink box.

    Returns an empty (0, 0) array when nothing is drawn.
    """
    font = _font(font_path, index, px)
    x0, y0, x1, y1 = font.getbbox(char)
    pad = 2
    w, h = max(1, x1 - x0) + 2 * pad, max(1, y1 - y0) + 2 * pad
    im = Image.new("L", (w, h), 0)
    ImageDraw.Draw(im).text((pad - x0, pad - y0), char, font=font, fill=255)
    a = np.asarray(im)
    rows = np.flatnonzero(a.max(axis=1))
    cols = np.flatnonzero(a.max(axis=0))
    if rows.size == 0:
        return np.zeros((0, 0), np.uint8)
    return a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _normalise(crop: np.ndarray, size: int, margin: int) -> np.ndarray:
    """Scale an ink crop so its larger side is size - 2*margin, centred; float32 [0,1]."""
    out = np.zeros((size, size), np.float32)
    if crop.size == 0:
        return out
    h, w = crop.shape
    target = size - 2 * margin
    if target < 1:
        raise ValueError(f"margin {margin} too large for size {size}")
    s = target / max(h, w)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    small = Image.fromarray(crop).resize((nw, nh), Image.Resampling.LANCZOS)
    x0, y0 = (size - nw) // 2, (size - nh) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = np.asarray(small, np.float32) / 255.0
    return out


def render_glyph(char: str, font_path, size: int = 64, margin: int | None = None, index: int = 0) -> np.ndarray:
    """Render one character as a normalised glyph.

    ``font_path`` may be a path (``index`` selects the face of a .ttc), a
    ``(path, index)`` pair, a :class:`Style` or a style name. Returns a float32
    (size, size) array in [0, 1], ink = 1, centred by its ink bounding box,
    the larger side of which spans ``size - 2 * margin`` pixels (default
    margin: :func:`default_margin`). A character that draws nothing gives an
    all-zero image. No validity check is made: see :func:`glyph_status`.
    """
    path, idx = _resolve_font(font_path)
    if isinstance(font_path, (str, os.PathLike)) and path == str(font_path):
        idx = index
    margin = default_margin(size) if margin is None else int(margin)
    return _normalise(_render_raw(char, path, idx, _render_px(size)), size, margin)


# --------------------------------------------------------------------------
# validation: blank glyphs, the font's .notdef (tofu), plain boxes
# --------------------------------------------------------------------------

BLANK_INK_FRACTION = 0.002  # ink area / em^2 below which a glyph counts as blank


@functools.lru_cache(maxsize=64)
def _notdef_crops(font_path: str, index: int, px: int) -> tuple[np.ndarray, ...]:
    return tuple(_render_raw(c, font_path, index, px) for c in NOTDEF_PROBES)


def _same_shape(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two ink crops are (nearly) the same picture."""
    if a.size == 0 or b.size == 0:
        return a.size == b.size
    (ha, wa), (hb, wb) = a.shape, b.shape
    if abs(ha - hb) > max(2, 0.03 * max(ha, hb)) or abs(wa - wb) > max(2, 0.03 * max(wa, wb)):
        return False
    h, w = min(ha, hb), min(wa, wb)
    ma, mb = a[:h, :w] > 127, b[:h, :w] > 127
    union = np.logical_or(ma, mb).sum()
    return union == 0 or np.logical_and(ma, mb).sum() / union > 0.9


def _is_box(crop: np.ndarray) -> bool:
    """A plain rectangle: a thin, even outline (optionally crossed, like the
    Noto / WenKai .notdef) or a solid square-ish block (the Kouzan .notdef)."""
    m = crop > 127
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        return False
    m = m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = m.shape
    if h < 8 or w < 8:
        return False
    if m.mean() > 0.92 and 0.4 < w / h < 2.5:  # solid block
        return True
    t = max(2, int(round(0.08 * max(h, w))))  # border band
    if min(h, w) <= 3 * t:
        return False
    # every side of the bounding box must be an (almost) unbroken line
    sides = (m[:t].any(axis=0), m[-t:].any(axis=0), m[:, :t].any(axis=1), m[:, -t:].any(axis=1))
    if min(x.mean() for x in sides) < 0.97:
        return False
    # even border thickness, measured at the middle of each side
    thick = [
        int(np.argmin(m[:, w // 2])),
        int(np.argmin(m[::-1, w // 2])),
        int(np.argmin(m[h // 2, :])),
        int(np.argmin(m[h // 2, ::-1])),
    ]
    if min(thick) == 0 or max(thick) > t or max(thick) - min(thick) > max(2, 0.02 * max(h, w)):
        return False
    inner = m[t:-t, t:-t]
    if inner.mean() <= 0.01:  # hollow rectangle
        return True
    # crossed box: the only inner ink lies along the two diagonals
    yy, xx = np.mgrid[t : h - t, t : w - t].astype(np.float64)
    norm = math.hypot(h, w)
    d1 = np.abs(h * xx - w * yy) / norm
    d2 = np.abs(h * (w - 1 - xx) - w * yy) / norm
    off = inner & (d1 > 1.5 * t) & (d2 > 1.5 * t)
    if off.sum() > 0.01 * inner.size:
        return False
    u = np.linspace(0.1, 0.9, 64)
    ys, xs = np.rint(u * (h - 1)).astype(int), np.rint(u * (w - 1)).astype(int)
    near = lambda yv, xv: m[max(0, yv - t) : yv + t + 1, max(0, xv - t) : xv + t + 1].any()
    on = [near(y, x) for y, x in zip(ys, xs)] + [near(y, w - 1 - x) for y, x in zip(ys, xs)]
    return float(np.mean(on)) > 0.95


def glyph_status(char: str, font_path, index: int = 0, px: int = 128, check_cmap: bool = True) -> int:
    """Why (or whether) a character renders properly in a font.

    Returns one of the codes in :data:`STATUS_NAMES`: ``OK``; ``NO_CMAP`` (the
    code point is not in the font's cmap); ``BLANK`` (too little ink);
    ``NOTDEF`` (looks like the font's own .notdef glyph, as drawn for the
    private-use code points U+E000 / U+10FFFD); ``BOX`` (a plain rectangle
    outline or solid block: a tofu box of another kind). ``check_cmap=False``
    skips the cmap look-up and judges only what the renderer draws; ``px`` is
    the render size (``build_dataset`` uses max(128, 2 * size)).
    """
    path, idx = _resolve_font(font_path)
    if isinstance(font_path, (str, os.PathLike)) and path == str(font_path):
        idx = index
    if len(char) != 1:
        raise ValueError(f"expected one character, got {char!r}")
    if check_cmap and ord(char) not in _cmap(path, idx):
        return NO_CMAP
    return _status_of_crop(_render_raw(char, path, idx, px), path, idx, px)


def _status_of_crop(crop: np.ndarray, path: str, idx: int, px: int) -> int:
    if crop.size == 0 or crop.sum() / 255.0 < BLANK_INK_FRACTION * px * px:
        return BLANK
    if any(_same_shape(crop, nd) for nd in _notdef_crops(path, idx, px)):
        return NOTDEF
    if _is_box(crop):
        return BOX
    return OK


def is_valid_glyph(char: str, font_path, index: int = 0) -> bool:
    return glyph_status(char, font_path, index) == OK


# --------------------------------------------------------------------------
# dataset
# --------------------------------------------------------------------------


@dataclass
class GlyphData:
    """Rendered glyphs of several styles over one character list.

    images:  (N_style, N_char, size, size) uint8, ink = 255
    valid:   (N_style, N_char) bool; False where status != OK
    status:  (N_style, N_char) uint8 codes, see STATUS_NAMES
    content: (N_char, size, size) uint8, Noto Sans CJK SC glyphs
    content_valid: (N_char,) bool
    """

    styles: list[str]
    chars: list[str]
    size: int
    margin: int
    images: np.ndarray
    valid: np.ndarray
    status: np.ndarray
    content: np.ndarray
    content_valid: np.ndarray
    path: Path | None = None

    def __post_init__(self):
        self._pos = {c: i for i, c in enumerate(self.chars)}

    def char_index(self, char: str) -> int:
        return self._pos[char]

    def glyph(self, style: str, char: str) -> np.ndarray:
        """float32 [0, 1] glyph (ink = 1) of one (style, char)."""
        return self.images[self.styles.index(style), self.char_index(char)].astype(np.float32) / 255.0

    def summary(self) -> dict:
        return {
            "chars": len(self.chars),
            "valid_per_style": {s: int(self.valid[i].sum()) for i, s in enumerate(self.styles)},
            "content_valid": int(self.content_valid.sum()),
        }


def _render_chunk(args) -> tuple[np.ndarray, np.ndarray]:
    """Worker: render chars in one font; returns (uint8 images, status codes)."""
    path, idx, chars, size, margin, forms = args
    px = _render_px(size)
    cmap = _cmap(path, idx)
    imgs = np.zeros((len(chars), size, size), np.uint8)
    status = np.zeros(len(chars), np.uint8)
    for i, c in enumerate(chars):
        if ord(c) not in cmap:
            status[i] = NO_CMAP
            continue
        if forms == "ja" and not is_jis_kanji(c):
            status[i] = JA_FORM
            continue
        crop = _render_raw(c, path, idx, px)
        st = _status_of_crop(crop, path, idx, px)
        status[i] = st
        if st == OK:
            g = _normalise(crop, size, margin)
            imgs[i] = np.clip(np.rint(g * 255.0), 0, 255).astype(np.uint8)
    return imgs, status


def _cache_key(fonts: Sequence[tuple[str, str, int]], chars: Sequence[str], size: int, margin: int) -> str:
    h = hashlib.sha256()
    h.update(f"v{DATASET_VERSION}|{size}|{margin}|".encode())
    for name, path, idx in fonts:
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}"
        except OSError:
            stamp = "missing"
        h.update(f"{name}|{path}|{idx}|{stamp}|".encode())
    h.update("".join(chars).encode("utf-8"))
    return h.hexdigest()[:20]


def _atomic_savez(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".tmp", prefix=f".{path.name}.") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)  # a file object: savez adds no ".npz"


def build_dataset(
    styles: Sequence[str] | None = None,
    chars: Sequence[str] | None = None,
    size: int = 64,
    cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR,
    margin: int | None = None,
    workers: int | None = None,
    verbose: bool = False,
) -> GlyphData:
    """Render (or load from cache) every (style, char) glyph plus content glyphs.

    ``styles``: style names (default: all installed styles); ``chars``: default
    all hanzi-writer characters. Result is cached as
    ``<cache_dir>/glyphs_<size>px_<key>.npz`` where the key hashes the styles
    (and their font files), the characters, size, margin and a format version;
    the file is written atomically. ``cache_dir=None`` disables caching.
    ``workers``: processes used (default: CPU count, only for big jobs).
    """
    styles = list(available_styles() if styles is None else styles)
    style_objs = [get_style(s) for s in styles]
    for s in style_objs:
        if not s.available:
            raise FileNotFoundError(
                f"font for style {s.name!r} missing ({s.font_path}); run `bash data/calligraphy/setup.sh`"
            )
    if not CONTENT_STYLE.available:
        raise FileNotFoundError(f"content font missing ({CONTENT_STYLE.font_path}); run setup.sh")
    chars = list(load_characters() if chars is None else chars)
    if len(set(chars)) != len(chars):
        raise ValueError("duplicate characters in chars")
    margin = default_margin(size) if margin is None else int(margin)

    fonts = [(s.name, s.font_path, s.face_index) for s in style_objs]
    fonts.append((CONTENT_STYLE.name, CONTENT_STYLE.font_path, CONTENT_STYLE.face_index))
    forms = [s.forms for s in style_objs] + [CONTENT_STYLE.forms]
    key = _cache_key(fonts, chars, size, margin)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"glyphs_{size}px_{len(styles)}st_{len(chars)}ch_{key}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    if [str(c) for c in z["chars"]] == chars and [str(s) for s in z["styles"]] == styles:
                        return GlyphData(
                            styles=styles,
                            chars=chars,
                            size=size,
                            margin=margin,
                            images=z["images"],
                            valid=z["valid"],
                            status=z["status"],
                            content=z["content"],
                            content_valid=z["content_valid"],
                            path=path,
                        )
            except Exception:  # corrupt/partial cache: rebuild
                pass

    t0 = time.time()
    n_jobs = len(fonts) * len(chars)
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    chunk = max(1, int(RENDER_CHUNK))
    tasks = []
    for (_, p, idx), fm in zip(fonts, forms):
        for i in range(0, max(1, len(chars)), chunk):
            tasks.append((p, idx, chars[i : i + chunk], size, margin, fm))
    if workers > 1 and n_jobs >= PARALLEL_MIN_GLYPHS:
        try:
            ctx = mp.get_context("fork")
        except ValueError:
            ctx = mp.get_context()
        with ctx.Pool(min(workers, len(tasks))) as pool:
            results = pool.map(_render_chunk, tasks, chunksize=1)
    else:
        results = [_render_chunk(t) for t in tasks]

    per_font = math.ceil(len(chars) / chunk) if chars else 1
    imgs, stats = [], []
    for f in range(len(fonts)):
        part = results[f * per_font : (f + 1) * per_font]
        imgs.append(np.concatenate([r[0] for r in part]) if chars else np.zeros((0, size, size), np.uint8))
        stats.append(np.concatenate([r[1] for r in part]) if chars else np.zeros(0, np.uint8))
    images = np.stack(imgs[:-1]) if styles else np.zeros((0, len(chars), size, size), np.uint8)
    status = np.stack(stats[:-1]) if styles else np.zeros((0, len(chars)), np.uint8)
    data = GlyphData(
        styles=styles,
        chars=chars,
        size=size,
        margin=margin,
        images=images,
        valid=status == OK,
        status=status,
        content=imgs[-1],
        content_valid=stats[-1] == OK,
        path=path,
    )
    if verbose:
        print(f"[calligraphy] rendered {n_jobs} glyphs in {time.time() - t0:.1f}s")
    if path is not None:
        _atomic_savez(
            path,
            styles=np.array(styles, dtype=str),
            chars=np.array(chars, dtype=str),
            size=np.int64(size),
            margin=np.int64(margin),
            images=data.images,
            valid=data.valid,
            status=data.status,
            content=data.content,
            content_valid=data.content_valid,
        )
    return data


# --------------------------------------------------------------------------
# train / held-out split
# --------------------------------------------------------------------------


def _unit_hash(char: str, seed: int) -> float:
    d = hashlib.sha256(f"{seed}:{char}".encode("utf-8")).digest()
    return int.from_bytes(d[:8], "big") / 2.0**64


def split_characters(
    chars: Iterable[str], heldout_fraction: float = 0.1, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Split characters into (train, heldout), both sorted by code point.

    Each character gets a seeded hash u in [0, 1); those with
    ``u < heldout_fraction`` are held out, topped up with the next-lowest u
    until at least ``ceil(heldout_fraction * n)`` are held out. So the split
    does not depend on the input order, a character held out of the full set
    stays held out in any subset containing it, and at least the requested
    fraction is held out.
    """
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError("heldout_fraction must be in [0, 1)")
    uniq = sorted(set(chars))
    ranked = sorted(uniq, key=lambda c: (_unit_hash(c, seed), c))
    need = math.ceil(heldout_fraction * len(uniq) - 1e-9)
    n_held = max(need, sum(_unit_hash(c, seed) < heldout_fraction for c in uniq))
    held = set(ranked[:n_held])
    return [c for c in uniq if c not in held], [c for c in uniq if c in held]


# --------------------------------------------------------------------------
# torch Dataset
# --------------------------------------------------------------------------

try:  # torch is a project dependency; keep the module importable without it
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover
    _TorchDataset = object


class GlyphDataset(_TorchDataset):
    """(style, char) glyph pairs for training / evaluating the style model.

    Items: ``{"image": (1,H,W) float32 in [-1,1] (ink = +1), "content": (1,H,W)
    float32 in [-1,1] (Noto Sans glyph), "style": int index into
    self.styles, "char": str}`` over the valid pairs of the chosen split.
    ``chars`` is the character universe to split (default: all
    hanzi-writer characters); ``split='all'`` takes every character.
    """

    def __init__(
        self,
        split: str = "train",
        styles: Sequence[str] | None = None,
        chars: Sequence[str] | None = None,
        size: int = 64,
        heldout_fraction: float = 0.1,
        seed: int = 0,
        cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR,
        data: GlyphData | None = None,
    ):
        if split not in ("train", "heldout", "all"):
            raise ValueError(f"split must be 'train', 'heldout' or 'all', not {split!r}")
        if data is None:
            if styles is None:  # the nine classic styles (what this dataset always gave; the backbone trains on it)
                from .styles import CLASSIC_STYLES

                styles = [s for s in CLASSIC_STYLES if get_style(s).available]
            data = build_dataset(styles, chars, size=size, cache_dir=cache_dir)
        self.data = data
        self.styles = list(data.styles)
        self.size = data.size
        train, held = split_characters(data.chars, heldout_fraction, seed)
        keep = {"train": set(train), "heldout": set(held), "all": set(data.chars)}[split]
        self.chars = [c for c in data.chars if c in keep]
        cidx = np.array([data.char_index(c) for c in self.chars], dtype=np.int64)
        ok = data.valid[:, cidx] & data.content_valid[cidx][None, :] if cidx.size else np.zeros((len(self.styles), 0), bool)
        s_idx, k = np.nonzero(ok)
        self._pairs = np.stack([s_idx, cidx[k]], axis=1) if s_idx.size else np.zeros((0, 2), np.int64)

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, i: int) -> dict:
        import torch

        s, c = (int(v) for v in self._pairs[i])
        img = torch.from_numpy(self.data.images[s, c].astype(np.float32) / 127.5 - 1.0)[None]
        con = torch.from_numpy(self.data.content[c].astype(np.float32) / 127.5 - 1.0)[None]
        return {"image": img, "content": con, "style": s, "char": self.data.chars[c]}
