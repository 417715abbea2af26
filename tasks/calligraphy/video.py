"""Writing animation: reveal each glyph stroke by stroke, in reading order.

A brush disc of radius ``brush_radius`` sweeps along each stroke median (from
hanzi-writer-data, placed on our glyph by :mod:`tasks.calligraphy.strokes`)
in stroke order and reveals the glyph's ink under it. Ink pixels that no
sweep reaches are given to their nearest stroke (distance to the median
polyline), at the matching point along it, so that after the last stroke the
whole glyph is revealed. Masks are cumulative (monotone), and the last frame
of a work equals :func:`tasks.calligraphy.layout.compose_work` exactly.

Characters without stroke data get a top-to-bottom wipe and a warning.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from gen.io import atomic_path

from .layout import INK, PAPER, _as_alpha, blank_canvas, glyph_alphas_and_layout, paint_cell
from .strokes import medians_to_pixels

__all__ = [
    "VIDEO_EXTENSIONS",
    "default_brush_radius",
    "stroke_reveal_masks",
    "fallback_reveal_masks",
    "glyph_reveal_masks",
    "writing_frames",
    "write_video",
]

VIDEO_EXTENSIONS = (".gif", ".mp4")


def default_brush_radius(size: int) -> float:
    """About half a regular-script stroke width: 6% of the glyph size."""
    return max(1.0, 0.06 * size)


def _resample(poly: np.ndarray, spacing: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``spacing`` px along a polyline and their arc fraction in [0, 1]."""
    poly = np.asarray(poly, np.float64).reshape(-1, 2)
    if len(poly) == 1:
        return poly, np.zeros(1)
    seg = np.linalg.norm(np.diff(poly, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = cum[-1]
    if total < 1e-9:
        return poly[:1], np.zeros(1)
    s = np.linspace(0.0, total, max(2, int(np.ceil(total / spacing)) + 1))
    pts = np.stack([np.interp(s, cum, poly[:, 0]), np.interp(s, cum, poly[:, 1])], axis=1)
    return pts, s / total


def _reveal_times(ink_xy: np.ndarray, medians_px: Sequence[np.ndarray], radius: float):
    """Per ink pixel: (stroke index, arc fraction) at which it is revealed."""
    n = len(ink_xy)
    stroke = np.full(n, -1, np.int64)
    frac = np.zeros(n)
    best_d = np.full(n, np.inf)
    near_stroke = np.zeros(n, np.int64)
    near_frac = np.zeros(n)
    r2 = radius * radius
    for i, med in enumerate(medians_px):
        pts, f = _resample(med)
        step = max(1, 2_000_000 // max(1, len(pts)))
        for a in range(0, n, step):
            sl = slice(a, a + step)
            d2 = ((ink_xy[sl, None, :] - pts[None, :, :]) ** 2).sum(-1)  # (n', M)
            # sweep: first sample of this stroke whose disc covers the pixel
            within = d2 <= r2
            hit = within.any(axis=1) & (stroke[sl] < 0)
            first = np.argmax(within, axis=1)
            idx = np.flatnonzero(hit) + a
            stroke[idx] = i
            frac[idx] = f[first[hit]]
            # nearest stroke (for pixels no sweep reaches)
            j = np.argmin(d2, axis=1)
            dmin = d2[np.arange(len(j)), j]
            better = dmin < best_d[sl]
            bidx = np.flatnonzero(better) + a
            best_d[bidx] = dmin[better]
            near_stroke[bidx] = i
            near_frac[bidx] = f[j[better]]
    miss = stroke < 0
    stroke[miss] = near_stroke[miss]
    frac[miss] = near_frac[miss]
    return stroke, frac


def stroke_reveal_masks(
    glyph: np.ndarray,
    medians_px: Sequence[np.ndarray],
    brush_radius: float | None = None,
    steps_per_stroke: int = 4,
) -> np.ndarray:
    """Cumulative reveal masks, (n_strokes * steps_per_stroke, H, W) bool.

    Frame ``i * steps_per_stroke + s`` (s = 0..steps-1) shows every ink pixel
    revealed by the strokes before ``i`` plus the part of stroke ``i`` swept
    up to arc fraction ``(s + 1) / steps``. Ink is every pixel with a value
    > 0, so the last mask covers the whole glyph. With no medians, returns a
    single all-ink mask.
    """
    alpha = _as_alpha(glyph)
    h, w = alpha.shape
    ink = alpha > 0
    steps = max(1, int(steps_per_stroke))
    meds = [np.asarray(m, np.float64).reshape(-1, 2) for m in medians_px if len(m)]
    if not meds:
        return ink[None].copy()
    radius = default_brush_radius(max(h, w)) if brush_radius is None else float(brush_radius)
    rows, cols = np.nonzero(ink)
    xy = np.stack([cols, rows], axis=1).astype(np.float64)
    stroke, frac = _reveal_times(xy, meds, radius)
    # frame of each pixel: during stroke i at the first step whose end fraction >= frac
    step_of = np.clip(np.ceil(frac * steps - 1e-9).astype(np.int64) - 1, 0, steps - 1)
    frame_of = stroke * steps + step_of
    n_frames = len(meds) * steps
    masks = np.zeros((n_frames, h, w), bool)
    first = np.zeros((n_frames, h * w), bool)
    first[frame_of, rows * w + cols] = True
    np.logical_or.accumulate(first, axis=0, out=first)
    masks[:] = first.reshape(n_frames, h, w)
    return masks


def fallback_reveal_masks(glyph: np.ndarray, n_frames: int = 6) -> np.ndarray:
    """Top-to-bottom wipe over the glyph's ink rows: (n_frames, H, W) bool."""
    alpha = _as_alpha(glyph)
    ink = alpha > 0
    n = max(1, int(n_frames))
    rows = np.flatnonzero(ink.any(axis=1))
    if rows.size == 0:
        return np.zeros((n,) + ink.shape, bool)
    y0, y1 = rows[0], rows[-1] + 1
    masks = np.zeros((n,) + ink.shape, bool)
    for k in range(n):
        cut = y0 + int(np.ceil((y1 - y0) * (k + 1) / n))
        masks[k, :cut] = ink[:cut]
    return masks


def glyph_reveal_masks(
    char: str,
    glyph: np.ndarray,
    brush_radius: float | None = None,
    steps_per_stroke: int = 4,
    fallback_frames: int = 6,
) -> np.ndarray:
    """Reveal masks for one character: stroke sweep, or a wipe (with a
    warning) when there is no stroke data for ``char``."""
    alpha = _as_alpha(glyph)
    if not (alpha > 0).any():
        return np.zeros((1,) + alpha.shape, bool)
    try:
        medians = medians_to_pixels(char, alpha)
    except KeyError:
        warnings.warn(
            f"no stroke data for character {char!r}; using a top-to-bottom wipe instead",
            stacklevel=2,
        )
        return fallback_reveal_masks(alpha, fallback_frames)
    return stroke_reveal_masks(alpha, medians, brush_radius, steps_per_stroke)


def writing_frames(
    glyph_images: Sequence[np.ndarray],
    chars: Sequence[str],
    layout: str = "vertical",
    chars_per_line: int | None = None,
    gap: int | None = None,
    line_gap: int | None = None,
    margin: int | None = None,
    paper=PAPER,
    ink=INK,
    brush_radius: float | None = None,
    steps_per_stroke: int = 3,
    fallback_frames: int = 6,
    lead_frames: int = 1,
    hold_frames: int = 12,
) -> list[np.ndarray]:
    """RGB uint8 frames of the work being written, character by character in
    reading order: ``lead_frames`` of blank paper, the reveal of each
    character, then ``hold_frames`` extra copies of the finished work. The
    last frame equals ``compose_work(glyph_images, layout, ...)[0]`` exactly
    (same layout arguments)."""
    if len(glyph_images) != len(chars):
        raise ValueError(f"{len(glyph_images)} glyphs but {len(chars)} characters")
    alphas, lay = glyph_alphas_and_layout(glyph_images, layout, chars_per_line, gap, line_gap, margin)
    canvas = blank_canvas(lay, paper)
    frames = [canvas.copy() for _ in range(max(0, int(lead_frames)))]
    for a, ch, box in zip(alphas, chars, lay.boxes):
        for m in glyph_reveal_masks(ch, a, brush_radius, steps_per_stroke, fallback_frames):
            paint_cell(canvas, box, a * m, paper, ink)
            frames.append(canvas.copy())
    if not frames:
        frames.append(canvas.copy())
    frames.extend(canvas.copy() for _ in range(max(0, int(hold_frames))))
    return frames


# --------------------------------------------------------------------------
# writing files
# --------------------------------------------------------------------------


def _check_frames(frames: Iterable[np.ndarray]) -> list[np.ndarray]:
    out = []
    for f in frames:
        f = np.asarray(f)
        if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
            raise ValueError(f"frames must be (H, W, 3) uint8, got {f.shape} {f.dtype}")
        if out and f.shape != out[0].shape:
            raise ValueError("all frames must have the same size")
        out.append(f)
    if not out:
        raise ValueError("no frames")
    return out


def _codes(f: np.ndarray) -> np.ndarray:
    f = f.astype(np.uint32)
    return (f[..., 0] << 16) | (f[..., 1] << 8) | f[..., 2]


def _gif_frames(frames: list[np.ndarray]):
    """P-mode PIL images sharing one palette (exact when the frames use at most
    256 colours, else an adaptive palette)."""
    from PIL import Image

    colours = np.zeros(0, np.uint32)
    exact = True
    for f in frames:
        colours = np.union1d(colours, np.unique(_codes(f)))
        if len(colours) > 256:
            exact = False
            break
    if exact:
        pal = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1).astype(np.uint8)
        flat = pal.reshape(-1).tolist() + [0] * (768 - 3 * len(pal))
        out = []
        for f in frames:
            idx = np.searchsorted(colours, _codes(f)).astype(np.uint8)
            im = Image.frombytes("P", (idx.shape[1], idx.shape[0]), np.ascontiguousarray(idx).tobytes())
            im.putpalette(flat)
            out.append(im)
        return out
    sample = [frames[0], frames[len(frames) // 2], frames[-1]]
    ref = Image.fromarray(np.concatenate(sample, axis=0)).quantize(256, dither=Image.Dither.NONE)
    return [Image.fromarray(f).quantize(palette=ref, dither=Image.Dither.NONE) for f in frames]


def _write_gif(frames: list[np.ndarray], path: str, fps: float) -> int:
    ims = _gif_frames(frames)
    ms = 1000.0 / fps
    # GIF writers merge identical consecutive frames; do it here so the count
    # and timing are known: one stored frame per run, durations summed.
    keep, durations = [ims[0]], [ms]
    prev = np.asarray(ims[0])
    for im in ims[1:]:
        cur = np.asarray(im)
        if np.array_equal(cur, prev):
            durations[-1] += ms
        else:
            keep.append(im)
            durations.append(ms)
            prev = cur
    durs = [max(10, int(round(d / 10.0)) * 10) for d in durations]  # GIF counts in 1/100 s
    keep[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=keep[1:],
        duration=durs if len(keep) > 1 else durs[0],
        loop=0,
        optimize=False,
        disposal=1,
    )
    return len(keep)


def _write_mp4(frames: list[np.ndarray], path: str, fps: float) -> int:
    import imageio.v2 as iio2

    h, w = frames[0].shape[:2]
    ph, pw = h % 2, w % 2  # libx264 + yuv420p need even sides: pad by edge replication
    with iio2.get_writer(
        path,
        format="FFMPEG",
        mode="I",
        fps=fps,
        codec="libx264",
        pixelformat="yuv420p",
        macro_block_size=1,
        ffmpeg_log_level="error",
        output_params=["-crf", "18", "-preset", "veryfast"],  # half the encode time of medium here
    ) as wr:
        for f in frames:
            if ph or pw:
                f = np.pad(f, ((0, ph), (0, pw), (0, 0)), mode="edge")
            wr.append_data(f)
    return len(frames)


def write_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float = 12) -> int:
    """Write frames as an animated GIF or an H.264 MP4, chosen by extension.

    ``.gif``: lossless when the frames use at most 256 colours (true for
    :func:`writing_frames` output); identical consecutive frames are stored
    once with a longer duration. ``.mp4``: libx264, yuv420p, odd sides padded
    to even by repeating the last row/column. The file is written to a
    temporary name in the same directory and moved into place, so an error
    leaves no partial file. Returns the number of frames stored in the file.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in VIDEO_EXTENSIONS:
        raise ValueError(f"unsupported video extension {path.suffix!r} for {path.name}; accepted: {', '.join(VIDEO_EXTENSIONS)}")
    if not fps or fps <= 0:
        raise ValueError("fps must be > 0")
    frames = _check_frames(frames)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=f".tmp{ext}") as tmp:
        n = _write_gif(frames, tmp, fps) if ext == ".gif" else _write_mp4(frames, tmp, fps)
    return n
