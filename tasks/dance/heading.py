"""Fill the body's heading where the network is unsure of it.

The root rotation is predicted in the 6-D representation (two columns of the matrix, orthonormalised by Gram-Schmidt,
`skeleton.rotation_6d_to_matrix`). The second column (the pelvis' up axis) always comes out at unit length; the first
(its sideways axis, i.e. the heading) comes out short where the network does not know which way the dancer faces -- an
x₀-prediction averages the headings it finds plausible (mid-turn, or which of two turns) -- down to |a₁| ≈ 0.04 on the
tuning songs, and there its direction is noise: the pelvis flips by 45-160° from one frame to the next (77 such frames
over six 30-s tuning songs, seeds 800000-800005, with the post-passes of the day it was found; 52 with today's
dynamics and beat snap), swinging the legs with it.

`fill_uncertain_heading` keeps every frame whose first column is at least `min_norm` long and, between them, fills the
first column in (normalised again by Gram-Schmidt): the dancer turns smoothly from the last heading it was sure of to
the next. Where the network is unsure it mostly is mid-half-turn: the column shrinks through zero and comes back
pointing the other way (an average of "turned" and "not turned"), so the fill interpolates the heading *angle* about
the vertical, the shorter way round (mode "yaw", the default), not the unit vectors (mode "vector", the first version:
between two headings ~180° apart that interpolation passes near zero too, and the pelvis still flipped there).
On the tuning songs (min_norm 0.7, chosen there among 0.3 / 0.5 / 0.7 for the vector fill; with the pipeline's other
passes): root steps > 45° per frame 52 (no fill) → 20 (vector) → 1 (yaw), > 25° 134 → 43 → 12, 99th-percentile ankle
speed 0.089 → 0.077 → 0.076 m/frame, BAS 0.561 → 0.555 → 0.567, PFC without EDGE's division by the clip's largest root
acceleration 539x → 110x → 27x the ground truth's; EDGE's PFC itself 48x → 17x → 23x (removing a flip removes the
root jolt the foot lock's root-follows-support step makes of it, so the divisor falls; `python -m
research.dance_heading_fill`, reports/dance_heading_fill.json). Runs before the rest pass and the foot lock.
"""
from __future__ import annotations

import numpy as np

MIN_NORM = 0.7
MODES = ("yaw", "vector")
MODE = "yaw"


def fill_uncertain_heading(motion: np.ndarray, min_norm: float = MIN_NORM, joint: int = 0,
                           mode: str = MODE) -> np.ndarray:
    """`motion` (N, 151) with `joint`'s first 6-D column filled across frames where it is shorter than `min_norm`
    (unchanged when every frame is sure, or none is). mode "yaw": the heading angle about the vertical (unwrapped: the
    shorter way round between two sure frames) and the column's tilt interpolated linearly; mode "vector": the unit
    vectors themselves interpolated (a half turn then passes through a flip)."""
    if mode not in MODES:
        raise ValueError(f"heading fill mode must be one of {MODES}, got {mode!r}")
    m = np.array(motion, np.float32)
    if m.ndim != 2 or m.shape[1] < 7 + 6 * (joint + 1):
        raise ValueError(f"fill_uncertain_heading: motion must be (N, 151), got {m.shape}")
    sl = slice(7 + 6 * joint, 7 + 6 * joint + 3)
    a = m[:, sl].astype(np.float64)
    n = np.linalg.norm(a, axis=1)
    sure = n >= min_norm
    if sure.all() or not sure.any():
        return m
    u = a / np.maximum(n, 1e-12)[:, None]
    t, idx = np.arange(len(a)), np.flatnonzero(sure)
    if mode == "vector":
        filled = np.stack([np.interp(t, idx, u[idx, d]) for d in range(3)], 1)
    else:
        yaw = np.unwrap(np.arctan2(u[idx, 2], u[idx, 0]))  # y is up: the heading lives in the x-z plane
        psi = np.interp(t, idx, yaw)
        up = np.clip(np.interp(t, idx, u[idx, 1]), -1.0, 1.0)
        h = np.sqrt(1.0 - up ** 2)
        filled = np.stack([h * np.cos(psi), up, h * np.sin(psi)], 1)
    a[~sure] = filled[~sure]
    m[:, sl] = a
    return m
