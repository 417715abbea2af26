"""Procedural faces with binary attributes: the multi-label attribute task's synthetic data.

Every face is drawn with numpy masks on a ×4 supersampled canvas and box-downsampled (anti-aliasing), at 32×32 RGB by
default (64×64 available). Each attribute has a *local* visible effect inside its region, and nuisances (skin tone,
hair colour, face shape, position jitter, background gradient) are drawn from the generator *before* the attributes,
so toggling one attribute with the same generator state changes only the pixels of its region.

Attributes (independent Bernoulli(0.5) by default)::

    glasses      thin dark round frames around the eyes, with a bridge and arms to the face edge
    sunglasses   dark *translucent* lenses (×0.4) inside the frame radius: eyes stay visible under them, and
                 glasses frames stay visible around them (so glasses+sunglasses and sunglasses+closed_eyes render)
    closed_eyes  dark arcs instead of white eyes with pupils
    moustache    hair-coloured band above the mouth
    smile        mouth curved up (parabola) instead of a straight neutral line
    beard        hair-coloured jaw band and chin
    earrings     gold/silver discs with a dark rim below the ears
    bangs        hair fringe with a zig-zag edge over the forehead (the lower part stays visible under a hat)
    hat          coloured crown and dark brim over the top of the head

Held-out combinations (``HELDOUT_COMBOS``): a sample is *held out* when its positive set is a superset of one of them;
the ``train`` split never contains such a sample, the ``heldout`` split always does. See ``heldout_statistics()``.

Usage::

    from tasks.attributes.faces import FaceDataset, ATTRIBUTES
    ds = FaceDataset(n=10_000, seed=0, size=32, split="train")
    item = ds[0]    # {"image": (3, 32, 32) float in [-1, 1], "attrs": (9,) float 0/1}
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from gen.io import atomic_path

ATTRIBUTES: tuple[str, ...] = (
    "glasses",
    "sunglasses",
    "closed_eyes",
    "moustache",
    "smile",
    "beard",
    "earrings",
    "bangs",
    "hat",
)

# Fixed combinations that never appear in the train split (superset rule). Sizes 3 and 4 only, so every single
# attribute and every pair still appears in training (checked by heldout_statistics() and the tests).
HELDOUT_COMBOS: tuple[frozenset[str], ...] = tuple(
    frozenset(c)
    for c in (
        ("glasses", "beard", "hat"),
        ("sunglasses", "smile", "earrings"),
        ("closed_eyes", "moustache", "bangs"),
        ("glasses", "smile", "bangs"),
        ("sunglasses", "beard", "bangs"),
        ("closed_eyes", "earrings", "hat"),
        ("moustache", "smile", "hat"),
        ("glasses", "sunglasses", "moustache"),
        ("closed_eyes", "sunglasses", "beard", "earrings"),
        ("glasses", "earrings", "moustache", "bangs"),
        ("smile", "beard", "hat", "closed_eyes"),
        ("sunglasses", "hat", "bangs", "moustache"),
    )
)

SPLITS = ("train", "heldout", "all")
SUPERSAMPLE = 4  # render at size*4, box-downsample → anti-aliased edges
CACHE_VERSION = 1  # bump when the rendering changes so stale caches are not reused

# ---------------------------------------------------------------------------------------------------------------------
# Geometry. A face is an ellipse with centre (cx, cy) and half-axes (fw, fh) in normalised image coordinates
# (x right, y down, both in [0, 1]). Features are placed in face-relative coordinates u = (x - cx) / fw,
# v = (y - cy) / fh. The nuisance ranges below bound where every feature can land, which gives REGIONS.
# ---------------------------------------------------------------------------------------------------------------------
JITTER = 2.0 / 32  # position jitter: ±2 px at 32×32 (the same fraction of the image at 64×64)
CX_RANGE = (0.5 - JITTER, 0.5 + JITTER)
CY_RANGE = (0.54 - JITTER, 0.54 + JITTER)
FW_RANGE = (0.24, 0.29)  # face half-width
FH_RANGE = (0.30, 0.35)  # face half-height

EYE_U, EYE_V = 0.40, -0.12  # eye centres at (±EYE_U, EYE_V)
MOUTH_V = 0.50  # neutral mouth line

# Face-relative extents (u0, v0, u1, v1) of everything an attribute may paint, plus an absolute margin for stroke
# widths and anti-aliasing. REGIONS is derived from these, so painting and regions cannot drift apart.
_FEATURE_UV: dict[str, tuple[tuple[float, float, float, float], float]] = {
    "eyes": ((-1.0, -0.44, 1.0, 0.20), 0.03),  # eyes, frames + arms, lenses
    "upper_lip": ((-0.45, 0.14, 0.45, 0.40), 0.03),  # moustache
    "mouth": ((-0.42, 0.34, 0.42, 0.70), 0.03),  # neutral line / smile
    "chin": ((-1.06, 0.05, 1.06, 1.08), 0.03),  # beard
    "ears": ((-1.0, 0.30, 1.0, 0.30), 0.07),  # earrings: discs of radius 0.045 centred at u=±1, v=0.3
    "forehead": ((-0.9, -1.0, 0.9, -0.40), 0.03),  # bangs
    "top": ((-1.3, -1.5, 1.3, -0.72), 0.03),  # hat
    "face": ((-1.3, -1.5, 1.3, 1.08), 0.07),  # everything
}


def _box_from_uv(uv: tuple[float, float, float, float], margin: float) -> tuple[float, float, float, float]:
    """Bounding box in image coordinates of a face-relative box over all nuisance values (corners are extremal)."""
    u0, v0, u1, v1 = uv
    xs = [cx + u * fw for cx in CX_RANGE for fw in FW_RANGE for u in (u0, u1)]
    ys = [cy + v * fh for cy in CY_RANGE for fh in FH_RANGE for v in (v0, v1)]
    box = (min(xs) - margin, min(ys) - margin, max(xs) + margin, max(ys) + margin)
    # Round outwards to 3 decimals and clip to the image.
    x0, y0, x1, y1 = (np.floor(box[0] * 1000) / 1000, np.floor(box[1] * 1000) / 1000,
                      np.ceil(box[2] * 1000) / 1000, np.ceil(box[3] * 1000) / 1000)
    return (float(max(x0, 0.0)), float(max(y0, 0.0)), float(min(x1, 1.0)), float(min(y1, 1.0)))


REGIONS: dict[str, tuple[float, float, float, float]] = {
    name: _box_from_uv(uv, margin) for name, (uv, margin) in _FEATURE_UV.items()
}

ATTRIBUTE_REGION: dict[str, str] = {
    "glasses": "eyes",
    "sunglasses": "eyes",
    "closed_eyes": "eyes",
    "moustache": "upper_lip",
    "smile": "mouth",
    "beard": "chin",
    "earrings": "ears",
    "bangs": "forehead",
    "hat": "top",
}

# Palettes (RGB 0..255). Hair is chosen with a luminance at least HAIR_CONTRAST away from the skin, so hair-coloured
# attributes (beard, moustache, bangs) are visible on every skin tone.
SKIN_TONES = np.array(
    [[255, 224, 196], [241, 194, 160], [224, 172, 128], [198, 140, 100], [160, 106, 70], [120, 78, 50], [86, 56, 38]],
    dtype=np.float32,
)
HAIR_COLOURS = np.array(
    [[25, 20, 20], [60, 40, 28], [105, 70, 40], [140, 62, 30], [215, 180, 110], [175, 175, 175], [235, 230, 220]],
    dtype=np.float32,
)
HAT_COLOURS = np.array(
    [[200, 30, 40], [30, 70, 190], [30, 150, 60], [130, 40, 160], [230, 150, 20], [20, 140, 150]], dtype=np.float32
)
EARRING_COLOURS = np.array([[250, 210, 40], [225, 225, 235]], dtype=np.float32)
FRAME_COLOURS = np.array(
    [[15, 15, 15], [60, 30, 10], [10, 20, 80], [205, 205, 215], [225, 185, 60], [210, 40, 40]], dtype=np.float32
)
MOUTH_COLOURS = np.array([[140, 30, 45], [240, 150, 160]], dtype=np.float32)
HAIR_CONTRAST = 70.0  # also used for glasses frames
LENS_TINT = 0.4  # sunglasses multiply what is under them by this


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class Nuisance:
    """Everything about a face that is not an attribute; drawn from the generator before any attribute."""

    cx: float
    cy: float
    fw: float
    fh: float
    skin: np.ndarray  # (3,)
    hair: np.ndarray  # (3,)
    bg0: np.ndarray  # (3,) background colour at one end of the gradient
    bg1: np.ndarray  # (3,) and at the other end
    bg_angle: float  # gradient direction, radians
    hat: np.ndarray  # (3,)
    earring: np.ndarray  # (3,)
    frame: np.ndarray  # (3,)


def sample_nuisance(rng: np.random.Generator) -> Nuisance:
    """Draw nuisances in a fixed order with a fixed number of draws (independent of the attributes)."""
    cx = rng.uniform(*CX_RANGE)
    cy = rng.uniform(*CY_RANGE)
    fw = rng.uniform(*FW_RANGE)
    fh = rng.uniform(*FH_RANGE)
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.uniform(-8, 8, size=3).astype(np.float32)
    ok = np.abs(_luminance(HAIR_COLOURS) - _luminance(skin)) >= HAIR_CONTRAST
    candidates = np.flatnonzero(ok)
    hair = HAIR_COLOURS[candidates[rng.integers(len(candidates))]] + rng.uniform(-8, 8, size=3).astype(np.float32)
    bg0 = rng.uniform(30, 230, size=3).astype(np.float32)
    bg1 = rng.uniform(30, 230, size=3).astype(np.float32)
    bg_angle = rng.uniform(0, 2 * np.pi)
    hat = HAT_COLOURS[rng.integers(len(HAT_COLOURS))]
    earring = EARRING_COLOURS[rng.integers(len(EARRING_COLOURS))]
    ok = np.abs(_luminance(FRAME_COLOURS) - _luminance(skin)) >= HAIR_CONTRAST
    candidates = np.flatnonzero(ok)
    frame = FRAME_COLOURS[candidates[rng.integers(len(candidates))]]
    return Nuisance(cx, cy, fw, fh, np.clip(skin, 0, 255), np.clip(hair, 0, 255), bg0, bg1, bg_angle, hat, earring,
                    frame)


# ---------------------------------------------------------------------------------------------------------------------
# Painting on the supersampled canvas. Every primitive is evaluated only inside its own bounding window, so it can only
# change pixels there.
# ---------------------------------------------------------------------------------------------------------------------
MaskFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class _Canvas:
    def __init__(self, size: int):
        self.n = size * SUPERSAMPLE
        self.img = np.zeros((self.n, self.n, 3), dtype=np.float32)  # (H*4, W*4, 3) in 0..255
        self.centres = (np.arange(self.n, dtype=np.float32) + 0.5) / self.n

    def _window(self, box: tuple[float, float, float, float]) -> tuple[slice, slice, np.ndarray, np.ndarray]:
        x0, y0, x1, y1 = box
        i0, i1 = max(int(np.floor(y0 * self.n)), 0), min(int(np.ceil(y1 * self.n)), self.n)
        j0, j1 = max(int(np.floor(x0 * self.n)), 0), min(int(np.ceil(x1 * self.n)), self.n)
        ys, xs = slice(i0, max(i1, i0)), slice(j0, max(j1, j0))
        Y, X = np.meshgrid(self.centres[ys], self.centres[xs], indexing="ij")
        return ys, xs, X, Y

    def fill(self, box, mask_fn: MaskFn, colour: np.ndarray) -> None:
        ys, xs, X, Y = self._window(box)
        if X.size:
            m = mask_fn(X, Y)
            self.img[ys, xs][m] = colour

    def tint(self, box, mask_fn: MaskFn, factor: float, colour: np.ndarray) -> None:
        """Translucent overlay: img ← img·factor + colour·(1 − factor) inside the mask."""
        ys, xs, X, Y = self._window(box)
        if X.size:
            m = mask_fn(X, Y)
            region = self.img[ys, xs]
            region[m] = region[m] * factor + colour * (1.0 - factor)
            self.img[ys, xs] = region

    def downsample(self) -> np.ndarray:
        s = SUPERSAMPLE
        n = self.n // s
        out = self.img.reshape(n, s, n, s, 3).mean(axis=(1, 3))
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> tuple[tuple, MaskFn]:
    box = (cx - rx, cy - ry, cx + rx, cy + ry)
    return box, lambda X, Y: ((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2 <= 1.0


def _ellipse_ring(cx: float, cy: float, rx: float, ry: float, t: float) -> tuple[tuple, MaskFn]:
    """Ring of width ≈ t (absolute) along an ellipse."""
    box = (cx - rx - t, cy - ry - t, cx + rx + t, cy + ry + t)

    def fn(X, Y):
        r = np.sqrt(((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2)
        # Radial distance approximation: |r − 1| scaled by the local radius.
        local = np.sqrt(((X - cx) / np.maximum(r, 1e-6)) ** 2 + ((Y - cy) / np.maximum(r, 1e-6)) ** 2)
        return np.abs(r - 1.0) * local <= t / 2

    return box, fn


def _polyline(points: list[tuple[float, float]], t: float) -> tuple[tuple, MaskFn]:
    """Stroke of width t along a polyline (distance to the nearest segment ≤ t/2)."""
    p = np.asarray(points, dtype=np.float32)
    box = (p[:, 0].min() - t, p[:, 1].min() - t, p[:, 0].max() + t, p[:, 1].max() + t)

    def fn(X, Y):
        d = np.full(X.shape, np.inf, dtype=np.float32)
        for (ax, ay), (bx, by) in zip(p[:-1], p[1:]):
            dx, dy = bx - ax, by - ay
            h = np.clip(((X - ax) * dx + (Y - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
            d = np.minimum(d, np.hypot(X - ax - h * dx, Y - ay - h * dy))
        return d <= t / 2

    return box, fn


def _parabola(x_mid: float, y_mid: float, half_width: float, rise: float, k: int = 10) -> list[tuple[float, float]]:
    """Points of y = y_mid − rise·(x/half_width)² (corners `rise` above the middle when rise > 0; y points down)."""
    s = np.linspace(-1.0, 1.0, k)
    return [(x_mid + half_width * a, y_mid - rise * a * a) for a in s]


def render_face(
    attrs: Mapping[str, bool] | Iterable[str], rng: np.random.Generator, size: int = 32
) -> np.ndarray:
    """Render one face. attrs: {name: bool} or a set of positive names. Returns uint8 (size, size, 3).

    The generator is used only for nuisances (sample_nuisance), before any attribute is looked at, so the same generator
    state with one attribute toggled renders the same face with only that attribute's region changed.
    """
    positive = _positive_set(attrs)
    if size not in (32, 64):
        raise ValueError(f"size must be 32 or 64, got {size}")
    nz = sample_nuisance(rng)
    cx, cy, fw, fh = nz.cx, nz.cy, nz.fw, nz.fh
    canvas = _Canvas(size)

    def at(u: float, v: float) -> tuple[float, float]:
        return cx + u * fw, cy + v * fh

    # 1. Background: linear gradient bg0 → bg1 along bg_angle.
    c = canvas.centres
    Y, X = np.meshgrid(c, c, indexing="ij")
    proj = (X - 0.5) * np.cos(nz.bg_angle) + (Y - 0.5) * np.sin(nz.bg_angle)  # in [-0.71, 0.71]
    w = np.clip(proj / 1.42 + 0.5, 0.0, 1.0)[..., None]
    canvas.img[:] = nz.bg0 * (1 - w) + nz.bg1 * w

    # 2. Hair cap behind the head (only above ear height, so it never reaches the earrings).
    hx, hy = at(0.0, -0.25)
    box, ell = _ellipse(hx, hy, 1.12 * fw, 0.95 * fh)
    y_cut = cy + 0.05 * fh
    canvas.fill(box, lambda X, Y: ell(X, Y) & (Y < y_cut), nz.hair)

    # 3. Ears, then the face.
    for sgn in (-1, 1):
        ex, ey = at(sgn * 0.98, 0.05)
        canvas.fill(*_ellipse(ex, ey, 0.13 * fw, 0.2 * fh), nz.skin * 0.9)
    face_box, face = _ellipse(cx, cy, fw, fh)
    canvas.fill(face_box, face, nz.skin)

    # 4. Beard: jaw band (outer ring of the face below the cheeks) and chin, slightly beyond the face outline.
    if "beard" in positive:
        bx0, by0 = at(-1.06, 0.05)
        bx1, by1 = at(1.06, 1.06)

        def beard(X, Y):
            u, v = (X - cx) / fw, (Y - cy) / fh
            r = np.sqrt(u * u + v * v)  # 1 on the face outline
            inside = (u / 1.05) ** 2 + (v / 1.06) ** 2 <= 1.0
            return inside & (v > 0.05) & ((r > 0.78) | (v > 0.68))

        canvas.fill((bx0, by0, bx1, by1), beard, nz.hair * 0.85)

    # 5. Mouth: straight line, or a parabola curved up at the corners.
    # Dark red on light skin, light pink on dark skin (whichever contrasts more).
    mouth_colour = max(MOUTH_COLOURS, key=lambda c: abs(float(_luminance(c) - _luminance(nz.skin))))
    t_mouth = 0.11 * fh
    if "smile" in positive:
        mx, my = at(0.0, 0.62)
        pts = _parabola(mx, my, 0.36 * fw, 0.20 * fh)
    else:
        pts = [at(-0.32, MOUTH_V), at(0.32, MOUTH_V)]
    canvas.fill(*_polyline(pts, t_mouth), mouth_colour)

    # 6. Moustache: thick hair-coloured stroke drooping at the ends.
    if "moustache" in positive:
        pts = [at(-0.36, 0.28), at(-0.2, 0.21), at(0.0, 0.20), at(0.2, 0.21), at(0.36, 0.28)]
        canvas.fill(*_polyline(pts, 0.12 * fh), nz.hair * 0.85)

    # 7. Eyes: white with a dark pupil, or closed (a dark arc bowed downwards).
    for sgn in (-1, 1):
        ex, ey = at(sgn * EYE_U, EYE_V)
        if "closed_eyes" in positive:
            pts = _parabola(ex, ey + 0.05 * fh, 0.24 * fw, 0.08 * fh)
            canvas.fill(*_polyline(pts, 0.09 * fh), np.array([30, 20, 20], dtype=np.float32))
        else:
            canvas.fill(*_ellipse(ex, ey, 0.24 * fw, 0.15 * fh), np.array([250, 250, 250], dtype=np.float32))
            canvas.fill(*_ellipse(ex, ey, 0.09 * fh, 0.09 * fh), np.array([20, 20, 30], dtype=np.float32))

    # 8. Sunglasses: translucent dark lenses (eyes stay visible under them) and a bridge.
    if "sunglasses" in positive:
        for sgn in (-1, 1):
            ex, ey = at(sgn * EYE_U, EYE_V)
            canvas.tint(*_ellipse(ex, ey, 0.28 * fw, 0.22 * fh), LENS_TINT, np.array([10, 10, 20], dtype=np.float32))
        canvas.fill(*_polyline([at(-0.14, EYE_V - 0.05), at(0.14, EYE_V - 0.05)], 0.05 * fh),
                    np.array([20, 20, 20], dtype=np.float32))

    # 9. Glasses: rings wider than the sunglasses lenses, bridge, arms to the face edge.
    if "glasses" in positive:
        t = 0.065 * fh
        for sgn in (-1, 1):
            ex, ey = at(sgn * EYE_U, EYE_V)
            canvas.fill(*_ellipse_ring(ex, ey, 0.37 * fw, 0.29 * fh, t), nz.frame)
            canvas.fill(*_polyline([at(sgn * 0.77, EYE_V - 0.08), at(sgn * 0.99, EYE_V - 0.12)], t), nz.frame)
        canvas.fill(*_polyline([at(-0.03, EYE_V - 0.06), at(0.03, EYE_V - 0.06)], t), nz.frame)

    # 10. Bangs: hair over the forehead with a zig-zag lower edge (inside the face outline).
    if "bangs" in positive:
        x0, y0 = at(-0.9, -1.0)
        x1, y1 = at(0.9, -0.40)

        def bangs(X, Y):
            u, v = (X - cx) / fw, (Y - cy) / fh
            tooth = 0.12 * np.abs(((u * 3.0) % 1.0) - 0.5) * 2.0  # triangle wave in [0, 0.12]
            return (u * u + v * v <= 1.0) & (v < -0.42 - tooth) & (np.abs(u) <= 0.9)

        canvas.fill((x0, y0, x1, y1), bangs, nz.hair)

    # 11. Earrings: discs with a dark rim below the ears (drawn over the beard so they stay visible).
    if "earrings" in positive:
        r = 0.045
        for sgn in (-1, 1):
            ex, ey = at(sgn * 1.0, 0.30)
            canvas.fill(*_ellipse(ex, ey, r, r), np.array([30, 25, 20], dtype=np.float32))
            canvas.fill(*_ellipse(ex, ey, r * 0.65, r * 0.65), nz.earring)

    # 12. Hat: crown over the top of the head and a dark brim (the lower forehead stays visible).
    if "hat" in positive:
        x0, y0 = at(-0.85, -1.5)
        x1, y1 = at(0.85, -0.8)
        canvas.fill((x0, y0, x1, y1), lambda X, Y: np.ones(X.shape, dtype=bool), nz.hat)
        x0, y0 = at(-1.28, -0.88)
        x1, y1 = at(1.28, -0.74)
        canvas.fill((x0, y0, x1, y1), lambda X, Y: np.ones(X.shape, dtype=bool), nz.hat * 0.45)

    return canvas.downsample()


# ---------------------------------------------------------------------------------------------------------------------
# Attribute sampling, held-out combinations.
# ---------------------------------------------------------------------------------------------------------------------
def _positive_set(attrs: Mapping[str, bool] | Iterable[str]) -> frozenset[str]:
    if isinstance(attrs, Mapping):
        names = {k for k, v in attrs.items() if v}
        keys = set(attrs)
    else:
        names = set(attrs)
        keys = names
    unknown = sorted(keys - set(ATTRIBUTES))
    if unknown:
        raise ValueError(f"unknown attribute(s) {unknown}; valid attributes: {', '.join(ATTRIBUTES)}")
    return frozenset(names)


def is_heldout(attrs: Mapping[str, bool] | Iterable[str] | np.ndarray) -> bool:
    """True when the positive attributes are a superset of some held-out combination."""
    positive = vector_to_attrs(attrs) if isinstance(attrs, np.ndarray) else _positive_set(attrs)
    return any(combo <= positive for combo in HELDOUT_COMBOS)


def attrs_to_vector(attrs: Mapping[str, bool] | Iterable[str]) -> np.ndarray:
    """{name: bool} or set of names → (K,) bool in ATTRIBUTES order."""
    positive = _positive_set(attrs)
    return np.array([a in positive for a in ATTRIBUTES], dtype=bool)


def vector_to_attrs(vec: np.ndarray) -> frozenset[str]:
    """(K,) 0/1 → set of positive names."""
    vec = np.asarray(vec)
    if vec.shape != (len(ATTRIBUTES),):
        raise ValueError(f"attribute vector must have shape ({len(ATTRIBUTES)},), got {vec.shape}")
    return frozenset(a for a, on in zip(ATTRIBUTES, vec) if on)


def sample_attributes(rng: np.random.Generator, split: str = "all") -> np.ndarray:
    """(K,) bool attribute vector.

    all:     independent Bernoulli(0.5).
    train:   Bernoulli(0.5) conditioned on *not* held out (rejection sampling).
    heldout: one held-out combination chosen uniformly is switched on, the others Bernoulli(0.5); every held-out
             combination is equally represented (this is not the Bernoulli distribution conditioned on held out).
    """
    k = len(ATTRIBUTES)
    if split == "all":
        return rng.random(k) < 0.5
    if split == "train":
        while True:
            vec = rng.random(k) < 0.5
            if not is_heldout(vec):
                return vec
    if split == "heldout":
        combo = HELDOUT_COMBOS[rng.integers(len(HELDOUT_COMBOS))]
        vec = rng.random(k) < 0.5
        return vec | attrs_to_vector(combo)
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def heldout_statistics() -> dict:
    """Exact statistics of the held-out rule under Bernoulli(0.5), by enumerating all 2^K attribute sets.

    Returns {"rejected_fraction", "train_marginals" (per attribute P(a=1 | train)), "pairs_unseen" (pairs that never
    occur together in train), "pairs_total"}.
    """
    combos = [frozenset(a for a, on in zip(ATTRIBUTES, bits) if on)
              for bits in itertools.product((0, 1), repeat=len(ATTRIBUTES))]
    train = [c for c in combos if not any(h <= c for h in HELDOUT_COMBOS)]
    pairs = [frozenset(p) for p in itertools.combinations(ATTRIBUTES, 2)]
    unseen = [tuple(sorted(p)) for p in pairs if not any(p <= c for c in train)]
    return {
        "rejected_fraction": 1.0 - len(train) / len(combos),
        "train_marginals": {a: sum(a in c for c in train) / len(train) for a in ATTRIBUTES},
        "pairs_unseen": unseen,
        "pairs_total": len(pairs),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Regions.
# ---------------------------------------------------------------------------------------------------------------------
def region_box(name_or_box: str | tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A region name from REGIONS or an (x0, y0, x1, y1) box in [0, 1] → validated box."""
    if isinstance(name_or_box, str):
        if name_or_box not in REGIONS:
            raise ValueError(f"unknown region {name_or_box!r}; valid regions: {', '.join(REGIONS)}")
        return REGIONS[name_or_box]
    box = tuple(float(v) for v in name_or_box)
    if len(box) != 4:
        raise ValueError(f"a region box needs 4 numbers (x0, y0, x1, y1), got {len(box)}")
    x0, y0, x1, y1 = box
    if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
        raise ValueError(f"a region box needs 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got {box}")
    return box  # type: ignore[return-value]


def region_mask(name_or_box: str | tuple[float, float, float, float], size: int = 32) -> np.ndarray:
    """(H, W) float32 mask in [0, 1]: the fraction of each pixel covered by the region's box."""
    x0, y0, x1, y1 = region_box(name_or_box)
    edges = np.arange(size + 1, dtype=np.float64) / size
    lo, hi = edges[:-1], edges[1:]
    cov_x = np.clip(np.minimum(hi, x1) - np.maximum(lo, x0), 0.0, None) * size  # (W,)
    cov_y = np.clip(np.minimum(hi, y1) - np.maximum(lo, y0), 0.0, None) * size  # (H,)
    return np.outer(cov_y, cov_x).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------------
# Dataset.
# ---------------------------------------------------------------------------------------------------------------------
_SPLIT_ID = {"all": 0, "train": 1, "heldout": 2}
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[2] / "data" / "cache" / "attributes"


def sample_index_attributes(seed: int, index: int, split: str = "all") -> np.ndarray:
    """(K,) bool attributes of sample `index` of a seed/split, without rendering it."""
    if split not in _SPLIT_ID:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return sample_attributes(np.random.default_rng([seed, _SPLIT_ID[split], index, 0]), split)


def render_sample(seed: int, index: int, split: str = "all", size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Sample `index` of a seed/split: (uint8 (H, W, 3) image, (K,) bool attributes). Pure function of its arguments."""
    attrs = sample_index_attributes(seed, index, split)
    image = render_face(vector_to_attrs(attrs), np.random.default_rng([seed, _SPLIT_ID[split], index, 1]), size)
    return image, attrs


class FaceDataset(Dataset):
    """n procedural faces; item i is a pure function of (seed, split, i).

    Yields {"image": (3, H, W) float32 in [-1, 1], "attrs": (K,) float32 0/1}. With cache=True all n images are rendered
    once and stored in cache_dir as an .npz (written atomically) that later instances reuse.
    """

    def __init__(self, n: int, seed: int = 0, size: int = 32, split: str = "train", cache: bool = False,
                 cache_dir: str | os.PathLike | None = None):
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if size not in (32, 64):
            raise ValueError(f"size must be 32 or 64, got {size}")
        self.n, self.seed, self.size, self.split = n, seed, size, split
        self.attributes = ATTRIBUTES
        self._images: np.ndarray | None = None  # (N, H, W, 3) uint8 when cached
        self._attrs: np.ndarray | None = None  # (N, K) bool
        if cache:
            self._load_or_build_cache(Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR)

    def cache_path(self, cache_dir: Path) -> Path:
        return cache_dir / f"faces_v{CACHE_VERSION}_{self.split}_n{self.n}_seed{self.seed}_{self.size}px.npz"

    def _load_or_build_cache(self, cache_dir: Path) -> None:
        path = self.cache_path(cache_dir)
        if path.exists():
            with np.load(path, allow_pickle=False) as f:
                self._images, self._attrs = f["images"], f["attrs"]
            return
        images = np.empty((self.n, self.size, self.size, 3), dtype=np.uint8)
        attrs = np.empty((self.n, len(ATTRIBUTES)), dtype=bool)
        for i in range(self.n):
            images[i], attrs[i] = render_sample(self.seed, i, self.split, self.size)
        cache_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".npz.tmp") as tmp, open(tmp, "wb") as f:  # a file object: savez adds no ".npz"
            np.savez(f, images=images, attrs=attrs, attributes=np.array(ATTRIBUTES))
        self._images, self._attrs = images, attrs

    def __len__(self) -> int:
        return self.n

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 (H, W, 3), (K,) bool) for one index."""
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for a dataset of {self.n}")
        if self._images is not None:
            return self._images[index], self._attrs[index]
        return render_sample(self.seed, index, self.split, self.size)

    def attributes_at(self, index: int) -> np.ndarray:
        """(K,) bool attributes of one index, without rendering."""
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for a dataset of {self.n}")
        if self._attrs is not None:
            return self._attrs[index]
        return sample_index_attributes(self.seed, index, self.split)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, attrs = self.raw(int(index))
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 127.5 - 1.0  # (3, H, W)
        return {"image": x, "attrs": torch.from_numpy(attrs.astype(np.float32))}
